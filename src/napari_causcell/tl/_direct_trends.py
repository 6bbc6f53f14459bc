"""The trend test run directly on the observed cells: target-label vs source-label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .. import stats
from ..data import expression, resolve_table
from ..errors import DataError, SettingError
from ._defaults import cluster_key, labels_like, time_concept, youngest_label
from ._pseudobulk import donor_variance, groups, levels
from ._trend_common import (DEFAULT_MIN_EFFECT, DONOR_GUESSES, as_list, check_columns,
                            check_labels, check_level, check_params, dense, donor_column,
                            donor_labels)
from ._trend_docs import (DIRECT_TRENDS_INTRO, DIRECT_TRENDS_PARAMETERS, DIRECT_TRENDS_RESULTS,
                          fill_doc)
from ._trend_results import finish, null_params, store, warn_one_donor


@dataclass
class _Setting:
    """What every group of a direct_trends call is tested with."""

    source: str
    genes: list[str]
    groupby: list[str]
    unit: str
    test: str
    level: float
    min_cells: int
    marginal: bool


@fill_doc(intro=DIRECT_TRENDS_INTRO, parameters=DIRECT_TRENDS_PARAMETERS,
          results=DIRECT_TRENDS_RESULTS)
def direct_trends(
    data: Any, concept: str | None = None, source: str | None = None,
    targets: Sequence[str] | str | None = None,
    groupby: Sequence[str] | str | None = "auto",
    genes: Sequence[str] | None = None, *, unit: str = "auto",
    donor_key: str | None | bool = None, level: float = 0.95, test: str = "t-test",
    alpha: float = 0.05, min_effect: float = DEFAULT_MIN_EFFECT, min_cells: int = 10,
    min_donor_cells: int = 5, null: str = "theoretical", marginal: bool = True,
    layer: str | None = None, log_normalized: bool = False, table_key: str | None = None,
    key_added: str = "causcell_direct_trends", copy: bool = False,
) -> pd.DataFrame | None:
    """The same trend question asked of the observed cells: target-label vs source-label.
    Written into the data (scverse style: in place, returning ``None``, unless ``copy=True``).

    {intro}

    Parameters
    ----------
    {parameters}

    {results}
    """
    _check_direct(null, test, alpha, min_effect, min_cells, unit, level)
    table, _ = resolve_table(data, table_key)
    concept, source, groupby = _direct_defaults(table, concept, source, groupby)
    check_columns(table, [concept, *groupby], "Concept/groupby")
    donor_col = donor_column(table, donor_key)
    if unit == "donors" and donor_col is None:
        raise DataError(f"unit='donors' needs a donor column (tried {list(DONOR_GUESSES)}); "
                        "pass donor_key=.")
    targets, genes, values = _labels_and_genes(table, concept, source, targets, genes)
    x = dense(expression(table, genes, layer, log_normalized))
    # donor (pseudobulk) means per label and group, and their within-label variance pooled
    # over every label of the concept (as a linear model with all ages would)
    dvar = donor_variance(x, table.obs[groupby] if groupby else table.obs[[]], values,
                          donor_labels(table, donor_col), groupby, marginal, min_donor_cells)
    setting = _Setting(str(source), genes, groupby, unit, test, level, min_cells, marginal)
    frames, skipped = [], []
    for target in targets:
        _target_rows(table, concept, target, x, values, dvar, setting, frames, skipped)
    if not frames:
        raise DataError(f"No group has {min_cells} or more cells at both {source!r} and the "
                        "target" + (" with donor replication" if unit == "donors" else "")
                        + "; lower min_cells or group more coarsely.")
    res, prior = _donor_tests(pd.concat(frames, ignore_index=True), level)
    df = finish(res, groupby, alpha, min_effect, null, level)
    params = {
        "method": "direct", "concept": concept, "source": str(source), "targets": targets,
        "groupby": groupby, "test": test, "unit": unit, "alpha": alpha,
        "min_effect": min_effect, "min_cells": min_cells, "min_donor_cells": min_donor_cells,
        "level": level, "marginal": marginal, "donor_key": donor_col or "",
        "prior_df": {k: v["d0"] for k, v in prior.items()}, **null_params(df),
    }
    if not copy:
        store(table, key_added, df, params, skipped)
    warn_one_donor(df, "direct trend")
    return df if copy else None


def _direct_defaults(table: ad.AnnData, concept: str | None, source: str | None,
                     groupby: Any) -> tuple[str, str, list[str]]:
    """``concept``: ``age`` or the only label column named like a time; ``source``: its
    youngest label; ``groupby="auto"``: the cell-type column (``cell_type``, else the only
    column named like cell types) and ``domain`` where present (#28 item 8: defaults from the
    data, not the built-in simulator)."""
    obs = table.obs
    if concept is None:
        labels = [str(c) for c in obs.columns if labels_like(obs[c])]
        try:
            concept = time_concept(labels)
        except SettingError:
            raise SettingError(f"Pass concept=: no single label column named like a time "
                               f"(age, time, stage...); label columns: {labels}.") from None
    check_columns(table, [concept], "Concept")
    if source is None:
        col = obs[concept]
        cats = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) \
            else pd.unique(col.astype(str))
        source = youngest_label([str(c) for c in cats if (col.astype(str) == str(c)).any()])
    if isinstance(groupby, str) and groupby == "auto":
        groupby = []
        try:
            groupby.append(cluster_key(obs))
        except SettingError:
            if "domain" not in obs.columns:
                raise
        groupby += ["domain"] if "domain" in obs.columns else []
    return concept, str(source), as_list(groupby)


def _check_direct(null: str, test: str, alpha: float, min_effect: float, min_cells: int,
                  unit: str, level: float) -> None:
    if null == "auto":
        raise SettingError("direct_trends takes null='theoretical' (default) or 'empirical'.")
    check_params(test, alpha, min_effect, min_cells, null)
    if null == "empirical" and test != "t-test":
        raise SettingError("null='empirical' rescales t statistics; use test='t-test'.")
    if unit not in ("auto", "donors", "cells"):
        raise SettingError(f"unit must be 'auto', 'donors' or 'cells', got {unit!r}")
    check_level(level)


def _labels_and_genes(table: ad.AnnData, concept: str, source: str, targets: Any,
                      genes: Any) -> tuple[list[str], list[str], np.ndarray]:
    """Checked targets and genes, and each cell's label as text."""
    col = table.obs[concept]
    labels = ([str(c) for c in col.cat.categories] if isinstance(col.dtype, pd.CategoricalDtype)
              else sorted(map(str, col.dropna().unique())))
    targets = check_labels(labels, concept, source, targets)
    genes = [str(g) for g in table.var_names] if genes is None else as_list(genes)
    if not genes:
        raise DataError("Give at least one gene.")
    values = col.astype(str).to_numpy()
    if not (values == str(source)).any():
        raise DataError(f"No cells with {concept}={source!r} in the data.")
    return targets, genes, values


