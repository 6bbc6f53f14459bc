"""What a tissue plot carries besides the cells: section titles, a scale bar, a legend."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..data.sections import scale_length

__all__ = ["add_legend", "add_scalebar", "label_sections", "wrap"]


def wrap(text: str, width: int = 48) -> str:
    """``text`` broken into lines of at most ``width`` characters (colour-bar labels)."""
    return "\n".join(textwrap.fill(part, width) for part in str(text).split("\n"))


def label_sections(ax: Any, boxes: Mapping[str, np.ndarray], fontsize: float = 8) -> None:
    """Write each section's title above its cells.

    Parameters
    ----------
    ax
        Matplotlib axes drawn with an inverted y axis (image orientation).
    boxes
        ``{title: [xmin, ymin, xmax, ymax]}`` in the axes' data coordinates.
    fontsize
        Font size of the titles.
    """
    if len(boxes) < 2:
        return
    arr = np.array(list(boxes.values()), float)
    pad = 0.02 * float(np.ptp(arr[:, [1, 3]]) or 1.0)
    for title, box in boxes.items():
        ax.text((box[0] + box[2]) / 2, box[1] - pad, title.replace(" · ", "\n"),
                ha="center", va="bottom", fontsize=fontsize, clip_on=False)
    ax.set_ylim(arr[:, 3].max() + pad, arr[:, 1].min() - 6 * pad)  # room for the titles


def add_scalebar(ax: Any, coords: np.ndarray, unit: str = "µm") -> Any:
    """A scale bar of a round length (about a fifth of the tissue's width), under the
    lower right corner of the axes (off the cells).

    Parameters
    ----------
    ax
        Matplotlib axes with equal aspect, in tissue units.
    coords
        The cells' ``(x, y)`` as drawn.
    unit
        The coordinates' unit, written beside the length.

    Returns
    -------
    The scale bar artist.
    """
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    span = float(np.ptp(np.asarray(coords, float)[:, 0])) if len(coords) else 1.0
    length = scale_length(span)
    bar = AnchoredSizeBar(ax.transData, length, f"{length:g} {unit}", "upper right",
                          pad=0.1, borderpad=0.1, frameon=False, size_vertical=0.03 * length,
                          fontproperties={"size": 8}, bbox_to_anchor=(1.0, 0.0),
                          bbox_transform=ax.transAxes)
    ax.add_artist(bar)
    return bar


def add_legend(where: Any, palette: Mapping[str, Any], present: set[str] | None = None,
               title: str = "", figure_level: bool = False) -> Any:
    """A legend of the categorical colours shown.

    Parameters
    ----------
    where
        The axes (or, with ``figure_level``, the figure) to put it on.
    palette
        ``{label: colour}`` in legend order.
    present
        The labels drawn (others are left out); ``None``: all.
    title
        The legend's title (the column).
    figure_level
        Put it outside the panels, right of the figure.

    Returns
    -------
    The legend.
    """
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=c, label=k)
               for k, c in palette.items() if present is None or k in present]
    ncol = 1 if len(handles) <= 16 else 2
    if figure_level:
        return where.legend(handles=handles, loc="outside right center", fontsize=8,
                            title=title, frameon=False, ncol=ncol)
    return where.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5),
                        fontsize=8, title=title, frameon=False, ncol=ncol)
