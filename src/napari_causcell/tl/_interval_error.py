"""The model-error term of :func:`~napari_causcell.tl.change_intervals`.

Its variance is ``c * shape`` (:func:`shape`: the squared change plus the group's mean
squared change; the model's errors grow with the change). ``c`` is at least
:data:`C_PRIOR`, measured across the benchmark's tasks, and is raised where the user's own
validation cells show, beyond their own noise, a larger error: within each stratum of
validation cells (cells the model never trained on) sharing the labels the intervention
cannot change, the counterfactual mean of the cells without the target labels is compared
with the mean of the cells with them; the excess of that squared error over the sampling
variances, pooled over strata, genes and models, is the measured ``c``. Few validation
cells measure it noisily (on the benchmark 0.2x to 4x the true scale): used alone it made
intervals 5x too narrow on one tissue and 2-4x too wide on others, so it only raises the
floor where its value less one jackknife standard error exceeds it. Why, and how well it
covers: docs/benchmarks.md "Intervals and reliability".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._keys import Key
from ..data.stream import ExpressionSource


#: The least error per unit of :func:`shape`: the median over six benchmark tasks (two
#: simulated tissues in and out of distribution, STARmap and MERFISH held-out combinations)
#: of the ratio that makes each task's intervals exact (0.11-0.61). Left out task by task,
#: the median of the other five covers 90-96 % on the one left out.
C_PRIOR = 0.26


def expression(model, adata) -> np.ndarray:
    """Cells x model genes, in the model's expression space (dense)."""
    return ExpressionSource(adata, model.genes, model.layer, model.log_normalized).dense()


def target_mask(table, do: Mapping[str, object]) -> np.ndarray:
    """Cells of ``table`` whose labels are the intervention's target values."""
    mask = np.ones(table.n_obs, bool)
    for concept, value in do.items():
        mask &= table.obs[concept].astype(str).to_numpy() == str(value)
    return mask


def shape(change: np.ndarray) -> np.ndarray:
    """Where the model's in-distribution error lies, per (group, gene): the squared change
    plus the group's mean squared change (errors grow with the change; the mean keeps an
    interval around genes the model calls unchanged)."""
    sq = np.asarray(change, float) ** 2
    return sq + sq.mean(axis=-1, keepdims=True)


def _strata(model, table, do: Mapping[str, object], hold) -> np.ndarray:
    """Each cell's labels of the concepts ``do`` cannot change (neither intervened nor a
    descendant in the graph, unless held), joined: the matched validation strata."""
    moved, grew = set(do), True
    while grew:
        new = {b for a, b in model.edges if a in moved} - moved
        moved, grew = moved | new, bool(new)
    keep = [c for c in model.concepts
            if c in table.obs and (c not in moved or c in (hold or ()))]
    if not keep:
        return np.zeros(table.n_obs, dtype=str)
    return table.obs[keep].astype(str).agg("|".join, axis=1).to_numpy()


def in_distribution(models, table, do: Mapping[str, object], cf_kw: dict, min_cells: int
                    ) -> tuple[float, float, int, str]:
    """``(c, se, pairs, note)``: in each validation stratum of each model (cells it never
    trained on, matched on the labels ``do`` cannot change) the counterfactual mean of the
    cells without the target labels against the mean of those with them; ``c`` is the
    excess of the squared error over both means' sampling variances per unit of
    :func:`shape` of the predicted change, pooled over strata, genes and models (``se``: its
    jackknife standard error over the (model, stratum) units)."""
    target = target_mask(table, do)
    excess, scale = [], []
    for model in models:
        if model.val_names is None:
            continue
        val = table.obs_names.isin(model.val_names)
        strata = _strata(model, table, do, cf_kw.get("hold"))
        pairs = [(np.flatnonzero(val & ~target & (strata == s)),
                  np.flatnonzero(val & target & (strata == s))) for s in np.unique(strata[val])]
        pairs = [(a, b) for a, b in pairs if min(len(a), len(b)) >= min_cells]
        if pairs:
            e, sc = _matched(model, table, do, cf_kw, pairs)
            excess.append(e)
            scale.append(sc)
    if not excess:
        return 0.0, np.inf, 0, "none: no validation cells with and without the target labels"
    excess, scale = np.concatenate(excess), np.concatenate(scale)
    c, se = pooled_ratio(excess.mean(1), scale.mean(1))
    return c, se, int(excess.size), "validation cells matched on the labels do() cannot change"


def pooled_ratio(excess: np.ndarray, scale: np.ndarray) -> tuple[float, float]:
    """``(sum(excess) / sum(scale), its jackknife standard error)`` over the (model, stratum)
    units (``inf`` with one unit: no error can be measured)."""
    total, norm = excess.sum(), max(scale.sum(), 1e-12)
    n = len(excess)
    if n < 2:
        return float(total / norm), np.inf
    loo = (total - excess) / np.maximum(norm - scale, 1e-12)
    return float(total / norm), float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))


def error_scale(c: float, se: float) -> float:
    """The ``c`` the intervals use: :data:`C_PRIOR`, raised to the measured ``c`` less one
    standard error where that is larger (the validation cells must show, beyond their own
    noise, that the model errs more than it did on the benchmark)."""
    return max(C_PRIOR, c - se)


def _matched(model, table, do, cf_kw: dict, pairs) -> tuple[np.ndarray, np.ndarray]:
    """Excess squared error and :func:`shape` per (stratum, gene) of one model."""
    rows = np.concatenate([a for a, _ in pairs])
    cf = model.counterfactual(table[rows], do=dict(do), n_samples=1,
                              **{k: v for k, v in cf_kw.items() if k != "n_samples"})
    x = expression(model, table[rows])
    delta = np.asarray(cf.layers[Key.layers.DELTA])
    excess, pred, start = [], [], 0
    for a, b in pairs:
        i = slice(start, start + len(a))
        start += len(a)
        x_t = expression(model, table[b])
        cf_x = x[i] + delta[i]
        err = cf_x.mean(0) - x_t.mean(0)
        noise = cf_x.var(0, ddof=1) / len(a) + x_t.var(0, ddof=1) / len(b)
        excess.append(err**2 - noise)
        pred.append(delta[i].mean(0))
    return np.stack(excess), shape(np.stack(pred))
