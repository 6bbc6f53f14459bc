"""Several tissue sections in one coordinate frame: find the section key, lay them side by side.

Real data often hold one section per mouse, donor or slide in one frame, so their cells lie on
top of each other. :func:`section_key` finds the column that names the sections (squidpy's
``library_key``); :func:`section_layout` gives each section an offset so that the sections
sit side by side in a grid, translated only (orientation kept), in the order of the column's
categories. Sections that do not overlap already are left where they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .preprocess import DataError

__all__ = ["MAX_SECTIONS", "SECTION_WORDS", "TIME_WORDS", "apply_layout", "boxes_overlap",
           "coordinate_unit", "scale_length",
           "laid_out", "section_boxes", "section_key", "section_layout", "section_order",
           "section_titles", "time_key"]

#: column names that name a section / slide / library, most specific first
SECTION_WORDS = ("library_id", "library_key", "library", "section", "section_id", "slice",
                 "slice_id", "sample", "sample_id", "specimen", "mouse", "mouse_id", "animal",
                 "donor", "donor_id", "individual", "subject")
#: column names of a time concept (the section's age is written in its title)
TIME_WORDS = ("age", "age_group", "time", "timepoint", "time_point", "day", "days", "stage",
              "week", "weeks", "month", "months")
#: at most this many sections are laid out (more: the column is not a section key)
MAX_SECTIONS = 64


def _few_labels(obs: pd.DataFrame, col: str, most: int) -> bool:
    s = obs[col]
    if pd.api.types.is_float_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype):
        return False
    return 2 <= s.nunique(dropna=True) <= most


def _find(obs: pd.DataFrame, words: Sequence[str], most: int) -> str | None:
    cols = [str(c) for c in obs.columns if _few_labels(obs, c, most)]
    lower = {c.lower(): c for c in cols}
    for word in words:
        if word in lower:
            return lower[word]
    return next((c for c in cols if any(w in c.lower().split("_") for w in words)), None)


def section_key(adata: Any, key: str | None = None, region_key: str | None = None) -> str | None:
    """The ``obs`` column that names the tissue sections, or ``None`` (one section).

    Parameters
    ----------
    adata
        The table (AnnData).
    key
        The user's choice (squidpy's ``library_key``): checked and returned. ``""`` means
        "no sections" (returns ``None``).
    region_key
        A SpatialData table's ``region_key``: used when the table annotates several elements
        (each element one section, e.g. one per coordinate system).

    Returns
    -------
    str or None
        The column; otherwise the first column named like :data:`SECTION_WORDS` with
        2..:data:`MAX_SECTIONS` labels.
    """
    obs = adata.obs
    if key == "":
        return None
    if key is not None:
        if key not in obs:
            raise DataError(f"Section column {key!r} is not in obs; columns: "
                            f"{[str(c) for c in obs.columns]}.")
        return key
    if region_key and region_key in obs and _few_labels(obs, region_key, MAX_SECTIONS):
        return region_key
    return _find(obs, SECTION_WORDS, MAX_SECTIONS)


def time_key(adata: Any) -> str | None:
    """The ``obs`` column of a time concept (``age``, ``timepoint``...), or ``None``."""
    return _find(adata.obs, TIME_WORDS, 60)


def section_order(sections: Any) -> list[str]:
    """The section labels: category order for a categorical, else first appearance."""
    s = pd.Series(sections)
    present = set(s.astype(str).unique())
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [str(c) for c in s.cat.categories if str(c) in present]
    return list(dict.fromkeys(s.astype(str)))


def section_boxes(coords: np.ndarray, sections: Any) -> dict[str, np.ndarray]:
    """``{section: [xmin, ymin, xmax, ymax]}`` of each section's cells."""
    coords = np.asarray(coords, float)
    labels = pd.Series(sections).astype(str).to_numpy()
    out = {}
    for sec in section_order(sections):
        xy = coords[labels == sec]
        out[sec] = np.r_[np.nanmin(xy, 0), np.nanmax(xy, 0)]
    return out


def boxes_overlap(boxes: Mapping[str, np.ndarray]) -> bool:
    """Whether any two bounding boxes ``[xmin, ymin, xmax, ymax]`` overlap."""
    b = list(boxes.values())
    for i in range(len(b)):
        for j in range(i + 1, len(b)):
            if (b[i][0] < b[j][2] and b[j][0] < b[i][2] and b[i][1] < b[j][3]
                    and b[j][1] < b[i][3]):
                return True
    return False


