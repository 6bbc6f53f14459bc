"""The model-error terms of :func:`~napari_causcell.tl.change_intervals`.

Two terms, each measured on the user's own data, nothing fitted to a benchmark:

* **in distribution** (``c * shape``, :func:`shape`: the squared change plus the group's mean
  squared change): within each stratum of *validation* cells (cells the model never trained
  on) sharing the labels the intervention cannot change, the counterfactual mean of the cells
  without the target labels is compared with the mean of the cells with them. ``c`` is the
  method-of-moments excess of that squared error over the sampling variances, pooled over
  strata, genes and models, plus its jackknife standard error over the strata (few
  validation cells measure it noisily; the bound keeps an unlucky estimate from narrowing
  every interval).
* **out of distribution** (``tau2`` per gene): where a group's target combination was never
  measured, its change is transported from other groups; its error is how much the observed
  change differs between groups (random-effects between-group variance of the observed
  contrasts target - source per group, DerSimonian-Laird moments, times ``1 + 1/K``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .._keys import Key
from ..data.stream import ExpressionSource


@dataclass
class ErrorTerms:
    """``c`` (in-distribution error per unit of expression variance), ``tau2`` (per gene,
    between-group variance of the change), and how many pairs / groups measured each."""

    c: float = 0.0
    tau2: np.ndarray | None = None
    pairs: int = 0
    groups: int = 0
    notes: list[str] = field(default_factory=list)


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
                    ) -> tuple[float, int, str]:
    """``(c, pairs, note)``: in each validation stratum of each model (cells it never
    trained on, matched on the labels ``do`` cannot change) the counterfactual mean of the
    cells without the target labels against the mean of those with them; ``c`` is the
    excess of the squared error over both means' sampling variances per unit of
    :func:`shape` of the predicted change, pooled over strata, genes and models."""
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
        return 0.0, 0, "none: no validation cells with and without the target labels"
    excess, scale = np.concatenate(excess), np.concatenate(scale)
    return (upper_ratio(excess.mean(1), scale.mean(1)), int(excess.size),
            "validation cells matched on the labels do() cannot change")


def upper_ratio(excess: np.ndarray, scale: np.ndarray) -> float:
    """``sum(excess) / sum(scale)`` over the (model, stratum) units plus one jackknife
    standard error, at least 0: the error estimate is itself noisy (a few validation strata),
    and an unlucky low estimate must not make every interval too narrow."""
    total, norm = excess.sum(), max(scale.sum(), 1e-12)
    c = total / norm
    n = len(excess)
    if n < 2:
        return max(float(c), 0.0)
    loo = (total - excess) / np.maximum(norm - scale, 1e-12)
    se = np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2))
    return max(float(c + se), 0.0)


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


def between_groups(model, table, do: Mapping[str, object], source_values: Mapping[str, set],
                   own: np.ndarray, min_cells: int) -> tuple[np.ndarray | None, int]:
    """``(tau2 * (1 + 1/K), K)``: the between-group variance per gene of the observed change
    (target cells - source cells of each group with >= ``min_cells`` of both)."""
    target = target_mask(table, do)
    source = np.ones(table.n_obs, bool)
    for concept, values in source_values.items():
        source &= np.isin(table.obs[concept].astype(str).to_numpy(), list(values))
    changes, noise = [], []
    for label in np.unique(own):
        t_rows = np.flatnonzero(target & (own == label))
        s_rows = np.flatnonzero(source & (own == label))
        if len(t_rows) < min_cells or len(s_rows) < min_cells:
            continue
        x_t, x_s = expression(model, table[t_rows]), expression(model, table[s_rows])
        changes.append(x_t.mean(0) - x_s.mean(0))
        noise.append(x_t.var(0, ddof=1) / len(t_rows) + x_s.var(0, ddof=1) / len(s_rows))
    k = len(changes)
    if k < 2:
        return None, k
    tau2 = np.maximum(np.var(changes, axis=0, ddof=1) - np.mean(noise, axis=0), 0.0)
    return tau2 * (1 + 1 / k), k
