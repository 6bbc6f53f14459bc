"""Where things go on a tissue canvas: sections side by side, panels, titles, legend.

Qt-free: positions in display coordinates (:attr:`AppState.coords`, tissue ``(x, y)`` with
overlapping sections laid side by side by :mod:`napari_causcell.data.sections`). The napari
layers (``_napari/_layers.py``) and the matplotlib figures draw what these functions return.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._palette import hex_color
from ..data.sections import coordinate_unit
from .state import AppState

__all__ = ["CanvasText", "PANEL_NAMES", "SHAPE_STYLE", "legend_text", "napari_units",
           "panel_offset", "panels_wide", "section_text", "sections_of", "shape_edge_width",
           "tissue_box"]

#: the overlay panels, in order (napari layer names "CausCell A: ...", "CausCell B: ...")
PANEL_NAMES = ("A", "B")
#: drawn shapes: no fill, a thin bright outline, so the cells inside stay visible
SHAPE_STYLE = {"face_color": [0.0, 0.0, 0.0, 0.0], "edge_color": [1.0, 0.85, 0.1, 1.0]}


@dataclass
class CanvasText:
    """Labels to write on the canvas: one per position (display ``(x, y)``)."""

    positions: np.ndarray  # (k, 2) as (x, y)
    texts: list[str]
    colors: np.ndarray | None = None  # (k, 4) RGBA of a marker beside each text (legend)
    marker: float = 0.0  # marker diameter (display units); the text starts right of it

    def __len__(self) -> int:
        return len(self.texts)


def tissue_box(state: AppState) -> np.ndarray:
    """``[xmin, ymin, xmax, ymax]`` of every cell (display coordinates)."""
    xy = state.coords
    return np.r_[np.nanmin(xy, 0), np.nanmax(xy, 0)]


def panels_wide(state: AppState) -> bool:
    """Whether the tissue (all sections) is wider than tall: panels are then stacked."""
    box = tissue_box(state)
    return bool(box[2] - box[0] >= box[3] - box[1])


def panel_offset(state: AppState, index: int) -> np.ndarray:
    """Display offset ``(dx, dy)`` of overlay panel ``index`` (0: A, 1: B...): each next
    panel below a wide tissue, right of a tall one, with a gap."""
    box = tissue_box(state)
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([0.0, h * 1.15 * index]) if panels_wide(state) else np.array(
        [w * 1.12 * index, 0.0])


def _font_gap(state: AppState) -> float:
    box = tissue_box(state)
    return 0.025 * float(max(box[2] - box[0], box[3] - box[1]) or 1.0)


def section_text(state: AppState, panel: int = 0, title: str | None = None) -> CanvasText:
    """The sections' titles (section, and age when a time column exists) above each
    section of panel ``panel``; with ``title``, the panel's own title above the panel.

    Returns
    -------
    CanvasText
        Empty when there is one section and no ``title``.
    """
    off = panel_offset(state, panel)
    gap = _font_gap(state)
    titles = state.section_titles()
    pos, texts = [], []
    if len(titles) > 1:
        for sec, box in state.section_boxes().items():
            pos.append([(box[0] + box[2]) / 2, box[1] - gap])
            texts.append(titles[sec])
    if title:
        box = tissue_box(state)
        pos.append([box[0], box[1] - (2.6 if texts else 1.2) * gap])
        texts.append(title)
    return CanvasText(np.array(pos, float).reshape(-1, 2) + off, texts)


def sections_of(state: AppState) -> dict[str, np.ndarray]:
    """``{title: [xmin, ymin, xmax, ymax]}`` of the sections (display coordinates), for
    :func:`napari_causcell.pl.tissue_overlay`; empty with one section."""
    titles = state.section_titles()
    return {titles[s]: b for s, b in state.section_boxes().items()} if titles else {}


def legend_text(state: AppState, palette: Mapping[str, Any], present: set[str] | None = None,
                title: str = "", panels: int = 1) -> CanvasText:
    """A legend of categorical colours, one row per label, right of the tissue (of all
    ``panels``), the column's name on top."""
    labels = [k for k in palette if present is None or k in present]
    box = tissue_box(state)
    right = box[2] + panel_offset(state, panels - 1)[0]
    step = 1.6 * _font_gap(state)
    x = right + 2 * step
    pos = [[x, box[1] + step * (i + 1)] for i in range(len(labels))]
    colors = [np.asarray(palette[k], float) for k in labels]
    if title:
        pos.insert(0, [x, box[1]])
        labels.insert(0, title)
        colors.insert(0, np.zeros(4))  # no marker beside the title
    return CanvasText(np.array(pos, float).reshape(-1, 2), labels,
                      np.array(colors, float).reshape(-1, 4), marker=0.6 * step)


def legend_html(palette: Mapping[str, Any], present: set[str] | None = None) -> str:
    """The legend as HTML squares and names (a dock's text)."""
    return "&nbsp;&nbsp; ".join(f"<span style='color:{hex_color(c)}'>&#9632;</span>&nbsp;{k}"
                                for k, c in palette.items() if present is None or k in present)


def shape_edge_width(state: AppState) -> float:
    """A thin outline for drawn shapes (display units): a fraction of a cell spacing."""
    return 0.08 * _font_gap(state)


def napari_units(state: AppState) -> tuple[str, str] | None:
    """The coordinates' unit as napari layer ``units`` (a pint unit), or ``None``."""
    unit = coordinate_unit(state.adata)
    name = {"µm": "micrometer", "um": "micrometer", "nm": "nanometer", "mm": "millimeter",
            "px": "pixel", "pixel": "pixel", "pixels": "pixel"}.get(unit, unit)
    try:
        import pint

        pint.get_application_registry().Unit(name)
    except Exception:  # noqa: BLE001 - an unknown unit: no units, napari shows plain numbers
        return None
    return (name, name)
