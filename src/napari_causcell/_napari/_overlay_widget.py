"""Overlay dock widget: factual / counterfactual / difference expression (or labels) on the
cells, one or two panels with shared colours, and the top changed genes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QFontDatabase
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
)

from .._keys import Key
from ..app import USER_ERRORS, VIEWS, Overlay, OverlayRequest
from ..app.canvas import PANEL_NAMES, legend_text, panel_offset, panels_wide, titles_text
from ..app.canvas import napari_units
from ..app.intervals import change_header, change_texts, greyed, top_note
from ..app.overlay import top_genes, top_genes_title
from ._base import NO_DATA, CausCellWidget, set_items
from ._colorbar import ColorBar
from ._layers import OVERLAY_KEY, follow_zoom, point_size, replace_text_layer

if TYPE_CHECKING:
    import napari

_COLOR_BY = [
    ("Gene expression", "expression"),
    ("Concept labels", "concept"),
    ("Predicted labels", "predicted"),
    ("Magnitude of change", "magnitude"),
]
_FACTUAL = "factual (no intervention)"
_NONE = "(none)"
_TEXT_LAYERS = ("CausCell panel titles", "CausCell overlay legend")
#: text colour of the top genes whose interval includes 0
GREY = "#8c8c8c"


class OverlayWidget(CausCellWidget):
    """Factual / counterfactual / difference expression (or labels) on the cells."""

    title = "Overlay"

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__(napari_viewer)
        self.body.addWidget(self._controls_box())
        self.show_btn = QPushButton("Show on tissue")
        self.colorbar = ColorBar()
        self.panels_label = QLabel("")  # which panel is which (the canvas titles them A, B)
        self.panels_label.setWordWrap(True)
        self.top_label = QLabel("Top changed genes (click one to show it):")
        self.top_label.setWordWrap(True)
        self.top_table = QTableWidget(0, 3)
        self.top_table.setHorizontalHeaderLabels(["gene", "mean change", "factual -> cf"])
        self.top_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.top_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.top_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.top_table.verticalHeader().setVisible(False)
        self.top_table.setMinimumHeight(160)
        header = self.top_table.horizontalHeader()
        for col in (1, 2):  # the numbers take their width, the gene names the rest
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.top_note = QLabel("")  # what a grey row means (or why there are no intervals)
        self.top_note.setWordWrap(True)
        self.top_note.setVisible(False)
        self.grid_check = QCheckBox("Grid mode: one viewbox per panel (hides other layers)")
        self.grid_check.setToolTip("Otherwise the second panel is placed beside the first")
        self.auto = QCheckBox("Update on every change")
        self.auto.setChecked(True)
        self.fade_check = QCheckBox("Fade uncertain cells (interval includes 0)")
        self.fade_check.setToolTip("Fade the cells whose group's (e.g. cell type's) 90 % "
                                   "interval of the shown gene's change includes 0")
        self.fade_check.setChecked(True)
        for w in (self.show_btn, self.colorbar, self.panels_label, self.top_label,
                  self.top_table, self.top_note, self.fade_check, self.grid_check, self.auto):
            self.body.addWidget(w)
        self.last_overlay: Overlay | None = None
        self._hidden_by_grid: list[Any] = []
        self._hidden_text: list[Any] = []  # the data's own titles and legend, while panels show
        self._grid_on = False
        self._last_newest: str | None = None
        self.grid_check.toggled.connect(self._on_control_changed)
        self.fade_check.toggled.connect(self._on_control_changed)
        self.show_btn.clicked.connect(self.apply)
        self.top_table.cellClicked.connect(self._on_top_clicked)
        for combo in (self.color_by, self.gene_combo, self.view_combo, self.concept_combo,
                      self.panel_a, self.panel_b):
            combo.currentIndexChanged.connect(self._on_control_changed)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        follow_zoom(self.viewer)
        self._compact()
        self._refresh_layers()

    def _controls_box(self) -> QGroupBox:
        from superqt import QSearchableComboBox

        box = QGroupBox("Show")
        f = QFormLayout(box)
        self.color_by = QComboBox()
        self.color_by.addItems([text for text, _ in _COLOR_BY])
        self.gene_combo = QSearchableComboBox()
        self.gene_combo.setToolTip("Type to search a gene")
        self.view_combo = QComboBox()
        self.view_combo.addItems(list(VIEWS))
        self.concept_combo, self.panel_a, self.panel_b = QComboBox(), QComboBox(), QComboBox()
        self.panel_b.setToolTip("A second panel, placed beside the first with the same colours")
        for name, w in (("Colour by", self.color_by), ("Gene", self.gene_combo),
                        ("View", self.view_combo), ("Labels of", self.concept_combo),
                        ("Intervention", self.panel_a), ("Compare with", self.panel_b)):
            f.addRow(name, w)
        return box

    # -- state -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        s = self.state
        combos = [self.gene_combo, self.concept_combo, self.panel_a, self.panel_b]
        for w in combos:
            w.blockSignals(True)
        try:
            self._fill_genes(s.genes if s is not None else [])
            concepts = [] if s is None else (s.model_concepts() if s.model is not None
                                             else s.categorical_columns())
            set_items(self.concept_combo, concepts)
            names = list(s.interventions) if s is not None else []
            newest, prev_a = (names[-1] if names else None), self.panel_a.currentText()
            set_items(self.panel_a, [*names[::-1], _FACTUAL], keep=False,
                      default=prev_a if prev_a in names and prev_a != self._last_newest
                      else newest)
            set_items(self.panel_b, [_NONE, _FACTUAL, *names[::-1]])
            self._last_newest = newest
        finally:
            for w in combos:
                w.blockSignals(False)
        self._update_top_genes()
        if self.auto.isChecked() and s is not None and self.last_overlay is not None:
            self.apply(quiet=True)

    def _fill_genes(self, genes: list[str]) -> None:
        if [self.gene_combo.itemText(i) for i in range(self.gene_combo.count())] != genes:
            current = self.gene_combo.currentText()
            self.gene_combo.clear()
            self.gene_combo.addItems(genes)
            if current in genes:
                self.gene_combo.setCurrentText(current)

    def _on_control_changed(self, *args: Any) -> None:
        mode = _COLOR_BY[self.color_by.currentIndex()][1]
        self.gene_combo.setEnabled(mode == "expression")
        self.view_combo.setEnabled(mode == "expression")
        self.concept_combo.setEnabled(mode in ("concept", "predicted"))
        self._update_top_genes()
        if self.auto.isChecked() and self.state is not None:
            self.apply(quiet=True)

    def _panels(self) -> list[str | None]:
        a, b = self.panel_a.currentText(), self.panel_b.currentText()
        panels = [None if a in (_FACTUAL, "") else a]
        if b and b != _NONE:
            panels.append(None if b == _FACTUAL else b)
        return panels

    def request(self) -> OverlayRequest:
        """The form as a request."""
        return OverlayRequest(_COLOR_BY[self.color_by.currentIndex()][1],
                              self.gene_combo.currentText() or None,
                              self.view_combo.currentText(), self._panels(),
                              self.concept_combo.currentText() or None,
                              fade_uncertain=self.fade_check.isChecked())

    def set_controls(self, *, color_by: str | None = None, gene: str | None = None,
                     view: str | None = None, intervention: str | None = None,
                     compare: str | None = None, concept: str | None = None) -> None:
        """Set several controls at once (as a user would), then update once."""
        auto = self.auto.isChecked()
        self.auto.setChecked(False)
        try:
            if color_by is not None:
                self.color_by.setCurrentIndex([m for _, m in _COLOR_BY].index(color_by))
            for combo, value in ((self.gene_combo, gene), (self.view_combo, view),
                                 (self.concept_combo, concept)):
                if value is not None:
                    combo.setCurrentText(value)
            if intervention is not None:
                self.panel_a.setCurrentText(_FACTUAL if intervention == "factual"
                                            else intervention)
            if compare is not None:
                self.panel_b.setCurrentText({"factual": _FACTUAL, "": _NONE}.get(compare,
                                                                                  compare))
        finally:
            self.auto.setChecked(auto)
        self.apply()

    # -- drawing -------------------------------------------------------------------------------
    def overlay_layer(self, panel: str, create: bool = True) -> Any:
        for layer in self.viewer.layers:
            meta = layer.metadata or {}
            if meta.get(OVERLAY_KEY) == panel and meta.get(Key.layer_meta.STATE) is self.state:
                return layer
        if not create:
            return None
        coords = self.state.coords
        units = napari_units(self.state)
        return self.viewer.add_points(
            coords[:, ::-1], name=f"CausCell {panel}", size=point_size(coords),
            border_width=0, face_color="white", translate=self._offset(panel),
            metadata={OVERLAY_KEY: panel, Key.layer_meta.STATE: self.state},
            **({"units": units} if units else {}))

    def _wide(self) -> bool:
        return panels_wide(self.state)

    def _offset(self, panel: str, grid: bool = False) -> tuple[float, float]:
        """World offset ``(y, x)`` of a panel (:func:`napari_causcell.app.canvas.panel_offset`:
        B below a wide tissue, right of a tall one)."""
        if grid:
            return (0.0, 0.0)
        dx, dy = panel_offset(self.state, PANEL_NAMES.index(panel))
        return (float(dy), float(dx))

    def _set_grid(self, on: bool) -> None:
        grid = self.viewer.grid
        if on:
            for layer in self.viewer.layers:
                if layer.visible and not (layer.metadata or {}).get(OVERLAY_KEY):
                    layer.visible = False
                    self._hidden_by_grid.append(layer)
            grid.shape = (2, 1) if self._wide() else (1, 2)
            grid.enabled = True
        elif self._grid_on:
            grid.enabled = False
            for layer in self._hidden_by_grid:
                if layer in self.viewer.layers:
                    layer.visible = True
            self._hidden_by_grid = []
        self._grid_on = on

    def apply(self, *args: Any, quiet: bool = False) -> Overlay | None:
        """Colour the overlay layer(s) with the current choices."""
        if self.state is None:
            if not quiet:
                self.message(NO_DATA, error=True)
            return None
        try:
            ov, text = self.request().run(self.state)
        except USER_ERRORS as err:
            self.message(str(err), error=not quiet)
            return None
        self._draw(ov)
        self.last_overlay = ov
        if not quiet:
            self.message(text)
        return ov

    def _draw(self, ov: Overlay) -> None:
        grid = self.grid_check.isChecked() and len(ov.values) > 1
        for i, panel in enumerate("AB"[: len(ov.values)]):
            layer = self.overlay_layer(panel)
            layer.translate = self._offset(panel, grid)
            layer.face_color = ov.rgba(i)
            layer.features = pd.DataFrame({"value": ov.values[i]})
            layer.name = f"CausCell {panel}: {ov.titles[i]}"
            layer.visible = True
        b = self.overlay_layer("B", create=False) if len(ov.values) < 2 else None
        if b is not None:
            self.viewer.layers.remove(b)
        if grid or self._grid_on:
            self._set_grid(grid)
        self.colorbar.show_overlay(ov)
        self.panels_label.setText(ov.caption(self._wide()).split("\n", 1)[-1])
        self._draw_text(ov, grid)
        self._hide_data_text()
        self.viewer.scale_bar.visible = True

    def _draw_text(self, ov: Overlay, grid: bool) -> None:
        """A short heading, the titles of the panels and their sections, and a legend of
        label colours, as text layers of their own (the long caption is in the dock)."""
        heading = ov.label.split(";")[0].split(" (")[0]  # "Penk: log-expression"
        titles = titles_text(self.state, ov.titles, heading, grid=grid)
        legend = None
        if ov.kind == "categorical":
            present = {lab for lab, _ in ov.legend()}
            legend = legend_text(self.state, ov.palette, present, ov.label,
                                 panels=1 if grid else len(ov.values))
        for name, text in zip(_TEXT_LAYERS, (titles, legend)):
            replace_text_layer(self.viewer, name, text, self.state)

    def _hide_data_text(self) -> None:
        """The data's own section titles and legend (the reader's and the samples' text
        layers) would sit under panel A's titles and beside or under panel B: hidden while
        the panels show (:meth:`_on_layer_removed` shows them again)."""
        for layer in self.viewer.layers:
            meta = layer.metadata or {}
            if (meta.get(OVERLAY_KEY) == "text" and meta.get(Key.layer_meta.STATE) is None
                    and layer.visible):
                layer.visible = False
                self._hidden_text.append(layer)

    def _on_layer_removed(self, event: Any = None) -> None:
        """The last panel removed: its titles and legend go, the data's come back."""
        if self.state is None or not self._hidden_text:
            return
        if any(self.overlay_layer(p, create=False) is not None for p in PANEL_NAMES):
            return
        hidden, self._hidden_text = self._hidden_text, []
        for layer in hidden:
            if layer in self.viewer.layers:
                layer.visible = True
        for name in _TEXT_LAYERS:
            replace_text_layer(self.viewer, name, None, self.state)

    # -- top changed genes ---------------------------------------------------------------------
    def _update_top_genes(self) -> None:
        s = self.state
        self.top_table.setRowCount(0)
        self.top_note.setVisible(False)
        names = [p for p in self._panels() if p is not None] if s is not None else []
        if not names:
            self.top_label.setText("Top changed genes: run an intervention first.")
            return
        df = top_genes(s, names[0], n=15)
        self.top_label.setText(f"{top_genes_title(s, names[0])} (click one to show it):")
        self.top_table.setHorizontalHeaderItem(1, QTableWidgetItem(change_header(df)))
        self.top_table.setRowCount(len(df))
        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        fixed.setFixedPitch(True)
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        grey = greyed(df)
        for r, (row, change) in enumerate(zip(df.itertuples(index=False), change_texts(df))):
            vals = [row.gene, change, f"{row.mean_factual:.2f} -> {row.mean_counterfactual:.2f}"]
            for c, v in enumerate(vals):
                item = QTableWidgetItem(v)
                if c:  # numbers: fixed width, right-aligned, so that they line up
                    item.setFont(fixed)
                    item.setTextAlignment(right)
                if grey[r]:
                    item.setForeground(QColor(GREY))
                self.top_table.setItem(r, c, item)
        self.top_table.resizeRowsToContents()
        note = top_note(df, s.get_intervention(names[0]))
        self.top_note.setText(note)
        self.top_note.setVisible(bool(note))

    def top_genes(self) -> list[str]:
        return [self.top_table.item(r, 0).text() for r in range(self.top_table.rowCount())]

    def _on_top_clicked(self, row: int, col: int) -> None:
        self.set_controls(color_by="expression", gene=self.top_table.item(row, 0).text())
