"""Simulated MERFISH-like mouse brain-aging tissue with known counterfactual truth.

The generative model (the true causal DAG) is::

    age ──► cell_type ◄── domain          (age and domain independent)
     │          │            │
     └──────────┴────────────┴──► expression ◄── latent factors, mouse batch, library size

Every random number is drawn up front from ``numpy.random.default_rng(seed)`` in a fixed
order that does not depend on any label, so :func:`brain_aging_truth` can regenerate the
exogenous noise from the parameters stored in ``table.uns["brain_aging"]`` and recompute
the cells under an intervention with the *same* noise (common random numbers).

The parts: :mod:`._brain_aging_params` (constants and proportions), :mod:`._brain_aging_noise`
(the draws and the structural equations), :mod:`._brain_aging_truth` (the counterfactuals);
this module assembles the SpatialData.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._brain_aging_noise import _draw_noise, _factual_labels, _Noise, _simulate_counts
from ._brain_aging_params import (
    _CELL_RADIUS,
    _REGION,
    _SECTION_GAP,
    _SECTION_W,
    _TABLE,
    _VERSION,
    AGES,
    CELL_TYPES,
    DOMAINS,
    PLANTED_AGE_EFFECTS,
)
from ._brain_aging_truth import brain_aging_truth

if TYPE_CHECKING:
    from spatialdata import SpatialData

__all__ = ["brain_aging", "brain_aging_truth", "PLANTED_AGE_EFFECTS"]


def _global_xy(noise: _Noise) -> np.ndarray:
    xy = noise.xy_local.copy()
    xy[:, 0] += noise.mouse * (_SECTION_W + _SECTION_GAP)
    return xy


def _mouse_names(n_mice_per_age: int) -> list[str]:
    return [f"m{a}_{j + 1}" for a in AGES for j in range(int(n_mice_per_age))]


def _obs_frame(
    noise: _Noise, age: np.ndarray, domain: np.ndarray, ctype: np.ndarray, n_mice_per_age: int
) -> pd.DataFrame:
    """obs of the table: the labels as categoricals, ``region`` and ``cell_id``."""
    idx = np.arange(len(age))
    return pd.DataFrame(
        {
            "age": pd.Categorical.from_codes(age, categories=list(AGES)),
            "mouse": pd.Categorical.from_codes(
                noise.mouse, categories=_mouse_names(n_mice_per_age)
            ),
            "domain": pd.Categorical.from_codes(domain, categories=list(DOMAINS)),
            "cell_type": pd.Categorical.from_codes(ctype, categories=list(CELL_TYPES)),
            "region": pd.Categorical([_REGION] * len(idx)),
            "cell_id": idx,
        },
        index=pd.Index([f"cell_{i}" for i in idx]),
    )


def _to_spatialdata(adata: ad.AnnData, xy: np.ndarray) -> SpatialData:
    """The table annotating one circle per cell (index ``cell_id``)."""
    from spatialdata import SpatialData
    from spatialdata.models import ShapesModel, TableModel

    table = TableModel.parse(adata, region=_REGION, region_key="region", instance_key="cell_id")
    shapes = ShapesModel.parse(xy, geometry=0, radius=_CELL_RADIUS,
                               index=np.arange(adata.n_obs))
    return SpatialData(shapes={_REGION: shapes}, tables={_TABLE: table})


def brain_aging(
    n_cells: int = 6000, n_genes: int = 200, n_mice_per_age: int = 2, seed: int = 0
) -> SpatialData:
    """Simulated MERFISH-like mouse brain-aging tissue (no download).

    ``3 * n_mice_per_age`` mice (ages 4wk, 24wk, 90wk), one ~1000 x 800 µm coronal-like
    hemisphere section each, laid out side by side in one global coordinate frame. Spatial
    domains (cortical layers L1, L2/3, L4/5, L6, white matter WM, Striatum, Ventricle)
    follow from position; cell types depend on domain and age (true DAG
    ``age -> cell_type <- domain``); expression carries cell-type-specific planted age
    effects (:data:`PLANTED_AGE_EFFECTS`), latent per-cell factors, a small per-mouse batch
    effect and lognormal library sizes; counts are negative binomial.

    Parameters
    ----------
    n_cells
        Total number of cells, split evenly over the mice.
    n_genes
        Number of genes (>= 60): 57 named marker / domain / age genes plus ``Gene_###``
        fillers.
    n_mice_per_age
        Mice (tissue sections) per age group.
    seed
        Seed of ``numpy.random.default_rng``; the whole dataset is a function of the four
        parameters.

    Returns
    -------
    spatialdata.SpatialData
        Table ``"table"`` (raw integer counts in ``.X`` and ``layers["counts"]`` as CSR
        float32; obs ``age``, ``mouse``, ``domain``, ``cell_type``, ``region``, ``cell_id``;
        ``obsm["spatial"]`` in µm; ``uns["brain_aging"]`` with the parameters) annotating
        the circle shapes element ``"cells"`` (radius 5 µm, index ``cell_id``).

    See Also
    --------
    brain_aging_truth : exact counterfactual counts under ``do(age=...)`` / ``do(domain=...)``.
    """
    noise = _draw_noise(n_cells, n_genes, n_mice_per_age, seed)
    age, domain, ctype = _factual_labels(noise, n_mice_per_age)
    counts, _ = _simulate_counts(noise, np.arange(int(n_cells)), age, domain, ctype)
    X = sp.csr_matrix(counts.astype(np.float32))
    var = pd.DataFrame({"gene_class": noise.gene_class.astype(str)}, index=pd.Index(noise.genes))
    adata = ad.AnnData(X=X, obs=_obs_frame(noise, age, domain, ctype, n_mice_per_age), var=var)
    adata.layers["counts"] = X.copy()
    adata.obsm["spatial"] = xy = _global_xy(noise)
    adata.uns["brain_aging"] = {
        "n_cells": int(n_cells),
        "n_genes": int(n_genes),
        "n_mice_per_age": int(n_mice_per_age),
        "seed": int(seed),
        "version": _VERSION,
    }
    return _to_spatialdata(adata, xy)
