"""Which cells: selections by label, mask, row, drawn polygon, and labels under the pointer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import tl
from ..errors import DataError, SettingError
from .state import AppState

__all__ = ["NO_COLUMN", "PICK_RADIUS", "SELECTION_MODES", "Selection", "cell_at",
           "cells_in_polygons", "default_column", "label_at", "majority_label", "nearest_cell",
           "parse_indices", "select", "typical_spacing", "where_mask"]

#: the choice "no second condition" in a form's "and" column list
NO_COLUMN = "(none)"

#: How cells can be chosen (see :func:`select`).
SELECTION_MODES = ("all", "cell_type", "domain", "label", "mask", "indices", "polygon")
#: A pick farther than this many typical neighbour distances from every cell is refused.
PICK_RADIUS = 3.0
_SPACING_SAMPLE = 5000  # cells used to estimate the typical neighbour distance


@dataclass
class Selection:
    """A set of cells of the state's table and how the user described it."""

    mask: np.ndarray
    description: str

    @property
    def n_cells(self) -> int:
        return int(self.mask.sum())


def select(state: AppState, mode: str = "all", value: Any = None, *,
           column: str | None = None, polygons: Any = None,
           where: Mapping[str, Any] | None = None) -> Selection:
    """Cells chosen by ``mode``, AND-ed with ``where``.

    ``"all"``; ``"cell_type"`` / ``"domain"`` / ``"label"``: cells whose ``column`` (guessed
    for the first two) equals ``value``; ``"mask"``: ``value`` is a boolean mask;
    ``"indices"``: ``value`` are table row positions (e.g. the selected points, or a text
    such as ``"0-99, 250"``: :func:`parse_indices`); ``"polygon"``: cells inside any of
    ``polygons`` (each ``(k, 2)`` in tissue ``(x, y)``). ``where``: further conditions
    ``{obs column: label or [labels]}`` every chosen cell must also meet, e.g.
    ``select(state, "label", "Oligo", column="celltype", where={"age_group": "young"})``.
    Raises :class:`~napari_causcell.DataError` when no cell is chosen.
    """
    base = _select(state, mode, value, column, polygons)
    where = {str(k): v for k, v in (where or {}).items() if k and k != NO_COLUMN and v}
    if not where:
        return base
    mask = base.mask & where_mask(state, where)
    text = " and ".join(f"{k}={v}" for k, v in where.items())
    if not mask.any():
        raise DataError(f"The cell selection is empty: no cell of {base.description} has "
                        f"{text}.")
    return Selection(mask, text if mode == "all" else f"{base.description} and {text}")


def where_mask(state: AppState, where: Mapping[str, Any]) -> np.ndarray:
    """Cells meeting every ``{column: label or [labels]}`` (an empty mask is returned,
    not refused)."""
    obs = state.adata.obs
    mask = np.ones(state.n_cells, dtype=bool)
    for col, want in where.items():
        if col not in obs:
            raise DataError(f"Column {col!r} is not in obs; columns: "
                            f"{state.categorical_columns()}.")
        wanted = [want] if isinstance(want, str) or not isinstance(want, Sequence) else want
        mask &= obs[col].astype(str).isin([str(w) for w in wanted]).to_numpy()
    return mask


def parse_indices(text: Any) -> list[int]:
    """Row positions from ``"0-99, 250 300"`` (ranges inclusive) or a sequence of ints."""
    if not isinstance(text, str):
        return [int(i) for i in (text if text is not None else [])]
    out: list[int] = []
    for part in text.replace(",", " ").split():
        lo, sep, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
        except ValueError:
            raise DataError(f"Cell rows are numbers or ranges like 0-99; got {part!r}.") from None
    return out


def default_column(state: AppState, kind: str = "cell_type") -> str | None:
    """A first choice for a form's column list: the guessed ``kind`` column, else the first
    categorical column. The user picks any other."""
    cols = state.categorical_columns()
    guess = state.guess_column(kind)
    return guess if guess in cols else (cols[0] if cols else None)


def _select(state: AppState, mode: str, value: Any, column: str | None,
            polygons: Any) -> Selection:
    if mode not in SELECTION_MODES:
        raise SettingError(f"mode must be one of {SELECTION_MODES}, got {mode!r}")
    if mode == "all":
        return Selection(tl.select_cells(state.adata, None), "all cells")
    if mode in ("cell_type", "domain", "label"):
        return _by_label(state, mode, value, column)
    if mode == "mask":
        if value is None:
            raise DataError("The cell selection is empty: no cell matches.")
        return Selection(tl.select_cells(state.adata, np.asarray(value, bool)), "masked cells")
    if mode == "indices":
        idx = np.asarray(sorted(set(parse_indices(value))))
        if idx.size == 0:
            raise DataError("The cell selection is empty: select some points first.")
        mask = tl.select_cells(state.adata, idx.astype(np.int64))
        return Selection(mask, f"{int(mask.sum())} selected cells")
    polys = as_polygons(polygons)
    if not polys:
        raise DataError("The cell selection is empty: draw a shape around cells first.")
    mask = cells_in_polygons(state, polys)
    if not mask.any():
        raise DataError("The cell selection is empty: no cell lies inside the drawn shape.")
    n = len(polys)
    return Selection(mask, f"{int(mask.sum())} cells in {n} drawn shape{'s' * (n > 1)}")


