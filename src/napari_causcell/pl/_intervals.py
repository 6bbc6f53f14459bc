"""Forest plot of counterfactual changes with their intervals (``tl.change_intervals``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError, SettingError
from ._plots import FADED_ALPHA

__all__ = ["LOW_RELIABILITY", "change_intervals"]

#: points (and bars) below this reliability, or extrapolated, are drawn faded
LOW_RELIABILITY = 0.2
UP, DOWN, SPANS_ZERO, OBSERVED = "#b2182b", "#2166ac", "0.6", "black"
_NEEDED = ("group", "gene", "change", "lower", "upper")


def change_intervals(df: pd.DataFrame, genes: Sequence[str] | str | None = None,
                     groups: Sequence[str] | str | None = None, n: int = 20,
                     observed: pd.DataFrame | None = None, ax: Any = None) -> Any:
    """The predicted change of each gene with its interval, one panel per group.

    Each row is a gene: a point at its predicted change and a bar from ``lower`` to
    ``upper``, red for an increase, blue for a decrease. An interval that includes 0 is
    drawn grey with a hollow point. Rows of low reliability (``reliability <``
    :data:`LOW_RELIABILITY`) or extrapolated (label combination never measured) are faded.

    Parameters
    ----------
    df
        What :func:`napari_causcell.tl.change_intervals` returns: columns ``group, gene,
        change, lower, upper`` and optionally ``reliability`` and ``extrapolated``.
    genes
        Genes to show, in this order, in every panel; ``None``: each group's top ``n``
        genes ranked by ``|change|`` (largest on top).
    groups
        Groups to show (one panel each), in this order; ``None``: all, as in ``df``.
    n
        How many genes per panel when ``genes`` is ``None``.
    observed
        Optional observed changes, columns ``group, gene, observed`` and optionally ``se``
        (a standard error, drawn as a bar of the same level as the intervals): a black
        cross per row where given.
    ax
        Axes to draw into (one group only); a new figure if ``None``.

    Returns
    -------
    The axes when ``ax`` is given, else the figure.
    """
    df = _checked(df, observed)
    shown = _groups(df, groups)
    genes = [genes] if isinstance(genes, str) else genes
    if genes is not None:
        missing = sorted(set(map(str, genes)) - set(df["gene"]))
        if missing:
            raise DataError(f"Genes not in the intervals: {missing}.")
    if int(n) < 1:
        raise SettingError(f"Show at least one gene (n={n!r}).")
    if ax is not None and len(shown) > 1:
        raise SettingError(f"ax holds one panel; choose one of {len(shown)} groups with "
                           "groups=[...] or leave ax out.")
    rows = [_rows(df[df["group"] == g], genes, int(n)) for g in shown]
    level = float(df.attrs.get("calibration", {}).get("level", 0.9))
    fig, panels = _axes(len(shown), max(len(r) for r in rows), ax)
    for a, group, part in zip(panels, shown, rows):
        _panel(a, group, part, _observed(observed, group), level)
    _legend(fig or ax, observed is not None, rows)
    return ax if fig is None else fig


def _axes(n_panels: int, n_rows: int, ax: Any) -> tuple[Any, list]:
    """``(figure or None, one axes per panel)``: up to 3 panels a row in a new figure."""
    if ax is not None:
        return None, [ax]
    import matplotlib.pyplot as plt

    cols = min(n_panels, 3)
    rows = -(-n_panels // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False, layout="constrained",
                             figsize=(4.2 * cols, (0.9 + 0.25 * n_rows) * rows))
    for extra in axes.ravel()[n_panels:]:
        extra.set_visible(False)
    return fig, list(axes.ravel()[:n_panels])


def _checked(df: pd.DataFrame, observed: pd.DataFrame | None) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise DataError("Give the DataFrame of tl.change_intervals.")
    missing = [c for c in _NEEDED if c not in df.columns]
    if missing:
        raise DataError(f"The intervals lack the columns {missing}; give the DataFrame of "
                        "tl.change_intervals.")
    if df.empty:
        raise DataError("The intervals are empty: nothing to draw.")
    if observed is not None:
        lack = [c for c in ("group", "gene", "observed") if c not in observed.columns]
        if lack:
            raise DataError(f"observed lacks the columns {lack} (group, gene, observed, "
                            "optionally se).")
    out = df.copy()
    out["group"], out["gene"] = out["group"].astype(str), out["gene"].astype(str)
    out.attrs = dict(df.attrs)
    return out


def _groups(df: pd.DataFrame, groups: Sequence[str] | str | None) -> list[str]:
    present = list(dict.fromkeys(df["group"]))
    if groups is None:
        return present
    groups = [str(g) for g in ([groups] if isinstance(groups, str) else groups)]
    unknown = [g for g in groups if g not in present]
    if unknown or not groups:
        raise DataError(f"Groups not in the intervals: {unknown}; have {present}.")
    return groups


def _rows(part: pd.DataFrame, genes: Sequence[str] | None, n: int) -> pd.DataFrame:
    """The rows of one group to draw, top row first."""
    if genes is not None:
        index = {str(g): i for i, g in enumerate(genes)}
        part = part[part["gene"].isin(index)]
        return part.iloc[np.argsort(part["gene"].map(index).to_numpy(), kind="stable")]
    order = np.argsort(-np.abs(part["change"].to_numpy(float)), kind="stable")
    return part.iloc[order[:n]]


def _observed(observed: pd.DataFrame | None, group: str) -> pd.DataFrame | None:
    if observed is None:
        return None
    out = observed[observed["group"].astype(str) == group]
    return out.assign(gene=out["gene"].astype(str))


def row_style(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: spans 0, faded, and the RGBA colour of its bar (alpha included)."""
    from matplotlib.colors import to_rgba

    lo, hi = part["lower"].to_numpy(float), part["upper"].to_numpy(float)
    spans = (lo <= 0) & (hi >= 0)
    rel = (part["reliability"].to_numpy(float) if "reliability" in part
           else np.ones(len(part)))
    extra = (part["extrapolated"].to_numpy(bool) if "extrapolated" in part
             else np.zeros(len(part), bool))
    faded = (rel < LOW_RELIABILITY) | extra
    up = part["change"].to_numpy(float) >= 0
    colors = np.array([to_rgba(SPANS_ZERO if s else (UP if u else DOWN)) for s, u in
                       zip(spans, up)]).reshape(-1, 4)
    colors[:, 3] = np.where(faded, FADED_ALPHA, 1.0)
    return spans, faded, colors


