"""A trend result read against known trends, and as a groups x genes matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError
from ._trend_common import ALL, RESULT_COLUMNS


@dataclass
class TrendComparison:
    """How many known trends a result recovers.

    ``table`` has one row per known trend: its columns, ``tested`` (the gene/group was in the
    result), ``mean_change``, ``padj``, ``observed`` direction, ``significant`` and
    ``recovered`` (significant with the known direction). ``k`` trends of ``n`` are recovered;
    ``wrong_direction`` counts significant calls against the known direction; ``n_significant``
    counts all significant calls of the compared rows of the result (known or not).
    """

    table: pd.DataFrame
    k: int
    n: int
    wrong_direction: int
    n_significant: int
    target: str

    def __str__(self) -> str:
        return (f"{self.k} of {self.n} known trends recovered at {self.target} "
                f"({self.wrong_direction} significant in the wrong direction; "
                f"{self.n_significant} significant calls in all)")


def compare_trends(
    result: pd.DataFrame,
    reference: pd.DataFrame,
    target: str | None = None,
) -> TrendComparison:
    """Agreement of a trend result with known trends (e.g. the published ones).

    Each reference row (``gene``, ``direction`` "up"/"down", and group columns such as
    ``cell_type`` and optionally ``domain``) is matched to the result row with the same gene
    and group; result groupby columns the reference lacks (or leaves empty) match the marginal
    rows (``"all"``), so run :func:`age_trends` with ``marginal=True`` (the default). A trend is
    *recovered* when that row is significant with the reference's direction.

    Parameters
    ----------
    result
        Output of :func:`age_trends` or :func:`direct_trends`.
    reference
        Known trends, e.g. :data:`napari_causcell.datasets.PUBLISHED_AGE_TRENDS`.
    target
        Which target of the result (default: its last one, e.g. the oldest age).

    Returns
    -------
    TrendComparison
        ``table``, ``k`` of ``n`` recovered, ``wrong_direction``, ``n_significant``.
    """
    _check_comparison(result, reference)
    target, res = _target_rows(result, target)
    group_cols = _group_columns(res)
    ref_groups = [c for c in reference.columns if c in group_cols]
    for col in reference.columns:
        if col not in group_cols and col not in ("gene", "direction") and col in (
                "cell_type", "domain"):
            raise DataError(f"The reference groups by {col!r} but the result does not; "
                            f"result groups: {group_cols}.")
    index = res.set_index(group_cols + ["gene"]) if group_cols else res.set_index(["gene"])
    table = pd.DataFrame([_match(rec, index, group_cols, ref_groups)
                          for rec in reference.to_dict("records")])
    wrong = int((table["significant"] & (table["observed"] != table["direction"])).sum())
    return TrendComparison(table=table, k=int(table["recovered"].sum()), n=len(table),
                           wrong_direction=wrong, n_significant=int(res["significant"].sum()),
                           target=str(target))


def _check_comparison(result: pd.DataFrame, reference: pd.DataFrame) -> None:
    for col in ("gene", "direction"):
        if col not in reference:
            raise DataError(f"The reference needs a {col!r} column; it has "
                            f"{list(reference.columns)}.")
    for col in ("gene", "target", "mean_change", "padj", "significant"):
        if col not in result:
            raise DataError(f"{col!r} is not a column of the result: pass the output of "
                            "tl.age_trends or tl.direct_trends.")
    bad = set(reference["direction"].astype(str)) - {"up", "down"}
    if bad:
        raise DataError(f"Reference directions must be 'up' or 'down', got {sorted(bad)}.")


def _target_rows(result: pd.DataFrame, target: str | None) -> tuple[str, pd.DataFrame]:
    """The target (default the last) and the result's rows at it."""
    targets = list(dict.fromkeys(result["target"].astype(str)))
    target = targets[-1] if target is None else target
    if str(target) not in targets:
        raise DataError(f"Target {target!r} is not in the result; targets are {targets}.")
    return target, result[result["target"].astype(str) == str(target)]


def _group_columns(res: pd.DataFrame) -> list[str]:
    """The groupby columns of a result (all but the fixed ones)."""
    fixed = set(RESULT_COLUMNS) | {"target", "method"}
    return [c for c in res.columns if c not in fixed]


def _match(rec: dict, index: pd.DataFrame, group_cols: list[str],
           ref_groups: list[str]) -> dict:
    """A reference row with its result row's numbers, ``tested`` and ``recovered``."""
    key = []
    for col in group_cols:
        val = rec.get(col) if col in ref_groups else None
        key.append(ALL if val is None or (isinstance(val, float) and np.isnan(val))
                   or val == "" else str(val))
    key.append(str(rec["gene"]))
    hit = index.loc[tuple(key)] if tuple(key) in index.index else None
    if isinstance(hit, pd.DataFrame):
        hit = hit.iloc[0]
    out = dict(rec)
    if hit is None:
        out.update(tested=False, mean_change=np.nan, padj=np.nan, observed="",
                   significant=False, recovered=False)
    else:
        sig = bool(hit["significant"])
        obs_dir = "up" if hit["mean_change"] > 0 else "down"
        out.update(tested=True, mean_change=float(hit["mean_change"]),
                   padj=float(hit["padj"]), observed=obs_dir, significant=sig,
                   recovered=sig and obs_dir == str(rec["direction"]))
    return out


def trend_matrix(result: pd.DataFrame, target: str | None = None,
                 value: str = "mean_change", significant_only: bool = True,
                 groupby: Sequence[str] | None = None) -> pd.DataFrame:
    """Groups x genes matrix of a trend result (helper of the heatmap; ``NaN`` where not
    significant when ``significant_only``). Only genes with a significant call are kept."""
    target, res = _target_rows(result, None if target is None else str(target))
    cols = list(groupby) if groupby is not None else _group_columns(res)
    if cols:  # finest level only (no 'all' rows) unless every row is marginal
        fine = np.ones(len(res), dtype=bool)
        for c in cols:
            fine &= res[c].astype(str).to_numpy() != ALL
        if fine.any():
            res = res[fine]
    keep_genes = res.loc[res["significant"], "gene"].unique() if significant_only else \
        res["gene"].unique()
    res = res[res["gene"].isin(keep_genes)]
    if not len(res):
        return pd.DataFrame(index=pd.Index([], name="group"), columns=pd.Index([], name="gene"),
                            dtype=float)
    vals = res[value].where(res["significant"]) if significant_only else res[value]
    label = res[cols].astype(str).agg(" | ".join, axis=1) if cols else pd.Series("all",
                                                                                 index=res.index)
    mat = pd.DataFrame({"group": label, "gene": res["gene"], "v": vals}).pivot_table(
        index="group", columns="gene", values="v", aggfunc="first", dropna=False)
    return mat.reindex(columns=[g for g in keep_genes if g in mat.columns])
