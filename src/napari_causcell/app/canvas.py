"""Where things go on a tissue canvas: sections side by side, panels, titles, legend.

Qt-free: positions in display coordinates (:attr:`AppState.coords`, tissue ``(x, y)`` with
overlapping sections laid side by side by :mod:`napari_causcell.data.sections`). The napari
layers (``_napari/_layers.py``) and the matplotlib figures draw what these functions return.

Text sizes are in display units too (:attr:`CanvasText.font`): napari draws text in screen
pixels, so its layers set napari's size to ``font x zoom`` (:func:`font_size`) and the
titles keep their place beside the tissue at any zoom. :attr:`CanvasText.extent` is where
the texts reach, so that fitting the view to the layers shows them whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._palette import hex_color
from ..data.sections import coordinate_unit
from .state import AppState

__all__ = ["CHAR_WIDTH", "CanvasText", "FONT_RANGE", "PANEL_NAMES", "SHAPE_STYLE", "fit_zoom",
           "font_size", "legend_text", "napari_units", "panel_offset", "panels_wide",
           "sections_of", "shape_edge_width", "text_boxes", "text_size", "tissue_box",
           "title_band", "titles_text"]

#: the overlay panels, in order (napari layer names "CausCell A: ...", "CausCell B: ...")
PANEL_NAMES = ("A", "B")
#: drawn shapes: no fill, a thin bright outline, so the cells inside stay visible
SHAPE_STYLE = {"face_color": [0.0, 0.0, 0.0, 0.0], "edge_color": [1.0, 0.85, 0.1, 1.0]}
#: napari's text (OpenSans) per unit of its size, in screen pixels, measured: ordinary text
#: takes at most about 1.1 a character; one line is about 2.0 high, lines 2.5 apart
CHAR_WIDTH, LINE_HEIGHT, LINE_PITCH = 1.1, 2.0, 2.5
#: the napari text sizes canvas text may take, whatever the zoom
FONT_RANGE = (5.0, 16.0)
_SECTION_LINE = 16  # characters of a section title's line (longer: cut with "…")
_PANEL_LINE = 24  # a longer panel title takes two lines


@dataclass
class CanvasText:
    """Labels to write on the canvas: one per position (display ``(x, y)``)."""

    positions: np.ndarray  # (k, 2) as (x, y)
    texts: list[str]
    colors: np.ndarray | None = None  # (k, 4) RGBA of a marker beside each text (legend)
    marker: float = 0.0  # marker diameter (display units); the text starts right of it
    font: float = 0.0  # text size in display units (0: napari's fixed default)
    extent: np.ndarray | None = None  # [xmin, ymin, xmax, ymax] the texts reach

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


def _font_cap(state: AppState) -> float:
    """The largest title font (display units): about 10 px when the tissue fills the view."""
    box = tissue_box(state)
    return 0.02 * float(max(box[2] - box[0], box[3] - box[1]) or 1.0)


def title_band(state: AppState) -> float:
    """Height above a panel that its titles may take (heading, two lines of panel title,
    two of section title)."""
    cap = _font_cap(state)
    return cap * (3 * LINE_HEIGHT + 2 * LINE_PITCH + 4 * 0.45)


def panel_offset(state: AppState, index: int) -> np.ndarray:
    """Display offset ``(dx, dy)`` of overlay panel ``index`` (0: A, 1: B...): each next
    panel below a wide tissue (past the next panel's titles), right of a tall one."""
    box = tissue_box(state)
    w, h = box[2] - box[0], box[3] - box[1]
    if panels_wide(state):
        return np.array([0.0, (h * 1.05 + title_band(state)) * index])
    return np.array([w * 1.12 * index, 0.0])


def _font_gap(state: AppState) -> float:
    box = tissue_box(state)
    return 0.025 * float(max(box[2] - box[0], box[3] - box[1]) or 1.0)


def _lines(text: str) -> list[str]:
    return text.split("\n")


def text_size(text: str, font: float) -> tuple[float, float]:
    """Width and height (display units) of ``text`` written at ``font``, from napari's
    measured metrics (:data:`CHAR_WIDTH`...)."""
    lines = _lines(text)
    return (CHAR_WIDTH * font * max(len(s) for s in lines),
            font * (LINE_HEIGHT + LINE_PITCH * (len(lines) - 1)))


def text_boxes(text: CanvasText) -> np.ndarray:
    """``(k, 4)`` boxes ``[xmin, ymin, xmax, ymax]`` the texts take: centred on their
    positions, or (a legend) right of the marker, the line's bottom half a marker lower."""
    out = []
    for (x, y), s in zip(text.positions, text.texts):
        w, h = text_size(s, text.font)
        if text.marker:
            x0, y1 = x + text.marker, y + text.marker / 2
            out.append([x0, y1 - h, x0 + w, y1])
        else:
            out.append([x - w / 2, y - h / 2, x + w / 2, y + h / 2])
    return np.array(out, float).reshape(-1, 4)


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _section_lines(title: str) -> str:
    """``"mouse YC1 · age young"`` -> ``"mouse YC1\\nage young"``, each line short."""
    return "\n".join(_cut(part, _SECTION_LINE) for part in title.split(" · "))


def _two_lines(title: str) -> str:
    """A long title on two lines, split at the space nearest its middle."""
    spaces = [i for i, c in enumerate(title) if c == " "]
    if len(title) <= _PANEL_LINE or not spaces:
        return title
    at = min(spaces, key=lambda i: abs(i - len(title) / 2))
    return f"{title[:at]}\n{title[at + 1:]}"


def _fit_font(cap: float, items: Sequence[tuple[str, float]]) -> float:
    """The largest font (at most ``cap``) at which each text fits its width."""
    fits = [0.94 * width / (CHAR_WIDTH * max(len(s) for s in _lines(t)))
            for t, width in items if t]
    return float(min([cap, *fits]))


def titles_text(state: AppState, panel_titles: Sequence[str] = (), heading: str = "",
                grid: bool = False) -> CanvasText:
    """Titles above the tissue, bottom to top: each section's (two short lines centred over
    the section, when there are several), each panel's ("A: ...", centred over its panel),
    and ``heading`` over all panels. One font, the largest at which every title fits its
    section's or panel's width, so that titles side by side never touch. ``grid``: every
    panel at the same place (napari grid mode)."""
    box, boxes = tissue_box(state), state.section_boxes()
    titles = state.section_titles()
    secs = {s: _section_lines(titles[s]) for s in titles} if len(titles) > 1 else {}
    panels = [_two_lines(f"{PANEL_NAMES[i]}: {t}") for i, t in enumerate(panel_titles)] or [""]
    offsets = [np.zeros(2) if grid else panel_offset(state, i) for i in range(len(panels))]
    font = _fit_font(_font_cap(state), [
        *((t, boxes[s][2] - boxes[s][0]) for s, t in secs.items()),
        *((t, box[2] - box[0]) for t in panels), (heading, offsets[-1][0] + box[2] - box[0])])
    pos: list[list[float]] = []
    texts: list[str] = []
    tops = []
    for off, title in zip(offsets, panels):
        y = box[1]
        for items in ([((b[0] + b[2]) / 2, secs[s]) for s, b in boxes.items() if s in secs],
                      [((box[0] + box[2]) / 2, title)] if title else []):
            if items:
                y = _row(items, y, font, off, pos, texts)
        tops.append(y + off[1])
    if heading:
        _row([((box[0] + box[2] + offsets[-1][0]) / 2, heading)], min(tops), font,
             np.zeros(2), pos, texts)
    return _with_extent(CanvasText(np.array(pos, float).reshape(-1, 2), texts, font=font))


def _row(items: list[tuple[float, str]], y: float, font: float, off: np.ndarray,
         pos: list[list[float]], texts: list[str]) -> float:
    """Write ``items`` (``x``, text) in a row above ``y`` (then moved by ``off``); returns
    the row's top."""
    gap = 0.45 * font
    h = max(text_size(t, font)[1] for _, t in items)
    for x, t in items:
        pos.append([x + off[0], y + off[1] - gap - h / 2])
        texts.append(t)
    return y - gap - h


def _with_extent(text: CanvasText) -> CanvasText:
    boxes = text_boxes(text)
    if len(boxes):
        text.extent = np.r_[boxes[:, :2].min(0), boxes[:, 2:].max(0)]
    return text


def sections_of(state: AppState) -> dict[str, np.ndarray]:
    """``{title: [xmin, ymin, xmax, ymax]}`` of the sections (display coordinates), for
    :func:`napari_causcell.pl.tissue_overlay`; empty with one section."""
    titles = state.section_titles()
    return {titles[s]: b for s, b in state.section_boxes().items()} if titles else {}


def legend_text(state: AppState, palette: Mapping[str, Any], present: set[str] | None = None,
                title: str = "", panels: int = 1) -> CanvasText:
    """A legend of categorical colours, one row per label, right of the tissue (of all
    ``panels``), the column's name on top; its extent reaches the end of the longest
    label."""
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
    text = CanvasText(np.array(pos, float).reshape(-1, 2), labels,
                      np.array(colors, float).reshape(-1, 4), marker=0.6 * step,
                      font=min(_font_cap(state), step / (LINE_HEIGHT + 0.4)))
    text = _with_extent(text)
    if text.extent is not None:  # and the markers
        text.extent[0] = x - text.marker / 2
    return text


def font_size(font: float, zoom: float) -> float:
    """napari's text size for ``font`` display units at ``zoom`` (screen pixels per display
    unit), within :data:`FONT_RANGE`."""
    return float(np.clip(font * zoom, *FONT_RANGE))


def fit_zoom(extent: np.ndarray, canvas: tuple[float, float] = (600.0, 700.0),
             margin: float = 0.05) -> float:
    """The zoom at which napari's ``reset_view`` shows ``extent`` ``[xmin, ymin, xmax,
    ymax]`` on a canvas of ``(width, height)`` screen pixels (a laptop's, by default)."""
    w, h = max(extent[2] - extent[0], 1e-9), max(extent[3] - extent[1], 1e-9)
    return (1 - margin) * min(canvas[0] / w, canvas[1] / h)


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
