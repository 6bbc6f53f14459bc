"""Layers <-> app states: cells as Points, the napari-spatialdata metadata convention, overlays."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..data import DataError, resolve_table, table_attrs
from .._keys import Key
from ..app import AppState, data_from_metadata, label_palette
from ..app.canvas import CanvasText, fit_zoom, font_size, legend_text, napari_units, titles_text

if TYPE_CHECKING:
    import napari

OVERLAY_KEY = Key.layer_meta.OVERLAY  # metadata flag of the overlay layers ("A" or "B")
TEXT_FONT = "causcell_text_font"  # metadata of a text layer: its font in display units
_STATES: dict[tuple[int, str | None], tuple[Any, AppState]] = {}


def is_data_layer(layer: Any) -> bool:
    """A layer carrying a SpatialData / AnnData the way napari-spatialdata does."""
    meta = getattr(layer, "metadata", None) or {}
    return not meta.get(OVERLAY_KEY) and (
        meta.get("sdata") is not None or meta.get("adata") is not None
    )


def data_layers(viewer: napari.Viewer) -> list[Any]:
    return [layer for layer in viewer.layers if is_data_layer(layer)]


def state_for(layer: Any, table_key: str | None = None) -> AppState:
    """The (shared) application state of the data a layer carries: one per dataset and
    table, so every dock widget works on the same model and interventions."""
    data, key = data_from_metadata(layer.metadata)
    key = table_key or key
    if key is None and data is not None and hasattr(data, "tables"):
        key = resolve_table(data)[1]
    entry = _STATES.get((id(data), key))
    if entry is None or entry[0] is not data:
        state = AppState(data, key)
        _STATES[(id(data), key)] = (data, state)
        return state
    return entry[1]


session_for = state_for  # the name before napari_causcell.app


def forget_sessions() -> None:
    """Drop every kept state (tests; closing all data)."""
    _STATES.clear()


def layer_rows(layer: Any, session: AppState) -> np.ndarray:
    """Table row of each element of ``layer`` (-1 where the element has no row)."""
    meta = layer.metadata or {}
    n_layer = len(layer.data)
    if meta.get(OVERLAY_KEY):
        return np.arange(n_layer)
    obs = session.adata.obs
    attrs = session.attrs
    ik = meta.get("instance_key") or attrs.get("instance_key")
    indices = meta.get("indices")
    if indices is not None and ik in obs and len(indices) == n_layer:
        ids = obs[ik]
        candidates = np.ones(len(obs), dtype=bool)
        rk, name = meta.get("region_key") or attrs.get("region_key"), meta.get("name")
        if rk in obs and name is not None and (obs[rk].astype(str) == str(name)).any():
            candidates = (obs[rk].astype(str) == str(name)).to_numpy()
        pos = np.flatnonzero(candidates)
        index = pd.Index(ids.to_numpy()[pos])
        found = index.get_indexer(pd.Index(np.asarray(indices)))
        if (found < 0).all():
            found = pd.Index(ids.astype(str).to_numpy()[pos]).get_indexer(
                pd.Index(np.asarray(indices).astype(str)))
        return np.where(found >= 0, pos[np.maximum(found, 0)], -1)
    if n_layer == session.n_cells:
        return np.arange(n_layer)
    raise DataError(
        f"Layer {layer.name!r} has {n_layer} elements but the table has {session.n_cells} cells "
        "and no 'indices' metadata links them."
    )


def world_to_tissue(layer: Any, points_world: np.ndarray) -> np.ndarray:
    """World positions (napari ``(y, x)``) -> tissue ``(x, y)`` in ``layer``'s data frame."""
    pts = np.atleast_2d(np.asarray(points_world, float))
    data = np.array([layer.world_to_data(p) for p in pts])
    return data[:, -2:][:, ::-1]


def shapes_to_tissue(shapes: Any, source: Any, only_selected: bool = True) -> list[np.ndarray]:
    """Polygons of a Shapes layer as tissue ``(x, y)`` vertices in ``source``'s frame.

    The selected shapes when any are selected (and ``only_selected``), else every shape.
    """
    chosen = sorted(shapes.selected_data) if only_selected and shapes.selected_data else None
    items = [shapes.data[i] for i in chosen] if chosen is not None else list(shapes.data)
    out = []
    for verts in items:
        world = np.array([shapes.data_to_world(v) for v in np.asarray(verts, float)])
        out.append(world_to_tissue(source, world[:, -2:]))
    return out


