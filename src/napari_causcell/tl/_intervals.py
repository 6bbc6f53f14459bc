"""Counterfactual changes per (group, gene) with a calibrated interval and a reliability score.

The interval's variance adds the sampling of the group's cells and draws, and the model's own
error (:mod:`._interval_error`): ``c * (change^2 + the group's mean change^2)``, ``c`` at
least a floor measured across the benchmark's tasks and raised where the models'
validation cells show more. Label combinations never measured (``extrapolated``) carry the
same error model: measured, a between-group term made them 6-8x wider than their change
and was removed. With several models (an ensemble,
:func:`train_ensemble`) the change is their mean; each model's error term already holds the
seed-to-seed spread, so it is not added twice. ``reliability = 1 / (1 + half_width /
RELIABILITY_SCALE)``: one scale for every data set (log-expression units), so scores rank
answers across data sets. How this was chosen and how well it covers: docs/benchmarks.md
"Intervals and reliability".
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._keys import Key
from ..data import resolve_table
from ..errors import DataError, NotTrainedError, SettingError
from . import _interval_error as E
from ._counterfactual import select_cells

COLUMNS = ["group", "gene", "change", "lower", "upper", "reliability", "n_support",
           "extrapolated"]
RELIABILITY_SCALE = 0.25  # half-width (log units) at which reliability is 0.5
ALL = "all"


@dataclass
class _Draws:
    """One model's counterfactual, reduced to strata: per-draw means ``(S, Gr, G)``, the
    variance over cells of the per-cell change ``(Gr, G)``, cells, and the share of
    transported (extrapolated) cells per stratum."""

    means: np.ndarray
    cell_var: np.ndarray
    n: np.ndarray
    transported: np.ndarray


def change_intervals(models: Any, data: Any, do: Mapping[str, Any], cells: Any = None, *,
                     groupby: str | None = "cell_type", level: float = 0.9,
                     hold: Sequence[str] | None = None, table_key: str | None = None,
                     counterfactual: Any = None, n_samples: int = 4, seed: int = 0,
                     calibrate: bool = True, min_cells: int = 5,
                     **kwargs: Any) -> pd.DataFrame:
    """The change ``do()`` makes to each group's mean expression, with an interval and a
    reliability score per (group, gene).

    Parameters
    ----------
    models
        One trained :class:`~napari_causcell.CausCell` or a list (an ensemble,
        :func:`train_ensemble`).
    data, do, cells, hold, table_key
        As :func:`counterfactual` (``hold``: concepts kept at each cell's own label).
    groupby
        obs column of the groups (each cell's own label); ``None``: one group ``"all"``
        over the chosen cells (its error still measured per label of the concept the
        intervention acts on most, then pooled).
    level
        Interval level (0.9: a 90 % interval).
    counterfactual
        A result of :meth:`CausCell.counterfactual` on exactly the chosen cells (one model),
        used instead of computing it again.
    n_samples, seed, **kwargs
        Counterfactual draws per cell and model, their seed, and other settings of
        :meth:`CausCell.counterfactual`.
    calibrate, min_cells
        Add the model's error term (``False``: sampling and, with an ensemble, the spread
        between models only); a validation stratum measures it with ``min_cells`` cells
        on each side.

    Returns
    -------
    pandas.DataFrame
        One row per (group, gene): ``group, gene, change, lower, upper, reliability,
        n_support`` (cells of ``data`` outside validation with the group's label and the
        target labels; 0 where the model never saw that combination), ``extrapolated``
        (no such cell, or most of the group's change transported). ``attrs['calibration']``
        says what measured the error terms.
    """
    frames = _both(models, data, do, cells, groupby, level, table_key, hold=hold, seed=seed,
                   n_samples=n_samples, counterfactual=counterfactual, calibrate=calibrate,
                   min_cells=min_cells, kwargs=kwargs)
    return frames[0] if groupby is None else frames[1]


def pooled_and_strata(models: Any, data: Any, do: Mapping[str, Any], cells: Any = None,
                      **kwargs: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``change_intervals(..., groupby=None)`` (one group ``"all"``) and, from the same
    draws, the intervals of each stratum it pooled (``group``: the label of
    ``attrs['calibration']['stratum']``). Keywords and their defaults: those of
    :func:`change_intervals`."""
    bound = inspect.signature(change_intervals).bind(models, data, do, cells, groupby=None,
                                                     **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    settings = {k: a[k] for k in ("hold", "seed", "n_samples", "counterfactual", "calibrate",
                                  "min_cells", "kwargs")}
    return _both(models, data, do, cells, None, a["level"], a["table_key"], **settings)


def _both(models, data, do, cells, groupby, level, table_key, *, hold, seed, n_samples,
          counterfactual, calibrate, min_cells, kwargs) -> tuple[pd.DataFrame | None,
                                                                 pd.DataFrame]:
    """``(pooled or None, per stratum)`` frames, each with ``attrs['calibration']``."""
    models = _checked_models(models, counterfactual)
    table, source = _checked_data(data, table_key, cells, groupby, level)
    key = groupby if groupby is not None else _stratum(models[0], do, table)
    strata = source.obs[key].astype(str).to_numpy()
    labels = sorted(set(strata))
    cf_kw = dict(hold=hold, seed=seed, **kwargs)
    draws = [_draws(m, source, do, strata, labels, n_samples, cf_kw, counterfactual)
             for m in models]
    per_model = np.stack([d.means.mean(0) for d in draws])
    sampling, transported = _sampling_var(draws), np.mean([d.transported for d in draws], 0)
    support = _support(models, table, do, key, labels)
    support[transported >= 1.0] = 0  # the model never saw the combination (other data given)
    info = {"level": level, "n_models": len(models), "groupby": groupby, "stratum": key}
    if calibrate:
        err, measured = _error_var(models, table, do, per_model, min_cells, cf_kw)
        info.update(measured)
    else:
        err = _spread(per_model)
        info["notes"] = ["uncalibrated: sampling and the spread between models only"]
    var, change = sampling + err, per_model.mean(0)
    extrapolated = (support == 0) | (transported > 0.5)
    z = float(stats.norm.ppf(0.5 + level / 2))
    by_stratum = _frame(models[0].genes, labels, change, z * np.sqrt(var), support,
                        extrapolated)
    by_stratum.attrs["calibration"] = {**info, "groupby": key}
    if groupby is not None:
        return None, by_stratum
    change, var, support, extrapolated, labels = _pooled(
        draws[0].n, change, var, sampling, support, extrapolated)
    out = _frame(models[0].genes, labels, change, z * np.sqrt(var), support, extrapolated)
    out.attrs["calibration"] = dict(info)
    return out, by_stratum


def _spread(per_model: np.ndarray) -> np.ndarray | float:
    """Variance between the models' changes, for one more model (0 with one model)."""
    n = len(per_model)
    return per_model.var(0, ddof=1) * (1 + 1 / n) if n > 1 else 0.0


def _checked_data(data, table_key, cells, groupby, level):
    """The table and the chosen cells' view, after checking ``groupby`` and ``level``."""
    if not 0 < float(level) < 1:
        raise SettingError(f"level must be between 0 and 1, got {level!r}")
    table, _ = resolve_table(data, table_key)
    if groupby is not None and groupby not in table.obs:
        raise DataError(f"Column {groupby!r} is not in obs; columns: {list(table.obs.columns)}.")
    return table, table[select_cells(table, cells)]


def _checked_models(models: Any, counterfactual: Any) -> list:
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if not models:
        raise SettingError("Give at least one model.")
    for m in models:
        if not getattr(m, "is_trained", False):
            raise NotTrainedError("Every model must be trained before change_intervals.")
    if any(list(m.genes) != list(models[0].genes) for m in models):
        raise DataError("The models have different genes; an ensemble shares its genes.")
    if counterfactual is not None and len(models) > 1:
        raise SettingError("counterfactual= is one model's result: give that one model.")
    return models


def _stratum(model, do: Mapping[str, Any], table) -> str:
    """The concept whose labels the error terms are measured over when no groupby is
    given: a child of the intervened concepts in the graph, else the concept with most
    labels, else the first intervened one."""
    others = [c for c in model.concepts if c not in do and c in table.obs]
    children = [b for a, b in model.edges if a in do and b in others]
    if children:
        return children[0]
    if others:
        return max(others, key=lambda c: table.obs[c].nunique())
    return next(iter(do))


def _draws(model, source, do, strata, labels, n_samples: int, kwargs: dict,
           cf: Any = None) -> _Draws:
    if cf is None:
        cf = model.counterfactual(source, do=dict(do), n_samples=n_samples, **kwargs)
    n = source.n_obs
    if cf.n_obs % n:
        raise DataError(f"The counterfactual has {cf.n_obs} rows, not a multiple of the "
                        f"{n} chosen cells: pass the result computed on these cells.")
    s = cf.n_obs // n
    delta = np.asarray(cf.layers[Key.layers.DELTA]).reshape(s, n, -1)
    moved = cf.obs[Key.obs.EXTRAPOLATED].to_numpy().reshape(s, n)
    per_cell = delta.mean(0)
    at = [np.flatnonzero(strata == g) for g in labels]
    means = np.stack([np.stack([d[i].mean(0) for i in at]) for d in delta])
    cell_var = np.stack([per_cell[i].var(0, ddof=1) if len(i) > 1 else np.zeros(delta.shape[2])
                         for i in at])
    return _Draws(means, cell_var, np.array([len(i) for i in at]),
                  np.array([moved[:, i].mean() for i in at]))


def _sampling_var(draws: list[_Draws]) -> np.ndarray:
    """Variance of the group mean from the cells and the counterfactual draws ``(Gr, G)``."""
    m, s = len(draws), draws[0].means.shape[0]
    var = np.mean([d.cell_var for d in draws], 0) / draws[0].n[:, None]
    if s > 1:
        var = var + np.mean([d.means.var(0, ddof=1) for d in draws], 0) / (s * m)
    return var


def _error_var(models, table, do, per_model, min_cells: int, cf_kw: dict
               ) -> tuple[np.ndarray, dict]:
    """The model's error variance per (stratum, gene), ``c * shape``, and what set ``c``."""
    measured, se, pairs, note = E.in_distribution(models, table, do, cf_kw, min_cells)
    c = E.error_scale(measured, se)
    source = "the validation cells" if c > E.C_PRIOR else "the benchmark's floor"
    notes = [f"in distribution: {pairs} (stratum, gene) pairs of {note} measure c "
             f"{measured:.3f} +- {se:.3f}",
             f"error scale c = {c:.3f} from {source} (at least {E.C_PRIOR}, raised only "
             "where the measured c less one standard error is larger); extrapolated "
             "groups carry the same error model (measured to cover on held-out "
             "combinations)"]
    info = {"c": c, "c_measured": measured, "c_measured_se": se, "pairs": pairs,
            "notes": notes}
    return c * E.shape(per_model.mean(0)), info


def _support(models, table, do, key: str, labels: list[str]) -> np.ndarray:
    """Training cells (outside validation) with each stratum's label and the target labels."""
    train = E.target_mask(table, do)
    if models[0].val_names is not None:
        train &= ~table.obs_names.isin(models[0].val_names)
    own = table.obs[key].astype(str).to_numpy()
    return np.array([int((train & (own == g)).sum()) for g in labels])


def _pooled(n, change, var, sampling, support, extrapolated):
    """One group over every stratum: cell-weighted mean; the model's errors of the strata
    are taken as fully correlated (a shared bias), the sampling as independent."""
    w = (n / n.sum())[:, None]
    err = np.sqrt(np.maximum(var - sampling, 0.0))
    pooled_var = (w**2 * sampling).sum(0) + (w * err).sum(0) ** 2
    share = float((w[:, 0] * extrapolated).sum())
    return ((w * change).sum(0)[None], pooled_var[None], np.array([support.sum()]),
            np.array([share > 0.5]), [ALL])


def _frame(genes, labels, change, half, support, extrapolated) -> pd.DataFrame:
    n_g = len(genes)
    reliability = 1.0 / (1.0 + half / RELIABILITY_SCALE)
    return pd.DataFrame({
        "group": np.repeat(labels, n_g), "gene": np.tile(np.asarray(genes, str), len(labels)),
        "change": change.ravel(), "lower": (change - half).ravel(),
        "upper": (change + half).ravel(), "reliability": reliability.ravel(),
        "n_support": np.repeat(support, n_g), "extrapolated": np.repeat(extrapolated, n_g),
    }, columns=COLUMNS)