def _target_rows(table: ad.AnnData, concept: str, target: str, x: np.ndarray,
                 values: np.ndarray, dvar: dict, s: _Setting, frames: list,
                 skipped: list) -> None:
    """Test every group at one target; append its rows to ``frames``, or to ``skipped``."""
    tgt = values == target
    if not tgt.any():
        raise DataError(f"No cells with {concept}={target!r} in the data.")
    both = (values == s.source) | tgt
    obs = table.obs.loc[both, s.groupby] if s.groupby else table.obs.loc[both, []]
    is_tgt = tgt[both]
    xb = x[both]
    for lev in levels(s.groupby, s.marginal):
        for key_vals, pos in groups(obs, lev, s.groupby):
            a, b = xb[pos[is_tgt[pos]]], xb[pos[~is_tgt[pos]]]
            row = None
            if len(a) >= s.min_cells and len(b) >= s.min_cells:
                v = dvar[tuple(key_vals[c] for c in s.groupby)]
                row = _group_row(target, key_vals, a, b, v, s)
            if row is None:
                skipped.append({"target": target, **key_vals, "n_source": int(len(b)),
                                "n_target": int(len(a))})
            else:
                frames.append(pd.DataFrame(row))


def _group_row(target: str, key_vals: dict, a: np.ndarray, b: np.ndarray, v: dict,
               s: _Setting) -> dict | None:
    """One group's row: the donors' (pseudobulk) means as replicates where the unit allows,
    else the cells (Welch or Mann-Whitney); ``None`` when the group cannot be tested."""
    da = v["means"].get(target, np.empty((0, len(s.genes))))
    dbn = v["means"].get(s.source, np.empty((0, len(s.genes))))
    by_donor = s.unit != "cells" and v["df"] > 0 and len(da) and len(dbn)
    if s.unit == "donors" and not by_donor:
        return None
    row = {"method": "direct", "target": target, **key_vals, "gene": s.genes,
           "n_source": len(b), "n_target": len(a), "n_donors_source": len(dbn),
           "n_donors_target": len(da), "n_models": 0}
    if by_donor:
        row.update(mean_source=dbn.mean(0), mean_target=da.mean(0),
                   mean_change=da.mean(0) - dbn.mean(0), donor_s2=v["s2"],
                   donor_df=float(v["df"]), donor_cells=v["cells"],
                   c_d=1.0 / len(da) + 1.0 / len(dbn), unit="donors")
    else:  # cells as replicates (pseudo-replicated; flagged one_donor)
        stat, p = stats.two_sample(a, b, s.test)
        change, var, dfree = stats.welch(a, b)
        se, lo, hi, _, _ = stats.t_interval(change, var, dfree, s.level)
        row.update(mean_source=b.mean(0), mean_target=a.mean(0), mean_change=change, se=se,
                   ci_low=lo, ci_high=hi, df=dfree, statistic=stat, pvalue=p, unit="cells")
    return row


def _donor_tests(res: pd.DataFrame, level: float) -> tuple[pd.DataFrame, dict]:
    """Welch t-tests of the donor rows with moderated donor variances (the prior's fit)."""
    for c in ("se", "ci_low", "ci_high", "df", "statistic", "pvalue", "donor_s2", "donor_df",
              "donor_cells", "c_d"):
        if c not in res:
            res[c] = np.nan
    don = (res["unit"] == "donors").to_numpy()
    if not don.any():
        return res, {}
    n = int(don.sum())
    col = {c: res.loc[don, c].to_numpy(float) for c in
           ("mean_change", "donor_s2", "donor_df", "c_d", "mean_source", "donor_cells")}
    st = stats.combine_variances(col["mean_change"], col["donor_s2"], col["donor_df"],
                                 col["c_d"], np.full(n, np.nan), np.zeros(n), np.ones(n),
                                 level, col["mean_source"], col["donor_cells"], np.ones(n))
    for k in ("se", "ci_low", "ci_high", "df", "statistic", "pvalue"):
        res.loc[don, k] = st[k]
    res.loc[don & ~np.isfinite(res["pvalue"].to_numpy(float)), "unit"] = "none"
    return res, st["prior"]
