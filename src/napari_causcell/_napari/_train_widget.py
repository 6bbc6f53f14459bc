"""Train dock widget: concepts, causal graph (ticks or suggested), domains, training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..app import USER_ERRORS, Progress, describe_error, domains, graph, train
from ..app.forms import GraphForm
from ._base import ERROR_STYLE, OK_STYLE, CausCellWidget, set_items
from ._dag_grid import DagGrid
from ._layers import color_layer_by_labels
from ._plots import DagPlot, LossPlot
from ._train_settings import TrainSettings

if TYPE_CHECKING:
    import napari

_UNDIRECTED_TEXT = "#ffb45f"


class TrainWidget(CausCellWidget, GraphForm):
    """Concepts, DAG, settings (a magicgui form: epochs, time limit, device, seed, model
    size) -> a trained CausCell model. ``self.settings`` is that form; its value widgets are
    also ``self.epochs``, ``self.max_time``, ``self.device``, ``self.seed``,
    ``self.model_size``."""

    title = "Train"

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__(napari_viewer)
        self.table_combo = QComboBox()
        self.table_combo.setToolTip("Table of the SpatialData holding expression and labels")
        self.form.addRow("Table", self.table_combo)
        concepts_box = QGroupBox("Concepts (observed labels)")
        self.concept_list = QListWidget()
        self.concept_list.setMinimumHeight(70)
        self.concept_list.setMaximumHeight(110)
        QVBoxLayout(concepts_box).addWidget(self.concept_list)
        self.body.addWidget(concepts_box)
        self.body.addWidget(self._graph_box())
        self.body.addWidget(self._domains_box())
        self._add_training_controls()
        self.table_combo.currentTextChanged.connect(self._on_table_changed)
        self.concept_list.itemChanged.connect(self._rebuild_dag)
        self.dag_table.refused.connect(self._on_refused)
        self.dag_table.ticked.connect(self._on_ticked)
        self.derive_btn.clicked.connect(self.derive_domains)
        self.suggest_btn.clicked.connect(self.suggest_graph)
        self.train_btn.clicked.connect(self.start_training)
        self.cancel_btn.clicked.connect(self.cancel)
        self.save_btn.clicked.connect(lambda: self.save_model())
        self.load_btn.clicked.connect(lambda: self.load_model())
        self._compact()
        self._refresh_layers()

    def _graph_box(self) -> QGroupBox:
        box = QGroupBox("Causal graph")
        lay = QVBoxLayout(box)
        how = QLabel("Tick each concept's parents: row <- column.")
        how.setWordWrap(True)
        lay.addWidget(how)
        self.dag_table = DagGrid()
        self.dag_message = QLabel("")
        self.dag_message.setWordWrap(True)
        self.suggest_btn = QPushButton("Suggest graph")
        self.suggest_btn.setToolTip(
            "Propose the parents from the labels (PC algorithm, chi-square tests; time/batch "
            "columns first, then domain). Undirected edges are marked for you to decide.")
        self.suggest_label = QLabel("")
        self.suggest_label.setWordWrap(True)
        self.suggest_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dag_plot = DagPlot()
        self.dag_plot.setVisible(False)
        for w in (self.dag_table, self.dag_message, self.suggest_btn, self.suggest_label,
                  self.dag_plot):
            lay.addWidget(w)
        return box

    def _domains_box(self) -> QGroupBox:
        box = QGroupBox("Spatial domains (if the data have none)")
        lay = QFormLayout(box)
        self.domains_n = QSpinBox()
        self.domains_n.setRange(2, 50)
        self.domains_n.setValue(6)
        self.domains_from = QComboBox()
        self.domains_from.setToolTip("Cell-type column whose neighbourhood mix defines domains")
        self.derive_btn = QPushButton("Derive domains")
        lay.addRow("Domains", self.domains_n)
        lay.addRow("From", self.domains_from)
        lay.addRow("", self.derive_btn)
        return box

    def _add_training_controls(self) -> None:
        self.settings = TrainSettings()
        self.epochs, self.max_time = self.settings.epochs, self.settings.max_time
        self.device, self.seed = self.settings.device, self.settings.seed
        self.model_size = self.settings.model_size
        self.body.addWidget(self.settings.native)
        self.train_btn, self.cancel_btn = QPushButton("Train"), QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.save_btn, self.load_btn = QPushButton("Save model..."), QPushButton("Load model...")
        self.loss_plot = LossPlot()
        for pair in ((self.train_btn, self.cancel_btn), None, (self.save_btn, self.load_btn)):
            if pair is None:
                self.body.addWidget(self.loss_plot)
                continue
            row = QHBoxLayout()
            row.addWidget(pair[0])
            row.addWidget(pair[1])
            self.body.addLayout(row)

    # -- state -------------------------------------------------------------------------------
    def refresh(self) -> None:
        s = self.state
        keys = s.table_keys() if s is not None else []
        set_items(self.table_combo, keys, default=s.table_key if s else None)
        self.table_combo.setEnabled(len(keys) > 1 and not self.busy)
        if s is None:
            self.concept_list.clear()
            self._rebuild_dag()
            return
        cols, model = s.categorical_columns(), s.model
        checked = (model.concepts if model is not None
                   else [c for c in self._checked_concepts() if c in cols] or s.default_concepts())
        self.concept_list.blockSignals(True)
        self.concept_list.clear()
        for col in cols:
            item = QListWidgetItem(col)
            item.setData(Qt.ItemDataRole.UserRole, col)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if col in checked
                               else Qt.CheckState.Unchecked)
            item.setToolTip(f"{len(s.labels(col))} labels: {', '.join(s.labels(col)[:12])}")
            self.concept_list.addItem(item)
        self.concept_list.blockSignals(False)
        parents = self.parents()
        if model is not None:
            parents = {c: [p for p, ch in model.edges if ch == c] for c in model.concepts}
        self._rebuild_dag(parents=parents)
        set_items(self.domains_from, cols, default=s.guess_column("cell_type"))
        if model is not None and model.is_trained and not self.busy:
            self.message(f"Model ready: {model!r}")

    def _on_table_changed(self, key: str) -> None:
        if self.source_layer is not None and key and not (self.state
                                                          and key == self.state.table_key):
            self.use_table(key)

    def _checked_concepts(self) -> list[str]:
        items = (self.concept_list.item(i) for i in range(self.concept_list.count()))
        return [it.data(Qt.ItemDataRole.UserRole) for it in items
                if it.checkState() == Qt.CheckState.Checked]

    def set_concepts(self, concepts: list[str]) -> None:
        """Tick exactly these concept columns (as a user would)."""
        for i in range(self.concept_list.count()):
            item = self.concept_list.item(i)
            want = item.data(Qt.ItemDataRole.UserRole) in concepts
            item.setCheckState(Qt.CheckState.Checked if want else Qt.CheckState.Unchecked)

    # -- DAG grid ----------------------------------------------------------------------------
    def _rebuild_dag(self, *args: Any, parents: dict[str, list[str]] | None = None) -> None:
        concepts = self._checked_concepts()
        self.dag_table.rebuild(concepts, parents if parents is not None else self.parents())
        self.dag_message.setText("" if concepts else "Tick at least one concept above.")
        self._show_undirected()

    def parents(self) -> dict[str, list[str]]:
        """``{child: [parents]}`` as ticked."""
        return self.dag_table.parents()

    def edges(self) -> list[tuple[str, str]]:
        return train.edges_from_parents(self.parents())

    def set_parent(self, child: str, parent: str, on: bool = True) -> bool:
        """Tick or untick ``parent -> child`` as a user would; returns whether it holds."""
        return self.dag_table.set_parent(child, parent, on)

    def _on_refused(self, text: str) -> None:
        self.dag_message.setText(text)
        self.dag_message.setStyleSheet(ERROR_STYLE)
        self.message(text, error=True)
        self._show_undirected()

    def _on_ticked(self) -> None:
        self.dag_message.setText("")
        self._show_undirected()

    # -- causal graph assistant ------------------------------------------------------------------
    def suggest_graph(self) -> None:
        """Propose parents from the labels (on a worker thread) and fill the ticks."""
        request = graph.SuggestRequest(self._checked_concepts())
        self.submit(lambda: graph.suggest_job(self.state, request), self._on_suggested)

    def _on_suggested(self, result: graph.SuggestResult) -> None:
        if self.state is None or not self.accept(result, self._checked_concepts()):
            return
        self.dag_table.set_undirected(result.undirected)
        self._rebuild_dag(parents=result.parents)
        self.dag_plot.show_graph(result.suggestion)
        self.dag_plot.setVisible(True)
        self.message(result.message)

    def _show_undirected(self) -> None:
        pending, text = self.undirected()
        self.suggest_label.setText(text)
        self.suggest_label.setStyleSheet(f"color: {_UNDIRECTED_TEXT};" if pending else OK_STYLE)

    # -- domains -----------------------------------------------------------------------------
    def derive_domains(self) -> None:
        request = domains.DomainsRequest(self.domains_n.value(),
                                         self.domains_from.currentText() or None)
        self.submit(lambda: domains.domains_job(self.state, request), self._on_domains)

    def _on_domains(self, result: domains.DomainsResult) -> None:
        s, layer, key = self.state, self.source_layer, result.column
        if layer is not None and s is not None:
            color_layer_by_labels(layer, s, key)
        keep = [c for c in self._checked_concepts() if c != key]
        s.mark_obs_changed(key)  # the widgets refresh (here, at once: the GUI thread)
        self.set_concepts([*keep, key])
        self.message(result.message)

    # -- training ----------------------------------------------------------------------------
    def start_training(self) -> None:
        request = self.settings.request(self._checked_concepts(), self.parents())
        self.loss_plot.clear()
        self.submit(lambda: train.train_job(self.state, request), self._on_trained,
                    self._on_epoch)

    def _on_epoch(self, p: Progress) -> None:
        if p.data is not None:
            self.loss_plot.add(p.data.epoch, *train.epoch_losses(p.data.losses,
                                                                 p.data.val_losses))

    def _on_trained(self, result: train.TrainResult) -> None:
        self.show_loss_curve()  # the model's own record, labelled by what it selected on
        self.message(result.message)

    def _set_busy(self, busy: bool) -> None:
        for w in (self.train_btn, self.derive_btn, self.save_btn, self.load_btn,
                  self.layer_combo, self.concept_list, self.dag_table, self.suggest_btn,
                  self.settings.native):
            w.setEnabled(not busy)
        self.cancel_btn.setEnabled(busy)

    # -- save / load ---------------------------------------------------------------------------
    def save_model(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save CausCell model (a folder)",
                                                  "causcell_model")
        if path:
            self._file_action(train.save_model, path)

    def load_model(self, path: str | None = None, device: str | None = None) -> None:
        if path is None:
            path = QFileDialog.getExistingDirectory(self, "Load CausCell model folder")
        if path and self._file_action(train.load_model, path, device):
            self.show_loss_curve()

    def show_loss_curve(self) -> None:
        """Draw the state's model's history (train and validation of the same loss)."""
        model = self.state.model if self.state is not None else None
        self.loss_plot.set_curve(*train.loss_curve(model),
                                 labels=train.loss_labels(train.selected_by(model)))

    def _file_action(self, action: Any, path: str, *args: Any) -> bool:
        if self.state is None:
            self.message("Open the data the model was trained on first.", error=True)
            return False
        try:
            self.message(action(self.state, path, *args))
        except USER_ERRORS as err:
            self.message(describe_error(err), error=True)
            return False
        return True