def _by_label(state: AppState, mode: str, value: Any, column: str | None) -> Selection:
    column = column or (state.guess_column(mode) if mode != "label" else None)
    if column is None:
        raise DataError(f"No {mode.replace('_', ' ')} column: choose one.")
    if value is None or value == "":
        raise DataError(f"Choose a label of {column!r}.")
    return Selection(tl.select_cells(state.adata, {column: str(value)}), f"{column}={value}")


def as_polygons(polygons: Any) -> list[np.ndarray]:
    """One ``(k, 2)`` array per polygon (``None`` -> none)."""
    if polygons is None:
        return []
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2:
        return [polygons[:, :2].astype(float)]
    return [np.asarray(p, float)[:, :2] for p in polygons if len(p)]


def cells_in_polygons(state: AppState, polygons: Any) -> np.ndarray:
    """Boolean mask of cells inside any polygon (tissue ``(x, y)`` vertices)."""
    from matplotlib.path import Path as MplPath

    mask = np.zeros(state.n_cells, dtype=bool)
    for poly in as_polygons(polygons):
        if len(poly) >= 3:
            mask |= MplPath(poly).contains_points(state.coords)
    return mask


def nearest_cell(state: AppState, xy: Sequence[float]) -> int:
    """Row of the cell closest to tissue position ``(x, y)``."""
    d = np.sum((state.coords - np.asarray(xy, float)[None, :2]) ** 2, axis=1)
    return int(np.argmin(d))


def typical_spacing(coords: np.ndarray) -> float:
    """Median distance from a cell to its nearest neighbour (on at most 5,000 cells)."""
    from scipy.spatial import cKDTree

    xy = np.asarray(coords, float)[:, :2]
    if len(xy) < 2:
        return float("inf")
    tree = cKDTree(xy)
    step = max(1, len(xy) // _SPACING_SAMPLE)
    dist, _ = tree.query(xy[::step], k=2)
    positive = dist[:, 1][dist[:, 1] > 0]
    return float(np.median(positive)) if positive.size else float("inf")


def cell_at(state: AppState, xy: Sequence[float], radius: float = PICK_RADIUS) -> int:
    """Row of the cell at tissue position ``(x, y)``: the closest one, refused with a
    :class:`~napari_causcell.DataError` when it is farther than ``radius`` typical neighbour
    distances (:func:`typical_spacing`), i.e. the position is off the tissue."""
    row = nearest_cell(state, xy)
    where = np.asarray(xy, float)[:2]
    dist = float(np.hypot(*(state.coords[row] - where)))
    spacing = typical_spacing(state.coords)
    if dist > radius * spacing:
        raise DataError(
            f"No cell there: the point x={where[0]:.0f}, y={where[1]:.0f} is {dist:.0f} away "
            f"from the nearest cell (neighbouring cells are about {spacing:.0f} apart). "
            "Click on a cell of the tissue.")
    return row


def label_at(state: AppState, xy: Sequence[float], column: str) -> str:
    """Label of ``column`` of the cell at ``(x, y)`` (see :func:`cell_at`: off the tissue
    is refused)."""
    return str(state.adata.obs[column].iloc[cell_at(state, xy)])


def majority_label(state: AppState, polygons: Any, column: str) -> str:
    """Most frequent label of ``column`` among the cells inside the polygons."""
    mask = cells_in_polygons(state, polygons)
    if not mask.any():
        raise DataError("No cell lies inside the drawn shape.")
    return str(state.adata.obs[column][mask].astype(str).value_counts().idxmax())


def pick_target(state: AppState, concept: str, xy: Sequence[float] | None = None,
                polygons: Any = None) -> tuple[str, str]:
    """``(label, message)``: the target of an intervention taken from the tissue.

    The label of ``concept`` of the cell at ``xy``, or the most common one inside
    ``polygons``; raises :class:`~napari_causcell.DataError` with the user's message.
    """
    if state.model is None or not concept:
        raise DataError("Train or load a model first.")
    if concept not in state.adata.obs:
        raise DataError(f"The data have no {concept!r} column.")
    if xy is not None:
        label = label_at(state, xy, concept)
        return label, (f"Target from the tissue: {concept}={label} (cell at x={xy[0]:.0f}, "
                       f"y={xy[1]:.0f}).")
    if not as_polygons(polygons):
        raise DataError("Draw a shape first (Draw...).")
    label = majority_label(state, polygons, concept)
    return label, f"Target from the drawn shape: {concept}={label} (most common label)."
