"""Intervals of an intervention's change (issue 26 item 3): computed with the intervention,
added to its top changed genes, and written the same way in every front end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._utils import warn_user

__all__ = ["INTERVAL_COLUMNS", "LEVEL", "SPANS_ZERO_NOTE", "change_header",
           "change_texts", "greyed", "intervals_for", "top_note"]

#: level of the intervals the app computes and shows
LEVEL = 0.9
#: what a greyed row of a top-genes table means
SPANS_ZERO_NOTE = f"grey: {LEVEL:.0%} interval includes 0".replace("%", " %")
#: columns ``tl.top_changed_genes(..., intervals=...)`` adds to a top-genes table
INTERVAL_COLUMNS = ["lower", "upper", "spans_zero", "reliability"]


def intervals_for(model: Any, data: Any, do: Mapping[str, str], mask: np.ndarray,
                  counterfactual: Any, *, table_key: str | None = None,
                  hold: Sequence[str] | None = None
                  ) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str]:
    """``(intervals, strata, "")``: the intervals of the pooled intervened cells (one group
    ``"all"``) and of each stratum they pool (``group``: the label of
    ``strata.attrs['calibration']['stratum']``, e.g. the cell type), from
    :func:`~napari_causcell.tl._intervals.pooled_and_strata` reusing ``counterfactual``;
    ``(None, None, reason)`` when they cannot be computed: the intervention stands without
    them (the reason is also warned)."""
    from ..tl._intervals import pooled_and_strata

    try:
        pooled, strata = pooled_and_strata(model, data, do, cells=mask, level=LEVEL,
                                           hold=list(hold) if hold else None,
                                           table_key=table_key, counterfactual=counterfactual)
    except Exception as err:  # an add-on: its failure never costs the intervention
        reason = f"{type(err).__name__}: {err}"
        warn_user(f"No intervals for do({', '.join(f'{k}={v}' for k, v in do.items())}): "
                  f"{reason}")
        return None, None, reason
    return pooled, strata, ""


def change_header(top: pd.DataFrame) -> str:
    """Heading of the change column: with the interval's level when there are intervals."""
    return (f"change [{LEVEL:.0%} interval]".replace("%", " %") if "lower" in top
            else "mean change")


def change_texts(top: pd.DataFrame) -> list[str]:
    """The change of each row, ``"+1.37 [+0.90, +1.80]"`` with intervals (else
    ``"+1.372"``), each part right-aligned to one width so that rows line up in a
    fixed-width font."""
    if "lower" not in top:
        return [f"{float(d):+.3f}" for d in top["mean_change"]]
    parts = [[_number(v) for v in top[c]] for c in ("mean_change", "lower", "upper")]
    widths = [max((len(x) for x in col), default=0) for col in parts]
    return [f"{c:>{widths[0]}} [{lo:>{widths[1]}}, {hi:>{widths[2]}}]"
            for c, lo, hi in zip(*parts)]


def greyed(top: pd.DataFrame) -> np.ndarray:
    """Per row: its interval includes 0 (the front ends grey it); all False without
    intervals."""
    if "spans_zero" not in top:
        return np.zeros(len(top), bool)
    return top["spans_zero"].to_numpy(bool)


def top_note(top: pd.DataFrame, intervention: Any) -> str:
    """The line under a top-genes table: :data:`SPANS_ZERO_NOTE` when a row is grey, why
    there are no intervals when they failed, else ``""``."""
    if greyed(top).any():
        return SPANS_ZERO_NOTE
    reason = getattr(intervention, "intervals_note", "")
    if "lower" not in top and getattr(intervention, "intervals", None) is None and reason:
        return f"No intervals: {reason}"
    return ""


def _number(value: float) -> str:
    return f"{float(value):+.2f}" if np.isfinite(value) else "n/a"
