"""Workflow: expression trends along a concept (age) from counterfactuals (``tl.age_trends``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import tl
from .._constants import DEFAULT_STEPS
from .._keys import Key
from ..errors import ConceptError, DataError
from ..tl._trend_common import MODEL_ONLY
from .jobs import Job, Progress, pump
from .state import AppState

__all__ = ["ALL_OTHERS", "TABLE_HEADER", "TREND_FIELDS", "TrendsRequest", "TrendsResult",
           "age_trends", "table_rows", "top_trends", "trends_job", "trends_message"]

#: The target choice that moves the source cells to every other label.
ALL_OTHERS = "all other labels"
#: Columns of an age-trends table that are not group columns.
TREND_FIELDS = frozenset({"method", "target", "gene", "n_source", "n_target",
                          "n_donors_source", "n_donors_target", "n_models", "mean_source",
                          "mean_target", "mean_change", "se", "ci_low", "ci_high", "df",
                          "statistic", "pvalue", "padj", "direction", "significant", "unit",
                          "one_donor"})
#: Header of :func:`table_rows`, and what each column means (a tooltip).
TABLE_HEADER = ["to", "group", "gene", "change", "interval", "padj", "replicates"]
TABLE_TIP = ("change: mean paired change (log-normalised); interval: its 95 % interval; padj: "
             "BH q-value ('not tested' without donor replication); replicates: the units of "
             "replication ('model-only (no donor replication)': one donor per age, mouse and "
             "age confounded: an effect size with the models' interval, no test)")


def age_trends(state: AppState, source: str, targets: Sequence[str] | str | None = None,
               groupby: Sequence[str] | str | None = None, *, concept: str | None = None,
               **kwargs: Any) -> pd.DataFrame:
    """:func:`napari_causcell.tl.age_trends` on the state's model and data, written into the
    data (``uns[key_added]`` of the table, and the counterfactual tables); returns the results
    table it wrote.

    ``concept`` defaults to the guessed time column, ``groupby`` to the guessed cell-type and
    domain columns; ``kwargs`` go to ``tl.age_trends``. Raises
    :class:`~napari_causcell.DataError` on bad choices.
    """
    model = state.require_model()
    concept = concept or state.guess_column("time")
    if concept is None or concept not in model.concepts:
        raise DataError(f"Choose the time concept (one of {model.concepts}).")
    if groupby is None:
        found = [state.guess_column("cell_type"), state.guess_column("domain")]
        groupby = [c for c in dict.fromkeys(found) if c and c != concept]
    key = kwargs.pop("key_added", Key.uns.TRENDS)
    try:
        tl.age_trends(state.data, model, concept=concept, source=str(source), targets=targets,
                      groupby=groupby, table_key=state.table_key, key_added=key, **kwargs)
    except ConceptError as err:
        raise DataError(str(err)) from err
    return state.adata.uns[key]["results"]


def top_trends(trends: pd.DataFrame, n: int = 30) -> pd.DataFrame:
    """The ``n`` largest significant changes (the largest changes when none is significant)
    as ``target``, ``group``, ``gene``, ``mean_change``, ``ci_low``, ``ci_high``, ``padj``,
    ``unit`` and ``one_donor`` rows (those the table has); ``group`` joins the group columns
    (``"Oligo | Striatum"``)."""
    groups = [c for c in trends.columns if c not in TREND_FIELDS]
    sig = trends[trends["significant"]]
    pool = sig if len(sig) else trends
    top = pool.reindex(pool["mean_change"].abs().sort_values(ascending=False).index).head(n)
    group = (top[groups].astype(str).agg(" | ".join, axis=1) if groups
             else pd.Series("all", index=top.index))
    out = pd.DataFrame({"target": top["target"].astype(str), "group": group,
                        "gene": top["gene"].astype(str), "mean_change": top["mean_change"]})
    for col in ("ci_low", "ci_high", "padj", "unit", "one_donor"):
        if col in top:
            out[col] = top[col]
    return out.reset_index(drop=True)


def table_rows(top: pd.DataFrame) -> list[list[str]]:
    """:func:`top_trends` rows as the texts of :data:`TABLE_HEADER`."""
    rows = []
    for rec in top.to_dict("records"):
        lo, hi = rec.get("ci_low", math.nan), rec.get("ci_high", math.nan)
        unit = str(rec.get("unit", ""))
        if rec.get("one_donor") and unit != MODEL_ONLY:
            unit += " (1 donor/age)"
        padj = rec.get("padj", math.nan)
        rows.append([str(rec["target"]), str(rec["group"]), str(rec["gene"]),
                     f"{rec['mean_change']:+.3f}",
                     f"{lo:+.2f}..{hi:+.2f}" if math.isfinite(lo) else "",
                     f"{padj:.2g}" if math.isfinite(padj) else "not tested", unit])
    return rows


def trends_message(trends: pd.DataFrame, key: str = Key.uns.TRENDS) -> str:
    """One line on an age-trends result for a status bar (without donor replication: effect
    sizes with model-only intervals, no significance)."""
    model_only = (trends["unit"].astype(str) == MODEL_ONLY).to_numpy() \
        if "unit" in trends else np.zeros(len(trends), dtype=bool)
    if model_only.all() and len(trends):
        return (f"Trends: {len(trends)} effect sizes with model-only intervals (no donor "
                "replication: one donor per age, so no population-level test and no "
                f"significance); stored in uns[{key!r}].")
    n_sig = int(trends["significant"].sum())
    msg = (f"Trends: {n_sig} significant of {len(trends) - int(model_only.sum())} tests "
           f"(|change| >= min_effect and BH padj < alpha); stored in uns[{key!r}].")
    if model_only.any():
        msg += (f" {int(model_only.sum())} rows rest on one donor per age (no donor "
                "replication): effect sizes with model-only intervals, not tested.")
    elif "one_donor" in trends and trends["one_donor"].any():
        msg += (f" {int(trends['one_donor'].sum())} rest on one donor per age (mouse and age "
                "confounded): read them as effect sizes.")
    return msg


@dataclass
class TrendsRequest:
    """What the Trends form holds. ``target`` may be :data:`ALL_OTHERS`."""

    concept: str | None
    source: str | None
    target: str | None = ALL_OTHERS
    steps: int = DEFAULT_STEPS
    seed: int = 0
    sampler: str | None = None
    donor: str | None = None
    n_rows: int = 30

    def validate(self, state: AppState) -> list[str] | None:
        """The targets (``None``: every other label); raises with the message to show."""
        state.require_model()
        if not self.concept or not self.source or not self.target:
            raise DataError("Choose a concept and the source label.")
        if self.target == self.source:
            raise DataError("The target equals the source.")
        if int(self.steps) < 1:
            raise DataError("Sample with at least one step.")
        return None if self.target == ALL_OTHERS else [str(self.target)]

    def options(self) -> dict[str, Any]:
        extra = {k: v for k, v in (("sampler", self.sampler), ("donor", self.donor)) if v}
        return dict(steps=int(self.steps), seed=int(self.seed), **extra)


@dataclass
class TrendsResult:
    trends: pd.DataFrame
    top: pd.DataFrame
    message: str


def trends_job(state: AppState, request: TrendsRequest) -> Job[TrendsResult]:
    """Counterfactuals of the source cells, then the paired tests (progress: the fraction
    done). Cancelling stops at the next progress report."""
    targets = request.validate(state)
    title = f"CausCell: trends from {request.concept}={request.source}"

    def steps(job: Job) -> Any:
        yield Progress(0.0, f"Computing trends {request.concept}: {request.source} -> "
                            f"{request.target}...")

        def call(report: Any) -> pd.DataFrame:
            return age_trends(state, str(request.source), targets, concept=request.concept,
                              progress=report, **request.options())

        df = yield from pump(job, call, lambda f: Progress(float(f)))
        yield Progress(1.0, "")
        return TrendsResult(df, top_trends(df, request.n_rows), trends_message(df))

    return Job(steps, title=title)
