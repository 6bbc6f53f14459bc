"""Intervene dock widget: do(concept = value) on chosen cells, and the Trends section."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
)

from ..app import USER_ERRORS
from ..app import cells as app_cells
from ..app.canvas import SHAPE_STYLE, napari_units, shape_edge_width
from ..app.intervene import (
    InterveneRequest,
    InterveneResult,
    intervene_job,
    keep_text,
    keepable,
)
from ..errors import DataError
from ._base import CausCellWidget, WrappedCheckBox, set_items
from ._intervene_settings import GenerationSettings
from ._layers import OVERLAY_KEY, layer_rows, shapes_to_tissue, world_to_tissue
from ._trends_widget import TrendsBox

if TYPE_CHECKING:
    import napari

_CELL_MODES = [
    ("All cells", "all"),
    ("A cell type", "cell_type"),
    ("A domain", "domain"),
    ("Cells with a label of...", "label"),
    ("Selected points", "indices"),
    ("Inside drawn shapes", "polygon"),
]


class InterveneWidget(CausCellWidget):
    """do(concept = value) on chosen cells -> a counterfactual kept in the data.

    ``self.generation`` is the sampling form (a magicgui :class:`GenerationSettings`); its
    value widgets are also ``self.sampler``, ``self.steps``, ``self.gen_seed``, ``self.donor``
    (``w.steps.value = 7``)."""

    title = "Intervene"

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__(napari_viewer)
        self.body.addWidget(self._target_box())
        self.body.addWidget(self._cells_box())
        self.body.addWidget(self._generation_box())
        self.run_btn = QPushButton("Run intervention")
        self.body.addWidget(self.run_btn)
        self.body.addWidget(QLabel("Kept interventions (tables in the SpatialData):"))
        self.results = QListWidget()
        self.results.setMaximumHeight(110)
        self.body.addWidget(self.results)
        self.trends = TrendsBox(self)
        self.trend_source, self.trend_target = self.trends.source, self.trends.target
        self.trends_btn, self.trends_table = self.trends.run_btn, self.trends.table
        self.body.addWidget(self.trends)
        self.concept_combo.currentTextChanged.connect(self._on_concept)
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self.column_combo.currentTextChanged.connect(self._on_column)
        self.and_column.currentTextChanged.connect(self._on_and_column)
        self.pick_btn.toggled.connect(self._on_pick_toggled)
        self.shape_target_btn.clicked.connect(self.target_from_shapes)
        self.draw_btn.clicked.connect(self.add_shapes_layer)
        self.run_btn.clicked.connect(self.run)
        ev = self.viewer.layers.events
        ev.inserted.connect(self._refresh_shapes)
        ev.removed.connect(self._refresh_shapes)
        self._compact()
        self._refresh_layers()
        self._refresh_shapes()

    def _target_box(self) -> QGroupBox:
        box = QGroupBox("Intervention")
        f = QFormLayout(box)
        self.concept_combo, self.concept_hint = QComboBox(), QLabel("")
        self.target_combo = QComboBox()
        self.pick_btn = QPushButton("Pick on tissue")
        self.pick_btn.setCheckable(True)
        self.pick_btn.setToolTip("Click a cell: the target is its label (e.g. its domain)")
        self.shape_target_btn = QPushButton("From drawn shape")
        self.shape_target_btn.setToolTip("The target is the most common label inside the shape")
        pick = QHBoxLayout()
        pick.addWidget(self.pick_btn)
        pick.addWidget(self.shape_target_btn)
        f.addRow("Concept", self.concept_combo)
        f.addRow("", self.concept_hint)
        f.addRow("Set it to", self.target_combo)
        self.keep_box = WrappedCheckBox(keep_text(self.state, None) if self.state else "Keep")
        self.keep_box.setToolTip("Checked: each cell keeps its own label of the concepts "
                                 "downstream (e.g. 'this astrocyte, in the cortex'). "
                                 "Unchecked: they may respond to the intervention.")
        f.addRow("", self.keep_box)
        f.addRow("", pick)
        return box

    def _cells_box(self) -> QGroupBox:
        box = QGroupBox("Which cells")
        f = QFormLayout(box)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems([text for text, _ in _CELL_MODES])
        self.column_combo, self.label_combo = QComboBox(), QComboBox()
        self.shapes_combo = QComboBox()
        self.draw_btn = QPushButton("Draw...")
        self.draw_btn.setToolTip("Add a Shapes layer in polygon mode to draw around cells")
        shapes_row = QHBoxLayout()
        shapes_row.addWidget(self.shapes_combo, 1)
        shapes_row.addWidget(self.draw_btn)
        f.addRow("Cells", self.mode_combo)
        f.addRow("Column", self.column_combo)
        f.addRow("Label", self.label_combo)
        # a second condition AND-ed with any choice (e.g. Oligo cells that are young)
        self.and_column, self.and_label = QComboBox(), QComboBox()
        self.and_column.setToolTip("Keep only the chosen cells that also have this label")
        and_row = QHBoxLayout()
        and_row.addWidget(self.and_column, 1)
        and_row.addWidget(self.and_label, 1)
        f.addRow("and", and_row)
        f.addRow("Shapes", shapes_row)
        return box

    def _generation_box(self) -> QGroupBox:
        """The magicgui form :class:`GenerationSettings` (``self.generation``) in its box."""
        box = QGroupBox("Generation")
        lay = QVBoxLayout(box)
        self.generation = GenerationSettings()
        self.sampler, self.steps = self.generation.sampler, self.generation.steps
        self.gen_seed, self.donor = self.generation.seed, self.generation.donor
        lay.addWidget(self.generation.native)
        return box

    # -- state ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        s = self.state
        concepts = s.model_concepts() if s is not None else []
        time = s.guess_column("time") if s is not None else None
        set_items(self.concept_combo, concepts, default=time if time in concepts else None)
        self._on_concept(self.concept_combo.currentText())
        columns = s.categorical_columns() if s is not None else []
        set_items(self.column_combo, columns)
        set_items(self.and_column, [app_cells.NO_COLUMN, *columns])
        self._on_and_column(self.and_column.currentText())
        self._on_mode()
        self.results.clear()
        for iv in (s.interventions.values() if s is not None else []):
            self.results.addItem(iv.describe())
        ready = s is not None and s.ready
        self.run_btn.setEnabled(ready and not self.busy)
        self.trends_btn.setEnabled(ready and not self.busy)
        if s is not None and not ready and not self.busy:
            self.status.setText("Train a model (Train widget) or load one first.")
            self.status.setStyleSheet("")

    def _on_concept(self, concept: str) -> None:
        s = self.state
        labels = s.concept_labels_of_model(concept) if s is not None else []
        set_items(self.target_combo, labels, default=labels[-1] if labels else None)
        self.trends.fill(labels)
        self.concept_hint.setText(s.concept_role(concept) if s is not None and labels else "")
        self.keep_box.setText(keep_text(s, concept) if s is not None else "Keep")
        self.keep_box.setEnabled(s is not None and bool(keepable(s, concept)))

    def _mode(self) -> str:
        return _CELL_MODES[self.mode_combo.currentIndex()][1]

    def set_mode(self, mode: str) -> None:
        self.mode_combo.setCurrentIndex([m for _, m in _CELL_MODES].index(mode))

    def _on_mode(self, *args: Any) -> None:
        mode, s = self._mode(), self.state
        is_label = mode in ("cell_type", "domain", "label")
        self.column_combo.setEnabled(is_label)
        self.label_combo.setEnabled(is_label)
        self.shapes_combo.setEnabled(mode == "polygon")
        guess = s.guess_column(mode) if s is not None and mode in ("cell_type", "domain") else None
        if guess:
            self.column_combo.setCurrentText(guess)
        self._on_column(self.column_combo.currentText())

    def _on_column(self, column: str) -> None:
        s = self.state
        set_items(self.label_combo, s.labels(column) if s and column in s.adata.obs else [])

    def _on_and_column(self, column: str) -> None:
        s = self.state
        ok = s is not None and column in s.adata.obs
        set_items(self.and_label, s.labels(column) if ok else [])
        self.and_label.setEnabled(ok)

    def _where(self) -> dict[str, str] | None:
        """The second condition, ``{column: label}``, or ``None``."""
        column = self.and_column.currentText()
        if not column or column == app_cells.NO_COLUMN or not self.and_label.currentText():
            return None
        return {column: self.and_label.currentText()}

    def _refresh_shapes(self, event: Any = None) -> None:
        from napari.layers import Shapes

        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Shapes)]
        set_items(self.shapes_combo, names, default=names[-1] if names else None)

    def shapes_layer(self) -> Any:
        name = self.shapes_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def add_shapes_layer(self) -> Any:
        """A Shapes layer in polygon mode to draw around cells (or a target region): no
        fill and a thin outline (:data:`napari_causcell.app.canvas.SHAPE_STYLE`), so the
        cells inside stay visible."""
        width = shape_edge_width(self.state) if self.state is not None else 2.0
        units = napari_units(self.state) if self.state is not None else None
        layer = self.viewer.add_shapes(name="CausCell region", edge_width=width,
                                       **SHAPE_STYLE, **({"units": units} if units else {}))
        layer.mode = "add_polygon"
        self._refresh_shapes()
        self.shapes_combo.setCurrentText(layer.name)
        self.message("Draw a polygon on the tissue (double-click closes it).")
        return layer

    # -- target from the tissue ---------------------------------------------------------------
    def _on_pick_toggled(self, on: bool) -> None:
        cbs = self.viewer.mouse_drag_callbacks
        if on and self._pick_callback not in cbs:
            cbs.append(self._pick_callback)
            self.message("Click a cell on the tissue to take its label as the target.")
        elif not on and self._pick_callback in cbs:
            cbs.remove(self._pick_callback)

    def _pick_callback(self, viewer: Any, event: Any) -> None:
        if getattr(event, "type", "mouse_press") == "mouse_press":
            self.pick_target_at(event.position)
            self.pick_btn.setChecked(False)

    def pick_target_at(self, world_position: Any) -> str | None:
        """Target = the concept label of the cell under a world position (napari ``(y, x)``)."""
        layer = self.source_layer
        xy = (world_to_tissue(layer, np.asarray(world_position, float)[-2:])[0]
              if layer is not None else None)
        return self._take_target(xy=xy)

    def target_from_shapes(self) -> str | None:
        """Target = the most common concept label inside the drawn shape(s)."""
        shapes, layer = self.shapes_layer(), self.source_layer
        polys = (shapes_to_tissue(shapes, layer) if shapes is not None and layer is not None
                 and len(shapes.data) else None)
        return self._take_target(polygons=polys)

    def _take_target(self, **where: Any) -> str | None:
        try:
            if self.state is None or self.source_layer is None:
                raise DataError("Train or load a model first.")
            label, text = app_cells.pick_target(self.state, self.concept_combo.currentText(),
                                                **where)
        except USER_ERRORS as err:
            self.message(str(err), error=True)
            return None
        self.target_combo.setCurrentText(label)
        self.message(text)
        return label

    # -- run -----------------------------------------------------------------------------------
    def request(self) -> InterveneRequest:
        """The form as a request (the cells as the chosen mode describes them)."""
        mode = self._mode()
        label: Any = self.label_combo.currentText()
        polygons = None
        if mode == "indices":
            label = self._selected_rows()
        elif mode == "polygon":
            shapes = self.shapes_layer()
            polygons = shapes_to_tissue(shapes, self.source_layer) if shapes is not None else []
        return InterveneRequest(
            self.concept_combo.currentText(), self.target_combo.currentText(), mode, label,
            self.column_combo.currentText() or None, polygons, **self.generation.sampling(),
            keep=self.keep_box.isChecked() and self.keep_box.isEnabled(), where=self._where())

    def _selected_rows(self) -> list[int]:
        """Table rows of the points selected in the cells layer or overlay panel A."""
        rows: set[int] = set()
        for layer in self.viewer.layers:
            meta = layer.metadata or {}
            if (layer is self.source_layer or meta.get(OVERLAY_KEY) == "A") and getattr(
                    layer, "selected_data", None):
                r = layer_rows(layer, self.state)[sorted(layer.selected_data)]
                rows |= {int(i) for i in r if i >= 0}
        return sorted(rows)

    def run(self) -> Any:
        """Generate the counterfactual on a worker; the result is kept and listed."""
        return self.submit(lambda: intervene_job(self.state, self.request()),
                           self._on_result)

    def _on_result(self, result: InterveneResult) -> None:
        self.message(result.message)

    # -- trends (the TrendsBox section) ----------------------------------------------------------
    def run_trends(self) -> Any:
        """Start the Trends section's job."""
        return self.trends.run()

    @property
    def trends_result(self) -> Any:
        return self.trends.result

    def _set_busy(self, busy: bool) -> None:
        ready = self.state is not None and self.state.ready
        self.run_btn.setEnabled(not busy and ready)
        self.trends_btn.setEnabled(not busy and ready)
        self.layer_combo.setEnabled(not busy)