def _columns(n: int, w: float, h: float, ncols: int | None, aspect: float) -> int:
    if ncols:
        return max(1, min(int(ncols), n))
    best = min(range(1, n + 1), key=lambda c: abs(
        np.log((c * w) / (int(np.ceil(n / c)) * h) / aspect)))
    return best


def section_layout(coords: np.ndarray, sections: Any, *, gap: float = 0.15,
                   ncols: int | None = None, aspect: float = 2.0,
                   force: bool = False) -> dict[str, np.ndarray]:
    """Offsets ``(dx, dy)`` that place each section in its own cell of a grid.

    Parameters
    ----------
    coords
        ``(n_cells, 2)`` tissue coordinates ``(x, y)``.
    sections
        The section of each cell (an ``obs`` column).
    gap
        Space between sections, as a fraction of the largest section's width / height.
    ncols
        Sections per row (default: the count whose grid is closest to ``aspect``).
    aspect
        Wanted width / height of the whole layout (a wide screen).
    force
        Lay out even sections that do not overlap (by default they keep their place).

    Returns
    -------
    dict
        ``{section: array([dx, dy])}`` to add to that section's cells; translation only,
        so each section keeps its orientation. All zeros when no two sections overlap.
    """
    boxes = section_boxes(coords, sections)
    if not boxes:
        return {}
    if len(boxes) == 1 or not (force or boxes_overlap(boxes)):
        return {sec: np.zeros(2) for sec in boxes}
    arr = np.array(list(boxes.values()))
    w = float(np.max(arr[:, 2] - arr[:, 0])) or 1.0
    h = float(np.max(arr[:, 3] - arr[:, 1])) or 1.0
    cols = _columns(len(boxes), w, h, ncols, aspect)
    origin = arr[:, :2].min(0)
    out = {}
    for i, (sec, box) in enumerate(boxes.items()):
        row, col = divmod(i, cols)
        cell = origin + np.array([col * w * (1 + gap), row * h * (1 + gap)])
        out[sec] = cell - box[:2]
    return out


def apply_layout(coords: np.ndarray, sections: Any,
                 offsets: Mapping[str, np.ndarray]) -> np.ndarray:
    """``coords`` with each cell moved by its section's offset (a new array)."""
    out = np.array(coords, float, copy=True)
    labels = pd.Series(sections).astype(str).to_numpy()
    for sec, off in offsets.items():
        out[labels == sec] += np.asarray(off, float)
    return out


def laid_out(coords: np.ndarray, sections: Any | None, **kwargs: Any) -> np.ndarray:
    """``coords`` with the sections side by side (:func:`section_layout`); unchanged
    when ``sections`` is ``None``."""
    if sections is None:
        return np.asarray(coords, float)
    return apply_layout(coords, sections, section_layout(coords, sections, **kwargs))


def section_titles(obs: pd.DataFrame, key: str, time: str | None = None) -> dict[str, str]:
    """``{section: title}``, e.g. ``"mouse YC1 · age young"`` (the time label when every
    cell of the section has the same one)."""
    out = {}
    labels = obs[key].astype(str)
    for sec in section_order(obs[key]):
        title = f"{key} {sec}"
        if time is not None and time != key and time in obs:
            t = obs.loc[(labels == sec).to_numpy(), time].astype(str).unique()
            if len(t) == 1:
                title += f" · {time} {t[0]}"
        out[sec] = title
    return out


def coordinate_unit(adata: Any) -> str:
    """The unit of the coordinates: ``uns['spatial_unit']`` when the data say, else ``"µm"``
    (MERFISH, Xenium, CosMx, STARmap and the built-in data are in micrometres)."""
    unit = adata.uns.get("spatial_unit") if hasattr(adata, "uns") else None
    return str(unit) if unit else "µm"


def scale_length(span: float, fraction: float = 0.2) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k) close to ``fraction`` of ``span``."""
    target = max(float(span) * fraction, 1e-12)
    k = np.floor(np.log10(target))
    return float(max((m * 10**k for m in (1, 2, 5)), key=lambda v: (v <= target, v)))
