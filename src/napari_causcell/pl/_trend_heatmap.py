"""The trend heatmap: significant changes, or effect sizes where no test exists."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..tl._trend_common import MODEL_ONLY

#: Caption of a heatmap of results without donor replication (#28 item 3).
MODEL_ONLY_CAPTION = ("effect sizes with model-only intervals (no donor replication: one "
                      "donor per age), no significance test")
NO_TEST_CAPTION = "effect sizes: no test (no donor replication, no interval)"


def trend_heatmap(result: pd.DataFrame, target: str | None = None, *,
                  value: str = "mean_change", n_genes: int = 30, fig: Any = None,
                  cmap: str = "RdBu_r", intervals: bool = True):
    """Heatmap of trends: groups (e.g. cell type x domain) x genes.

    With donor replication (rows with a p-value at the target) cells are ``value`` (default
    the mean change) where the call is significant, blank elsewhere; genes are those with a
    significant call, the ``n_genes`` with the largest absolute change; it raises
    :class:`~napari_causcell.DataError` when nothing is significant. Without donor
    replication (no row of the target is tested, e.g. one mouse per age: ``unit``
    ``"model-only (no donor replication)"``) it draws the effect sizes of the ``n_genes``
    genes with the largest absolute change, with no significance marks, and the title says
    why. Uses the finest groups (rows with no ``"all"``). With ``intervals`` each coloured
    cell also shows its interval (``ci_low``..``ci_high``) when the map is small enough to
    read (at most 20 x 20); in a significance map a cell whose trend rests on one donor per
    age carries a ``*`` (and the title says so).

    Parameters
    ----------
    result
        Output of :func:`napari_causcell.tl.age_trends` or ``tl.direct_trends``.
    target
        Which target (default the last, e.g. the oldest age).
    value
        Column to show.
    n_genes
        At most this many genes.
    fig
        Figure to draw into.
    cmap
        Diverging colormap (limits symmetric around 0).
    intervals
        Write each coloured cell's interval in it (small maps only).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..tl import trend_matrix

    targets = list(dict.fromkeys(result["target"].astype(str)))
    shown = str(target) if target is not None else targets[-1]
    untested = _untested(result, shown)
    mat = trend_matrix(result, target=target, value=value, significant_only=not untested)
    if mat.shape[1] == 0:
        raise DataError("No significant trend to draw at this target.")
    order = mat.abs().max(0).sort_values(ascending=False).index[:n_genes]
    mat = mat[order].dropna(how="all")
    fig, ax = _draw(mat, fig, cmap, value)
    if untested:
        title = f"{value} at {shown}:\n" + untested
        if "ci_low" in result:
            _annotate_cells(ax, result, mat, target, intervals, significant_only=False)
    else:
        title = f"significant {value} at {shown}"
        if "one_donor" in result:
            title += _annotate_cells(ax, result, mat, target, intervals)
    ax.set_title(title, fontsize=8 if untested else 9)
    return fig


def _draw(mat: pd.DataFrame, fig: Any, cmap: str, value: str) -> tuple[Any, Any]:
    """The groups x genes image with its ticks and colour bar (a new figure if ``None``)."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(2.5 + 0.28 * mat.shape[1], 1.2 + 0.25 * mat.shape[0]),
                         layout="constrained")
    ax = fig.subplots()
    lim = float(np.nanmax(np.abs(mat.to_numpy()))) or 1.0
    im = ax.imshow(np.ma.masked_invalid(mat.to_numpy(float)), cmap=cmap, vmin=-lim, vmax=lim,
                   aspect="auto", interpolation="nearest")
    ax.set_xticks(range(mat.shape[1]), mat.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(mat.shape[0]), mat.index, fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, label=value)
    return fig, ax


def _untested(result: pd.DataFrame, target: str) -> str:
    """The caption when no row of ``target`` has a test (no donor replication), else ``""``."""
    rows = result[result["target"].astype(str) == target]
    if not len(rows) or "pvalue" not in rows or np.isfinite(
            rows["pvalue"].to_numpy(float)).any():
        return ""
    units = set(rows["unit"].astype(str)) if "unit" in rows else set()
    return MODEL_ONLY_CAPTION if MODEL_ONLY in units else NO_TEST_CAPTION


def _annotate_cells(ax: Any, result: pd.DataFrame, mat: pd.DataFrame, target: str | None,
                    intervals: bool, significant_only: bool = True) -> str:
    """Write each coloured cell's interval (small maps) and, in a significance map, a ``*``
    where the trend rests on one donor per age; the title's note when any does."""
    from ..tl import trend_matrix

    def matrix(res: pd.DataFrame, value: str) -> pd.DataFrame:
        return trend_matrix(res, target=target, value=value,
                            significant_only=significant_only).reindex(index=mat.index,
                                                                       columns=mat.columns)

    flag = (matrix(result.assign(one_donor=result["one_donor"].astype(float)), "one_donor")
            if significant_only and "one_donor" in result else None)
    lows = highs = None
    if intervals and {"ci_low", "ci_high"} <= set(result.columns) and max(mat.shape) <= 20:
        lows, highs = matrix(result, "ci_low"), matrix(result, "ci_high")
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if not np.isfinite(mat.iat[i, j]):
                continue
            text = ("" if lows is None or not np.isfinite(lows.iat[i, j])
                    else f"{lows.iat[i, j]:.1f}..{highs.iat[i, j]:.1f}")
            if flag is not None and flag.iat[i, j] == 1:
                text += "*"
            if text:
                ax.text(j, i, text, ha="center", va="center", fontsize=5)
    if flag is not None and (flag.to_numpy() == 1).any():
        return "  (* one donor per age: mouse and age confounded)"
    return ""