def point_size(coords: np.ndarray) -> float:
    """A point diameter that about tiles the tissue (1.6 x median nearest-neighbour distance)."""
    from scipy.spatial import cKDTree

    if len(coords) < 2:
        return 10.0
    sample = coords if len(coords) <= 20000 else coords[:: len(coords) // 20000]
    d, _ = cKDTree(coords).query(sample, k=2)
    return 1.6 * float(np.median(d[:, 1])) or 10.0


def cells_layer_tuple(
    data: Any, table_key: str | None = None, *, name: str | None = None,
    color_by: str | None = None,
) -> tuple:
    """LayerDataTuple of a Points layer of the table's cells at tissue coordinates.

    ``metadata`` follows napari-spatialdata: ``sdata`` / ``adata`` / ``region_key`` /
    ``instance_key`` / ``table_names`` / ``indices``.
    """
    from ..data import is_spatialdata

    table, key = resolve_table(data, table_key)
    attrs = table_attrs(table)
    session = AppState(data, key)
    coords = session.coords  # overlapping sections side by side (app.AppState.coords)
    color_by = color_by or session.guess_column("cell_type") or session.guess_column("domain")
    face = "white"
    if color_by is not None:
        labels = table.obs[color_by].astype(str).to_numpy()
        palette = label_palette(session.labels(color_by))
        face = np.array([palette[lab] for lab in labels])
    features = pd.DataFrame(
        {c: table.obs[c].to_numpy() for c in session.categorical_columns()}
    )
    ik = attrs.get("instance_key")
    region = attrs.get("region")
    meta = {
        "sdata": data if is_spatialdata(data) else None,
        "adata": table,
        "region_key": attrs.get("region_key"),
        "instance_key": ik,
        "table_names": [key] if key else [],
        "name": region if isinstance(region, str) else None,
        "indices": table.obs[ik].tolist() if ik in table.obs else list(range(table.n_obs)),
        Key.layer_meta.COLOR_BY: color_by,
    }
    kwargs = {
        "name": name or (region if isinstance(region, str) else "cells"),
        "size": point_size(coords),
        "face_color": face,
        "border_width": 0,
        "features": features,
        "metadata": meta,
    }
    units = napari_units(session)
    if units is not None:
        kwargs["units"] = units
    return (coords[:, ::-1].copy(), kwargs, "points")


def cells_layers(data: Any, table_key: str | None = None, *, name: str | None = None,
                 color_by: str | None = None) -> list[tuple]:
    """The cells layer (:func:`cells_layer_tuple`), the sections' titles and a legend of
    its colours, as LayerDataTuples (text sized for a laptop's canvas showing them all)."""
    cells = cells_layer_tuple(data, table_key, name=name, color_by=color_by)
    state = AppState(data, resolve_table(data, table_key)[1])
    texts = [(titles_text(state), "CausCell sections")]
    column = cells[1]["metadata"].get(Key.layer_meta.COLOR_BY)
    if column is not None:
        texts.append((legend_text(state, label_palette(state.labels(column)), title=column),
                      "CausCell legend"))
    texts = [(t, n) for t, n in texts if len(t)]
    xy = state.coords
    extent = np.r_[np.nanmin(xy, 0), np.nanmax(xy, 0)]
    for text, _ in texts:
        extent = np.r_[np.minimum(extent[:2], text.extent[:2]),
                       np.maximum(extent[2:], text.extent[2:])]
    zoom = fit_zoom(extent)
    return [cells, *(text_layer_tuple(t, n, zoom=zoom, units=napari_units(state))
                     for t, n in texts)]


def text_layer_tuple(text: CanvasText, name: str, zoom: float = 1.0,
                     units: tuple[str, str] | None = None) -> tuple:
    """LayerDataTuple of a Points layer that writes ``text`` on the canvas (markers only
    where ``text.colors`` gives a visible colour: a legend), its size for ``zoom`` (screen
    pixels per display unit; :func:`fit_text_sizes` follows the zoom). Two unlabelled
    points mark the corners of :attr:`CanvasText.extent`, so that napari's ``reset_view``
    fits the texts, not only their anchors."""
    colors = text.colors if text.colors is not None else np.zeros((len(text), 4))
    pos, labels = text.positions, list(text.texts)
    if text.extent is not None:
        pos = np.r_[pos, np.reshape(text.extent, (2, 2))]
        colors = np.r_[colors, np.zeros((2, 4))]
        labels += ["", ""]
    data = pos[:, ::-1].copy() if len(pos) else np.zeros((0, 2))
    kwargs = {
        "name": name,
        "size": text.marker or 1.0,
        "face_color": colors,
        "border_width": 0,
        "border_color": [0.0, 0.0, 0.0, 0.0],  # no faint ring round the unmarked points
        "features": pd.DataFrame({"label": labels}),
        "text": {"string": "{label}", "color": "white",
                 "size": font_size(text.font, zoom) if text.font else 10,
                 "anchor": "upper_left" if text.marker else "center",
                 "translation": [text.marker / 2, text.marker]},
        "metadata": {Key.layer_meta.OVERLAY: "text", TEXT_FONT: text.font},
    }
    if units is not None:
        kwargs["units"] = units
    return (data, kwargs, "points")


def fit_text_sizes(viewer: napari.Viewer) -> None:
    """Set each CausCell text layer's size to its font at the camera's zoom: the texts keep
    their size beside the tissue (within :data:`~napari_causcell.app.canvas.FONT_RANGE`)."""
    zoom = float(viewer.camera.zoom)
    for layer in viewer.layers:
        font = (layer.metadata or {}).get(TEXT_FONT)
        if font and abs(layer.text.size - font_size(font, zoom)) > 0.05:
            layer.text.size = font_size(font, zoom)


def follow_zoom(viewer: napari.Viewer) -> None:
    """Keep the text sizes in step with the zoom (:func:`fit_text_sizes`; connected once
    per viewer, holding it weakly)."""
    emitter = viewer.camera.events.zoom
    if "causcell_text_sizes" not in emitter.callback_refs:
        ref = weakref.ref(viewer)

        def causcell_text_sizes(event: Any = None) -> None:
            if (v := ref()) is not None:
                fit_text_sizes(v)

        emitter.connect(causcell_text_sizes, ref="causcell_text_sizes")
    fit_text_sizes(viewer)


def color_layer_by_labels(layer: Any, session: AppState, column: str) -> None:
    """Colour a cells layer by an ``obs`` column (e.g. freshly derived domains)."""
    rows = layer_rows(layer, session)
    labels = session.adata.obs[column].astype(str).to_numpy()
    palette = label_palette(session.labels(column))
    grey = np.array([0.45, 0.45, 0.45, 1.0])
    layer.face_color = np.array([palette[labels[r]] if r >= 0 else grey for r in rows])
    layer.metadata[Key.layer_meta.COLOR_BY] = column
    if column in session.adata.obs:
        feats = layer.features.copy() if len(layer.features) == len(rows) else pd.DataFrame(
            index=range(len(rows)))
        feats[column] = [labels[r] if r >= 0 else "" for r in rows]
        layer.features = feats


def replace_text_layer(viewer: napari.Viewer, name: str, text: CanvasText | None,
                       state: AppState) -> Any:
    """Put ``text`` on the canvas as the Points layer ``name`` (replacing an older one);
    ``None`` or empty text removes it. Returns the layer (or ``None``)."""
    for layer in list(viewer.layers):
        meta = layer.metadata or {}
        if layer.name == name and meta.get(OVERLAY_KEY) == "text":
            viewer.layers.remove(layer)
    if text is None or not len(text):
        return None
    data, kwargs, _ = text_layer_tuple(text, name, zoom=viewer.camera.zoom,
                                       units=napari_units(state))
    kwargs["metadata"][Key.layer_meta.STATE] = state
    layer = viewer.add_points(data, **kwargs)
    follow_zoom(viewer)
    return layer
