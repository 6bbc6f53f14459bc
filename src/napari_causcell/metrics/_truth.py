"""A counterfactual of the simulated brain-aging tissue scored against its exact truth.

:func:`counterfactual_accuracy` compares a counterfactual of
:func:`~napari_causcell.datasets.brain_aging` cells with the exact counterfactual
:func:`~napari_causcell.datasets.brain_aging_truth` computes (what ``napari-causcell demo``
reports).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..data import expression, is_spatialdata, resolve_table
from ..errors import DataError
from ._counterfactual import change_correlation, group_mean_change
from ._utils import dense32

__all__ = ["counterfactual_accuracy"]

#: the table of :func:`~napari_causcell.datasets.brain_aging`
TABLE = "table"


def counterfactual_accuracy(
    sdata: Any,
    cf: ad.AnnData,
    do: Mapping[str, str],
    source_mask: np.ndarray | None = None,
    *,
    min_cells: int = 10,
    return_matrices: bool = False,
) -> dict[str, Any]:
    """Score a counterfactual of ``brain_aging`` cells against the true counterfactual.

    The true counterfactual counts (:func:`~napari_causcell.datasets.brain_aging_truth`,
    same exogenous noise) are log-normalised over the counterfactual's genes, as the model
    does, and the true change is ``truth - factual`` per cell. The predicted change is
    ``cf.layers['delta']`` (averaged over samples of the same cell). Both are averaged per
    source cell type (the factual ``cell_type``), giving ``types x genes`` matrices.

    Two foils are scored beside the model: *no change* (all zeros; its correlation is
    undefined and reported as 0) and the observed *mean shift*, the mean log-normalised
    expression of each type among the cells carrying the ``do`` labels minus that among
    the source cells (e.g. 90wk minus 4wk cells of the type).

    Parameters
    ----------
    sdata
        The SpatialData from :func:`~napari_causcell.datasets.brain_aging` (its table
        ``"table"`` is used) or that table.
    cf
        Counterfactual AnnData (``layers['factual']``, ``layers['delta']``,
        ``obs['source_id']``), e.g. from :func:`napari_causcell.tl.counterfactual`.
    do
        The intervention the counterfactual was made with, e.g. ``{"age": "90wk"}``.
    source_mask
        Boolean mask over the table's cells that were intervened on; default: the cells
        named by ``cf.obs['source_id']``.
    min_cells
        Cell types with fewer source cells are left out of the matrices (noisy means).
    return_matrices
        Also return the matrices as DataFrames under ``"matrices"`` (not JSON-serialisable).

    Returns
    -------
    dict
        ``do``, ``n_cells``, ``n_genes``, ``cell_types``, ``n_per_type``, ``left_out_types``;
        ``pearson`` and ``mse`` each with ``causcell``, ``mean_shift`` and ``no_change``;
        when ``do`` sets ``age``: ``planted`` (one record per planted effect present:
        ``gene``, ``cell_type``, ``log2fc_90wk``, ``predicted``, ``true``, ``sign_agrees``),
        ``planted_sign_agreement`` (k), ``planted_n`` (n) and ``planted_slope`` (least-squares
        slope of predicted on true planted change; 1 when calibrated); ``switched``: the true
        share of cells whose cell type changes and, when the counterfactual recomputed labels
        (``obs['factual_cell_type']``), the predicted share.
    """
    return _accuracy(sdata, cf, do, source_mask, min_cells, return_matrices)


def _accuracy(sdata: Any, cf: ad.AnnData, do: Mapping[str, str], source_mask: Any,
              min_cells: int, return_matrices: bool) -> dict[str, Any]:
    from ..datasets import brain_aging_truth

    table = resolve_table(sdata, TABLE)[0] if is_spatialdata(sdata) else sdata
    do = {str(k): str(v) for k, v in dict(do).items()}
    source_mask, source_ids = _checked_source(table, cf, source_mask)
    genes = [str(g) for g in cf.var_names]
    truth = brain_aging_truth(sdata, do, cells=source_mask)
    pred_delta, true_delta = _per_cell_changes(cf, truth, table.obs_names[source_mask],
                                               source_ids, genes)
    # group by the factual cell type; drop rare types
    src_type = truth.obs["source_cell_type"].astype(str).to_numpy()
    counts = pd.Series(src_type).value_counts()
    order = [str(c) for c in table.obs["cell_type"].astype("category").cat.categories]
    types = [t for t in order if counts.get(t, 0) >= min_cells]
    if not types:
        raise DataError(f"No cell type has {min_cells} or more intervened cells.")
    pred_mat = group_mean_change(pred_delta, src_type, order=types).to_numpy()
    true_mat = group_mean_change(true_delta, src_type, order=types).to_numpy()
    shift = _mean_shift(table, genes, do, source_mask, types)
    out = {
        "do": do, "n_cells": int(source_mask.sum()), "n_genes": len(genes),
        "cell_types": types, "n_per_type": {t: int(counts[t]) for t in types},
        "left_out_types": [t for t in order if 0 < counts.get(t, 0) < min_cells],
        **_scores(pred_mat, true_mat, shift),
    }
    if "age" in do:
        out.update(_planted(pred_mat, true_mat, types, genes))
    out["switched"] = _switched(cf, truth, src_type)
    if return_matrices:
        out["matrices"] = {
            name: pd.DataFrame(m, index=types, columns=genes)
            for name, m in (("predicted", pred_mat), ("true", true_mat), ("mean_shift", shift))
        }
    return out


def _checked_source(table: ad.AnnData, cf: ad.AnnData,
                    source_mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """The intervened cells' mask over ``table`` and ``cf``'s source ids, checked to agree."""
    for key in ("factual", "delta"):
        if key not in cf.layers:
            raise DataError(f"The counterfactual has no layers[{key!r}].")
    if "source_id" not in cf.obs:
        raise DataError("The counterfactual has no obs['source_id'].")
    source_ids = cf.obs["source_id"].astype(str).to_numpy()
    if source_mask is None:
        source_mask = table.obs_names.isin(source_ids)
    source_mask = np.asarray(source_mask, dtype=bool)
    if source_mask.shape != (table.n_obs,):
        raise DataError(f"source_mask has shape {source_mask.shape}, expected ({table.n_obs},).")
    if set(table.obs_names[source_mask]) != set(source_ids):
        raise DataError("The counterfactual's cells (obs['source_id']) differ from source_mask.")
    return source_mask, source_ids


def _per_cell_changes(cf: ad.AnnData, truth: ad.AnnData, names: pd.Index,
                      source_ids: np.ndarray, genes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true change per source cell (rows ``names``; samples averaged)."""
    pred = pd.DataFrame(dense32(cf.layers["delta"])).groupby(source_ids).mean().reindex(names)
    fact = pd.DataFrame(dense32(cf.layers["factual"])).groupby(source_ids).mean().reindex(names)
    true_delta = expression(truth, genes).toarray() - fact.to_numpy()
    return pred.to_numpy(), true_delta


