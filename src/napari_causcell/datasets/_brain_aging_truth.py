"""Counterfactual ground truth of :func:`brain_aging`: the same cells under ``do(age=...)`` /
``do(domain=...)``, recomputed with their own exogenous noise (common random numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._brain_aging_noise import (
    _cell_type_of,
    _draw_noise,
    _factual_labels,
    _Noise,
    _simulate_counts,
)
from ._brain_aging_params import _TABLE, _VERSION, AGES, CELL_TYPES, DOMAINS

if TYPE_CHECKING:
    from spatialdata import SpatialData

_CONCEPTS = {"age": AGES, "domain": DOMAINS}


def _get_table(sdata_or_adata: Any) -> ad.AnnData:
    if isinstance(sdata_or_adata, ad.AnnData):
        adata = sdata_or_adata
    else:
        tables = getattr(sdata_or_adata, "tables", None)
        if tables is None or _TABLE not in tables:
            raise TypeError(
                "expected the SpatialData returned by brain_aging() (with table 'table') "
                f"or its table AnnData, got {type(sdata_or_adata).__name__}"
            )
        adata = tables[_TABLE]
    if "brain_aging" not in adata.uns:
        raise ValueError("the table has no uns['brain_aging']: not made by brain_aging()")
    return adata


def _select(adata: ad.AnnData, cells: Any) -> np.ndarray:
    """Positions (into adata) of the requested cells, in the requested order."""
    if cells is None:
        return np.arange(adata.n_obs)
    arr = np.asarray(cells)
    if arr.dtype == bool:
        if arr.shape != (adata.n_obs,):
            raise ValueError(f"boolean mask must have length {adata.n_obs}, got {arr.shape}")
        return np.flatnonzero(arr)
    names = [str(c) for c in np.atleast_1d(arr)]
    pos = adata.obs_names.get_indexer(names)
    if (pos < 0).any():
        missing = [n for n, p in zip(names, pos) if p < 0][:5]
        raise KeyError(f"cells not in the table: {missing}")
    return pos


def _check_do(do: Any) -> None:
    """``do`` must be a dict of known concepts (age, domain) to known values."""
    if not isinstance(do, dict):
        raise TypeError(f"do must be a dict like {{'age': '90wk'}}, got {type(do).__name__}")
    for key, val in do.items():
        if key not in _CONCEPTS:
            raise ValueError(
                f"unknown concept {key!r} in do; options: {sorted(_CONCEPTS)} "
                "(cell_type is derived from age and domain and cannot be set directly)"
            )
        if val not in _CONCEPTS[key]:
            raise ValueError(
                f"unknown value {val!r} for concept {key!r}; options: {list(_CONCEPTS[key])}"
            )


def _regenerate(adata: ad.AnnData) -> tuple[_Noise, np.ndarray, np.ndarray]:
    """The simulation's noise and factual ages and domains, from ``uns['brain_aging']``."""
    params = dict(adata.uns["brain_aging"])
    if int(params.get("version", _VERSION)) != _VERSION:
        raise ValueError(f"brain_aging version {params['version']} != {_VERSION}")
    n_mice_per_age = int(params["n_mice_per_age"])
    noise = _draw_noise(
        int(params["n_cells"]), int(params["n_genes"]), n_mice_per_age, int(params["seed"])
    )
    age_all, dom_all, _ = _factual_labels(noise, n_mice_per_age)
    return noise, age_all, dom_all


def _intervened_labels(
    age: np.ndarray, domain: np.ndarray, do: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the factual age and domain codes with ``do`` applied."""
    age, domain = age.copy(), domain.copy()
    if "age" in do:
        age[:] = AGES.index(do["age"])
    if "domain" in do:
        domain[:] = DOMAINS.index(do["domain"])
    return age, domain


def _intervened_obs(
    obs: pd.DataFrame, age: np.ndarray, domain: np.ndarray, ctype: np.ndarray
) -> pd.DataFrame:
    """The factual obs with the new labels, plus ``source_cell_type`` and ``source_id``."""
    obs["source_cell_type"] = obs["cell_type"].copy()
    obs["source_id"] = obs.index.astype(str).to_numpy()
    obs["age"] = pd.Categorical.from_codes(age, categories=list(AGES))
    obs["domain"] = pd.Categorical.from_codes(domain, categories=list(DOMAINS))
    obs["cell_type"] = pd.Categorical.from_codes(ctype, categories=list(CELL_TYPES))
    return obs


def brain_aging_truth(
    sdata_or_adata: SpatialData | ad.AnnData,
    do: dict[str, str],
    cells: Sequence[str] | np.ndarray | None = None,
) -> ad.AnnData:
    """True counterfactual counts of :func:`brain_aging` cells under an intervention.

    The simulation is regenerated from ``table.uns["brain_aging"]`` and the chosen cells are
    recomputed with the intervened concept(s), keeping each cell's exogenous noise (mouse,
    section, position, cell-type uniform, latent factors, library size and per-gene count
    uniforms). Cell type is re-derived from the same uniform with the proportions of the new
    (domain, age), as the true DAG ``age -> cell_type <- domain`` says. With ``do`` equal to
    a cell's own values the result is exactly its factual counts.

    Parameters
    ----------
    sdata_or_adata
        The SpatialData returned by :func:`brain_aging` (table ``"table"`` is used) or that
        table's AnnData (possibly a subset; cells are matched via ``obs["cell_id"]``).
    do
        Intervention, ``{"age": "90wk"}``, ``{"domain": "WM"}`` or both. Ages: 4wk, 24wk,
        90wk; domains: L1, L2/3, L4/5, L6, WM, Striatum, Ventricle.
    cells
        ``None`` (all cells), a boolean mask over the table's cells, or obs names.

    Returns
    -------
    anndata.AnnData
        One row per requested cell, same order and obs names: ``.X`` counterfactual raw
        counts (CSR float32), ``layers["mean"]`` noiseless expected counts, ``obs`` a copy
        of the factual obs with the intervened column(s) and ``cell_type`` updated plus
        ``source_cell_type`` (factual type) and ``source_id`` (factual obs name);
        ``obsm["spatial"]`` copied; same ``var_names``.

    Raises
    ------
    ValueError
        Unknown concept or value in ``do``.
    """
    _check_do(do)
    adata = _get_table(sdata_or_adata)
    noise, age_all, dom_all = _regenerate(adata)

    pos = _select(adata, cells)
    obs = adata.obs.iloc[pos].copy()
    idx = obs["cell_id"].to_numpy().astype(np.int64)  # rows of the simulation
    age, domain = _intervened_labels(age_all[idx], dom_all[idx], do)
    # cell type follows from the same uniform and the new (domain, age)
    ctype = _cell_type_of(noise.u_type[idx], domain, age)
    counts, mu = _simulate_counts(noise, idx, age, domain, ctype)

    out = ad.AnnData(X=sp.csr_matrix(counts.astype(np.float32)),
                     obs=_intervened_obs(obs, age, domain, ctype), var=adata.var.copy())
    out.layers["mean"] = mu.astype(np.float32)
    if "spatial" in adata.obsm:
        out.obsm["spatial"] = np.asarray(adata.obsm["spatial"])[pos].copy()
    out.uns["do"] = dict(do)
    return out
