"""Counterfactual changes per (group, gene) with intervals and a reliability score.

Experimental (issue 26): the intervals are NOT calibrated yet (see ``change_intervals``).

The standard error adds three parts: the spread between models (deep ensemble; 0 with one
model), the sampling of the group's cells (variance of the per-cell change over the cells)
and the counterfactual draws (donors, label noise). The model's own error is added as
``c * v`` (``v`` the group's expression variance per gene), ``c`` by the method of moments
from groups whose target-labelled cells the data hold (observed contrast minus prediction,
less both sampling variances). ``n_support`` counts training cells (outside the model's
validation cells) with the group's label and the target labels; ``extrapolated`` marks
groups with none, or whose change was mostly transported from other labels.
``reliability`` in ``[0, 1]``: ``support / (support + 20) / (1 + half_width /
median_half_width)``, halved when extrapolated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._keys import Key
from ..data import resolve_table
from ..data.stream import ExpressionSource
from ..errors import DataError, NotTrainedError, SettingError
from ._counterfactual import select_cells

COLUMNS = ["group", "gene", "change", "lower", "upper", "reliability", "n_support",
           "extrapolated"]
SUPPORT_HALF = 20  # training cells of a combination at which support counts half


@dataclass
class _Draws:
    """One model's counterfactual, reduced to groups: per-sample group means ``(S, Gr, G)``,
    the variance over cells of the per-cell change ``(Gr, G)``, cells and the share
    transported (``extrapolated``) per group."""

    means: np.ndarray
    cell_var: np.ndarray
    n: np.ndarray
    transported: np.ndarray


def change_intervals(models: Any, data: Any, do: Mapping[str, Any], cells: Any = None, *,
                     groupby: str = "cell_type", level: float = 0.9,
                     hold: Sequence[str] | None = None, table_key: str | None = None,
                     n_samples: int = 4, seed: int = 0, calibrate: bool = True,
                     min_cells: int = 5, **kwargs: Any) -> pd.DataFrame:
    """The change ``do()`` makes to each group's mean expression, with an interval and a
    reliability score per (group, gene). EXPERIMENTAL: not calibrated (module docstring).

    Parameters
    ----------
    models
        One trained :class:`~napari_causcell.CausCell` or a list (an ensemble).
    data, do, cells, hold, table_key
        As :func:`counterfactual` (``hold``: concepts kept at each cell's own label).
    groupby
        obs column of the groups (each cell's own label).
    level
        Interval level (0.9: a 90 % interval).
    n_samples, seed, **kwargs
        Counterfactual draws per cell and model, their seed, and other settings of
        :meth:`CausCell.counterfactual`.
    calibrate, min_cells
        Add the model error measured on groups with at least ``min_cells`` cells of the
        target labels.

    Returns
    -------
    pandas.DataFrame
        One row per (group, gene): ``group, gene, change, lower, upper, reliability,
        n_support, extrapolated``; ``attrs['calibration']`` says how it was calibrated.
    """
    models = _checked_models(models)
    if not 0 < float(level) < 1:
        raise SettingError(f"level must be between 0 and 1, got {level!r}")
    table, _ = resolve_table(data, table_key)
    if groupby not in table.obs:
        raise DataError(f"Column {groupby!r} is not in obs; columns: {list(table.obs.columns)}.")
    source = table[select_cells(table, cells)]
    groups = source.obs[groupby].astype(str).to_numpy()
    labels = sorted(set(groups))
    draws = [_draws(m, source, do, groups, labels, n_samples,
                    dict(hold=hold, seed=seed, **kwargs)) for m in models]
    change, se = _combine(draws)
    z = float(stats.norm.ppf(0.5 + level / 2))
    error_var, factor, pairs = np.zeros_like(se), 0.0, 0
    if calibrate:
        error_var, factor, pairs = _calibration(models[0], table, source, do, groups, labels,
                                                change, se, groupby, min_cells)
    half = z * np.sqrt(se**2 + error_var)
    support = _support(models[0], table, do, groupby, labels)
    extrapolated = (support == 0) | (np.mean([d.transported for d in draws], 0) > 0.5)
    out = _frame(models[0].genes, labels, change, half, support, extrapolated)
    out.attrs["calibration"] = {"factor": factor, "pairs": pairs, "level": level,
                                "n_models": len(models), "n_samples": n_samples,
                                "method": "ensemble + cells + draws, conformal on observed "
                                          "contrasts" if pairs else "uncalibrated"}
    return out


def _checked_models(models: Any) -> list:
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if not models:
        raise SettingError("Give at least one model.")
    for m in models:
        if not getattr(m, "is_trained", False):
            raise NotTrainedError("Every model must be trained before change_intervals.")
    if any(list(m.genes) != list(models[0].genes) for m in models):
        raise DataError("The models have different genes; an ensemble shares its genes.")
    return models


def _draws(model, source, do, groups, labels, n_samples: int, kwargs: dict) -> _Draws:
    cf = model.counterfactual(source, do=dict(do), n_samples=n_samples, **kwargs)
    n = source.n_obs
    delta = np.asarray(cf.layers[Key.layers.DELTA]).reshape(n_samples, n, -1)
    moved = cf.obs[Key.obs.EXTRAPOLATED].to_numpy().reshape(n_samples, n)
    per_cell = delta.mean(0)
    at = [np.flatnonzero(groups == g) for g in labels]
    means = np.stack([np.stack([d[i].mean(0) for i in at]) for d in delta])
    cell_var = np.stack([per_cell[i].var(0, ddof=1) if len(i) > 1 else np.zeros(delta.shape[2])
                         for i in at])
    return _Draws(means, cell_var, np.array([len(i) for i in at]),
                  np.array([moved[:, i].mean() for i in at]))


def _combine(draws: list[_Draws]) -> tuple[np.ndarray, np.ndarray]:
    """Mean change ``(Gr, G)`` and its standard error from all models' draws."""
    per_model = np.stack([d.means.mean(0) for d in draws])  # (M, Gr, G)
    m, s = len(draws), draws[0].means.shape[0]
    var = np.mean([d.cell_var for d in draws], 0) / draws[0].n[:, None]
    var = var + np.mean([d.means.var(0, ddof=1) if s > 1 else 0 for d in draws], 0) / (s * m)
    if m > 1:
        var = var + per_model.var(0, ddof=1) * (1 + 1 / m)
    return per_model.mean(0), np.sqrt(var)


def _calibration(model, table, source, do, groups, labels, change, se, groupby: str,
                 min_cells: int) -> tuple[np.ndarray, float, int]:
    """The model's error variance per (group, gene), ``c * v`` (``v`` the variance of the
    group's expression), with ``c`` by the method of moments from groups whose
    target-labelled cells the data hold: ``mean((pred - observed)^2 - se^2 - se_obs^2) /
    mean(v)`` (>= 0)."""
    x_src = _expression(model, source)
    v = np.stack([x_src[groups == g].var(0) for g in labels])
    target = np.ones(table.n_obs, bool)
    for concept, value in do.items():
        target &= table.obs[concept].astype(str).to_numpy() == str(value)
    own = table.obs[groupby].astype(str).to_numpy()
    excess, scale = [], []
    for g, label in enumerate(labels):
        t_rows, s_rows = np.flatnonzero(target & (own == label)), groups == label
        if len(t_rows) < min_cells or s_rows.sum() < min_cells:
            continue
        x_t = _expression(model, table[t_rows])
        observed = x_t.mean(0) - x_src[s_rows].mean(0)
        se_obs2 = x_t.var(0, ddof=1) / len(t_rows) + x_src[s_rows].var(0, ddof=1) / s_rows.sum()
        excess.append((change[g] - observed) ** 2 - se[g] ** 2 - se_obs2)
        scale.append(v[g])
    if not excess:
        return np.zeros_like(v), 0.0, 0
    c = max(0.0, float(np.mean(np.concatenate(excess)) / max(np.mean(np.concatenate(scale)),
                                                               1e-12)))
    return c * v, c, int(sum(e.size for e in excess))


def _expression(model, adata) -> np.ndarray:
    return ExpressionSource(adata, model.genes, model.layer, model.log_normalized).dense()


def _support(model, table, do, groupby: str, labels: list[str]) -> np.ndarray:
    """Training cells (outside the validation cells) with each group's label and the target
    labels."""
    train = np.ones(table.n_obs, bool)
    if model.val_names is not None:
        train &= ~table.obs_names.isin(model.val_names)
    for concept, value in do.items():
        train &= table.obs[concept].astype(str).to_numpy() == str(value)
    own = table.obs[groupby].astype(str).to_numpy()
    return np.array([int((train & (own == g)).sum()) for g in labels])


def _frame(genes, labels, change, half, support, extrapolated) -> pd.DataFrame:
    n_g = len(genes)
    scale = float(np.median(half)) or 1.0
    support_w = (support / (support + SUPPORT_HALF))[:, None]
    reliability = support_w / (1.0 + half / scale) * np.where(extrapolated, 0.5, 1.0)[:, None]
    return pd.DataFrame({
        "group": np.repeat(labels, n_g), "gene": np.tile(np.asarray(genes, str), len(labels)),
        "change": change.ravel(), "lower": (change - half).ravel(),
        "upper": (change + half).ravel(), "reliability": reliability.ravel(),
        "n_support": np.repeat(support, n_g), "extrapolated": np.repeat(extrapolated, n_g),
    }, columns=COLUMNS)