def _panel(ax: Any, group: str, part: pd.DataFrame, observed: pd.DataFrame | None,
           level: float) -> None:
    y = np.arange(len(part), dtype=float)
    spans, faded, colors = row_style(part)
    ax.hlines(y, part["lower"].to_numpy(float), part["upper"].to_numpy(float),
              colors=colors, linewidth=2.0, label="interval")
    face = colors.copy()
    face[spans, 3] = 0.0  # hollow where the interval includes 0
    ax.scatter(part["change"].to_numpy(float), y, s=30, facecolors=face, edgecolors=colors,
               linewidths=1.2, zorder=3, label="change")
    if observed is not None and not observed.empty:
        _draw_observed(ax, part, observed, level)
    ax.axvline(0.0, color="0.3", linewidth=0.8, linestyle="--", zorder=1)
    ax.set_yticks(y, part["gene"].tolist(), fontsize=8)
    for tick, f in zip(ax.get_yticklabels(), faded):
        tick.set_alpha(FADED_ALPHA if f else 1.0)
    ax.set_ylim(len(part) - 0.5, -0.5)  # the largest change on top
    extrapolated = "extrapolated" in part and bool(part["extrapolated"].any())
    ax.set_title(group + (" (extrapolated)" if extrapolated else ""), fontsize=10)
    ax.set_xlabel(f"change (log-expression), {level:.0%} interval", fontsize=8)


def _draw_observed(ax: Any, part: pd.DataFrame, observed: pd.DataFrame,
                   level: float) -> None:
    at = {g: i for i, g in enumerate(part["gene"])}
    obs = observed[observed["gene"].isin(at)]
    y = obs["gene"].map(at).to_numpy(float)
    x = obs["observed"].to_numpy(float)
    if "se" in obs:
        half = float(stats.norm.ppf(0.5 + level / 2)) * obs["se"].to_numpy(float)
        ax.hlines(y + 0.25, x - half, x + half, colors=OBSERVED, linewidth=0.8,
                  label="observed interval")
    ax.scatter(x, y + 0.25, marker="x", s=24, c=OBSERVED, zorder=4, label="observed")


def _legend(where: Any, with_observed: bool, rows: list[pd.DataFrame]) -> None:
    """A legend below the panels of a figure, or right of the given axes."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    def mark(color: str, face: str, text: str, marker: str = "o") -> Line2D:
        return Line2D([], [], color=color, marker=marker, markerfacecolor=face, label=text)

    handles = [mark(UP, UP, "up"), mark(DOWN, DOWN, "down"),
               mark(SPANS_ZERO, "none", "interval includes 0")]
    if with_observed:
        handles.append(mark(OBSERVED, OBSERVED, "observed", "x"))
    if any(row_style(r)[1].any() for r in rows):
        handles.append(Line2D([], [], color="0.3", alpha=FADED_ALPHA,
                              label=f"faded: reliability < {LOW_RELIABILITY} or "
                                    "extrapolated"))
    if isinstance(where, Figure):
        where.legend(handles=handles, fontsize=7, loc="outside lower center",
                     ncols=min(len(handles), 3), frameon=False)
    else:
        where.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1),
                     frameon=False)