def _mean_shift(table: ad.AnnData, genes: list[str], do: dict[str, str],
                source_mask: np.ndarray, types: list[str]) -> np.ndarray:
    """The foil: per type, mean expression of the cells with the ``do`` labels minus that of
    the source cells (0 for a type without such cells: no information)."""
    all_x = expression(table, genes).toarray()
    all_type = table.obs["cell_type"].astype(str).to_numpy()
    target = np.ones(table.n_obs, dtype=bool)
    for key, value in do.items():
        target &= table.obs[key].astype(str).to_numpy() == value
    shift = np.zeros((len(types), len(genes)))
    for i, t in enumerate(types):
        tgt, src = target & (all_type == t), source_mask & (all_type == t)
        if tgt.any():
            shift[i] = all_x[tgt].mean(0) - all_x[src].mean(0)
    return shift


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def _scores(pred_mat: np.ndarray, true_mat: np.ndarray, shift: np.ndarray) -> dict[str, Any]:
    """``pearson`` and ``mse`` of the model and the two foils against the truth."""
    zeros = np.zeros_like(true_mat)
    return {
        "pearson": {"causcell": change_correlation(pred_mat, true_mat),
                    "mean_shift": change_correlation(shift, true_mat), "no_change": 0.0},
        "mse": {"causcell": _mse(pred_mat, true_mat), "mean_shift": _mse(shift, true_mat),
                "no_change": _mse(zeros, true_mat)},
    }


def _planted(pred_mat: np.ndarray, true_mat: np.ndarray, types: list[str],
             genes: list[str]) -> dict[str, Any]:
    """The planted age effects present: predicted vs true change, sign and slope."""
    from ..datasets import PLANTED_AGE_EFFECTS

    rows = []
    for rec in PLANTED_AGE_EFFECTS.itertuples(index=False):
        if rec.gene not in genes or rec.cell_type not in types:
            continue
        i, j = types.index(rec.cell_type), genes.index(rec.gene)
        p, t = float(pred_mat[i, j]), float(true_mat[i, j])
        rows.append({"gene": rec.gene, "cell_type": rec.cell_type,
                     "log2fc_90wk": float(rec.log2fc_90wk), "predicted": p, "true": t,
                     "sign_agrees": bool(np.sign(p) == np.sign(t))})
    out: dict[str, Any] = {"planted": rows,
                           "planted_sign_agreement": sum(r["sign_agrees"] for r in rows),
                           "planted_n": len(rows)}
    if len(rows) >= 2:  # calibration: 1 when predicted effects have the true size
        out["planted_slope"] = float(np.polyfit([r["true"] for r in rows],
                                                [r["predicted"] for r in rows], 1)[0])
    return out


def _switched(cf: ad.AnnData, truth: ad.AnnData, src_type: np.ndarray) -> dict[str, float]:
    """Share of cells whose cell type changes: true, and predicted where ``cf`` has labels."""
    true_type = truth.obs["cell_type"].astype(str).to_numpy()
    out = {"true": float(np.mean(true_type != src_type))}
    if "factual_cell_type" in cf.obs:
        cf_type = cf.obs["cell_type"].astype(str).to_numpy()
        out["causcell"] = float(np.mean(
            cf_type != cf.obs["factual_cell_type"].astype(str).to_numpy()))
    return out
