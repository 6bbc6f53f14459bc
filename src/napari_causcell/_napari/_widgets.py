"""Dock widgets: Train, Intervene, Overlay.

They only collect inputs, call :class:`~napari_causcell.session.CausCellSession` (itself a thin
layer over the public API) on a worker thread, and show the results. The three widgets share
one session per dataset, so a model trained in Train is the one Intervene uses, and every
intervention kept by Intervene is listed in Overlay.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtGui import QColor, QImage, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._constants import DEFAULT_STEPS
from .._model import SELECT_LABELS, validation_loss
from ..data import DAGError, DataError
from ..session import MODEL_SIZES, CausCellSession, Overlay
from ._layers import (
    OVERLAY_KEY,
    color_layer_by_labels,
    data_layers,
    layer_rows,
    point_size,
    session_for,
    shapes_to_tissue,
    world_to_tissue,
)

if TYPE_CHECKING:
    import napari

_ERROR_STYLE = "color: #ff6b6b;"
_OK_STYLE = "color: #9fd49f;"


class _Bridge(QObject):
    """Carries session notifications (from any thread) to the GUI thread."""

    changed = Signal(str)


def _devices() -> list[str]:
    import torch

    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def _set_items(combo: QComboBox, items: list[str], keep: bool = True,
               default: str | None = None) -> None:
    current = combo.currentText() if keep else None
    combo.blockSignals(True)
    combo.clear()
    combo.addItems([str(i) for i in items])
    for want in (current, default):
        if want and want in items:
            combo.setCurrentText(want)
            break
    combo.blockSignals(False)


class _CausCellWidget(QWidget):
    """Data-layer choice, status line, session wiring and worker handling."""

    title = "CausCell"

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self._session: CausCellSession | None = None
        self._bridge = _Bridge()
        self._bridge.changed.connect(self._on_session_changed)
        self._layers: list[Any] = []

        def listener(what: str, bridge: _Bridge = self._bridge) -> None:
            try:
                bridge.changed.emit(what)
            except RuntimeError:  # the widget was closed
                pass

        self._listener = listener

        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("Layer whose cells (SpatialData / AnnData) are used")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.form = QFormLayout()
        self.form.addRow("Cells layer", self.layer_combo)
        outer = QVBoxLayout(self)
        outer.addLayout(self.form)
        self.body = QVBoxLayout()
        outer.addLayout(self.body)
        outer.addWidget(self.status)
        outer.addStretch(1)

        self.layer_combo.currentIndexChanged.connect(self._on_layer_changed)
        ev = self.viewer.layers.events
        ev.inserted.connect(self._refresh_layers)
        ev.removed.connect(self._refresh_layers)
        ev.reordered.connect(self._refresh_layers)

    # -- layers & session ------------------------------------------------------------------
    def _refresh_layers(self, event: Any = None) -> None:
        current = self.source_layer
        self._layers = data_layers(self.viewer)
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems([layer.name for layer in self._layers])
        if current in self._layers:
            self.layer_combo.setCurrentIndex(self._layers.index(current))
        elif self._layers:
            active = self.viewer.layers.selection.active
            idx = self._layers.index(active) if active in self._layers else len(self._layers) - 1
            self.layer_combo.setCurrentIndex(idx)
        self.layer_combo.blockSignals(False)
        if self.source_layer is not current:
            self._on_layer_changed()

    @property
    def source_layer(self) -> Any:
        i = self.layer_combo.currentIndex()
        return self._layers[i] if 0 <= i < len(self._layers) else None

    @property
    def session(self) -> CausCellSession | None:
        return self._session

    def _on_layer_changed(self, *args: Any) -> None:
        layer = self.source_layer
        new = None
        if layer is not None:
            try:
                new = session_for(layer)
            except (DataError, TypeError) as err:
                self.message(str(err), error=True)
        if new is not self._session:
            if self._session is not None:
                self._session.unsubscribe(self._listener)
            self._session = new
            if new is not None:
                new.subscribe(self._listener)
        self.refresh()

    def _on_session_changed(self, what: str) -> None:
        self.refresh()

    def refresh(self) -> None:  # pragma: no cover - overridden
        pass

    # -- messages and workers ------------------------------------------------------------
    def message(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(_ERROR_STYLE if error else _OK_STYLE)
        if error:
            from napari.utils.notifications import show_warning

            show_warning(f"CausCell {self.title}: {text}")

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def _start(self, func: Any, *args: Any, progress: dict | None = None,
               returned: Any = None, yielded: Any = None, **kwargs: Any) -> Any:
        from napari.qt.threading import create_worker

        worker = create_worker(func, *args, _start_thread=False,
                               _progress=True if progress is None else progress, **kwargs)
        if returned is not None:
            worker.returned.connect(returned)
        if yielded is not None:
            worker.yielded.connect(yielded)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set_busy(True)
        worker.start()
        return worker

    def _start_reporting(self, desc: str, func: Any, *args: Any, returned: Any = None,
                         **kwargs: Any) -> Any:
        """Run ``func(*args, progress=report, **kwargs)`` on a worker, with a napari progress
        bar that follows ``report(fraction)``.

        The bar lives in the main thread: the worker only stores the fraction, and a timer
        moves the bar (Qt widgets must not be touched from a worker thread).
        """
        from napari.utils import progress

        state = {"fraction": 0.0}
        pbar = progress(total=100, desc=desc)
        timer = QTimer(self)
        timer.setInterval(100)

        def poll() -> None:
            done = min(100, int(state["fraction"] * 100))
            if done > pbar.n:
                pbar.update(done - pbar.n)

        def report(fraction: float) -> None:
            state["fraction"] = float(fraction)

        def close() -> None:
            timer.stop()
            poll()
            pbar.close()

        timer.timeout.connect(poll)
        timer.start()
        job = functools.partial(func, progress=report)
        worker = self._start(job, *args, progress=False, returned=returned, **kwargs)
        worker.finished.connect(close)
        self.pbar = pbar
        return worker

    def _on_error(self, err: BaseException) -> None:
        self.message(f"{type(err).__name__}: {err}", error=True)

    def _on_finished(self) -> None:
        self.worker = None
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        pass

    def _compact(self) -> None:
        """Let long labels (gene, intervention names) not widen the dock."""
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        self.setMinimumWidth(320)


# =========================================================================================
class _LossPlot(QWidget):
    """Live training curves (matplotlib in Qt)."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.0), dpi=90, facecolor="#262930")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setFixedHeight(180)
        self.ax = self.figure.add_subplot(111)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas)
        self.clear()

    def clear(self) -> None:
        self.epochs: list[int] = []
        self.train: list[float] = []
        self.val: list[float] = []
        self._draw()

    def add(self, epoch: int, train: float, val: float | None) -> None:
        self.epochs.append(epoch)
        self.train.append(train)
        self.val.append(np.nan if val is None else val)
        self._draw()

    def _draw(self) -> None:
        ax = self.ax
        ax.clear()
        ax.set_facecolor("#262930")
        for spine in ax.spines.values():
            spine.set_color("#aaaaaa")
        ax.tick_params(colors="#dddddd", labelsize=7)
        if self.epochs:
            ax.plot(self.epochs, self.train, "o-", ms=3, color="#5fb3ff", label="train loss")
            if np.isfinite(self.val).any():
                ax.plot(self.epochs, self.val, "o-", ms=3, color="#ffb45f",
                        label=SELECT_LABELS["recon"])
            ax.legend(fontsize=7, facecolor="#262930", labelcolor="#dddddd", frameon=False)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch", color="#dddddd", fontsize=8, labelpad=1)
        ax.set_ylabel("loss", color="#dddddd", fontsize=8)
        self.figure.subplots_adjust(left=0.14, right=0.97, top=0.95, bottom=0.22)
        self.canvas.draw_idle()


_UNDIRECTED_COLOR = "#7a5c00"  # grid cells of an undirected suggested edge
_UNDIRECTED_TEXT = "#ffb45f"


class _DagPlot(QWidget):
    """The suggested causal graph (pl.dag in Qt)."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.2), dpi=90)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setFixedHeight(200)
        self.ax = self.figure.add_subplot(111)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas)

    def show_graph(self, suggestion: Any) -> None:
        from .. import pl

        self.ax.clear()
        pl.dag(suggestion, ax=self.ax, title="")
        self.figure.subplots_adjust(left=0.02, right=0.98, top=0.98, bottom=0.12)
        self.canvas.draw_idle()


class TrainWidget(_CausCellWidget):
    """Concepts, DAG, epochs, device and seed -> a trained CausCell model."""

    title = "Train"

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__(napari_viewer)
        self.table_combo = QComboBox()
        self.table_combo.setToolTip("Table of the SpatialData holding expression and labels")
        self.form.addRow("Table", self.table_combo)

        concepts_box = QGroupBox("Concepts (observed labels)")
        lay = QVBoxLayout(concepts_box)
        self.concept_list = QListWidget()
        self.concept_list.setMinimumHeight(70)
        self.concept_list.setMaximumHeight(110)
        lay.addWidget(self.concept_list)
        self.body.addWidget(concepts_box)

        dag_box = QGroupBox("Causal graph: tick each concept's parents (row <- column)")
        lay = QVBoxLayout(dag_box)
        self.dag_table = QTableWidget()
        self.dag_table.setMinimumHeight(125)
        self.dag_table.setMaximumHeight(170)
        self.dag_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        lay.addWidget(self.dag_table)
        self.dag_message = QLabel("")
        self.dag_message.setWordWrap(True)
        lay.addWidget(self.dag_message)
        self.suggest_btn = QPushButton("Suggest graph")
        self.suggest_btn.setToolTip(
            "Propose the parents from the labels (PC algorithm, chi-square tests; time/batch "
            "columns first, then domain). Undirected edges are marked for you to decide.")
        lay.addWidget(self.suggest_btn)
        self.suggest_label = QLabel("")
        self.suggest_label.setWordWrap(True)
        self.suggest_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.suggest_label)
        self.dag_plot = _DagPlot()
        self.dag_plot.setVisible(False)
        lay.addWidget(self.dag_plot)
        self.suggestion: Any = None
        self._undirected: list[tuple[str, str]] = []
        self.body.addWidget(dag_box)

        dom_box = QGroupBox("Spatial domains (if the data have none)")
        lay = QHBoxLayout(dom_box)
        self.domains_n = QSpinBox()
        self.domains_n.setRange(2, 50)
        self.domains_n.setValue(6)
        self.domains_from = QComboBox()
        self.domains_from.setToolTip("Cell-type column whose neighbourhood mix defines domains")
        self.derive_btn = QPushButton("Derive domains")
        lay.addWidget(QLabel("n"))
        lay.addWidget(self.domains_n)
        lay.addWidget(QLabel("from"))
        lay.addWidget(self.domains_from, 1)
        lay.addWidget(self.derive_btn)
        self.body.addWidget(dom_box)

        opts = QFormLayout()
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 100000)
        self.epochs.setValue(100)
        self.device = QComboBox()
        self.device.addItems(_devices())
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.size = QComboBox()
        self.size.addItems(list(MODEL_SIZES))
        opts.addRow("Epochs", self.epochs)
        opts.addRow("Device", self.device)
        opts.addRow("Seed", self.seed)
        opts.addRow("Model size", self.size)
        self.body.addLayout(opts)

        row = QHBoxLayout()
        self.train_btn = QPushButton("Train")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        row.addWidget(self.train_btn)
        row.addWidget(self.cancel_btn)
        self.body.addLayout(row)
        self.loss_plot = _LossPlot()
        self.body.addWidget(self.loss_plot)
        row = QHBoxLayout()
        self.save_btn = QPushButton("Save model...")
        self.load_btn = QPushButton("Load model...")
        row.addWidget(self.save_btn)
        row.addWidget(self.load_btn)
        self.body.addLayout(row)

        self.table_combo.currentTextChanged.connect(self._on_table_changed)
        self.concept_list.itemChanged.connect(self._rebuild_dag)
        self.dag_table.itemChanged.connect(self._on_dag_tick)
        self.derive_btn.clicked.connect(self.derive_domains)
        self.suggest_btn.clicked.connect(self.suggest_graph)
        self.train_btn.clicked.connect(self.start_training)
        self.cancel_btn.clicked.connect(self.cancel)
        self.save_btn.clicked.connect(lambda: self.save_model())
        self.load_btn.clicked.connect(lambda: self.load_model())
        self._concepts_shown: list[str] = []
        self._compact()
        self._refresh_layers()

    # -- state from the session ------------------------------------------------------------
    def refresh(self) -> None:
        s = self.session
        keys = s.table_keys() if s is not None else []
        _set_items(self.table_combo, keys, default=s.table_key if s else None)
        self.table_combo.setEnabled(len(keys) > 1 and not self.busy)
        if s is None:
            self.concept_list.clear()
            self._rebuild_dag()
            return
        cols = s.categorical_columns()
        model = s.model
        checked = (model.concepts if model is not None
                   else [c for c in self._checked_concepts() if c in cols] or s.default_concepts())
        self.concept_list.blockSignals(True)
        self.concept_list.clear()
        for col in cols:
            item = QListWidgetItem(f"{col}")
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
        _set_items(self.domains_from, cols, default=s.guess_column("cell_type"))
        if model is not None and model.is_trained and not self.busy:
            self.message(f"Model ready: {model!r}")

    def _on_table_changed(self, key: str) -> None:
        layer = self.source_layer
        if layer is None or not key or (self.session and key == self.session.table_key):
            return
        try:
            new = session_for(layer, key)
        except (DataError, TypeError) as err:
            self.message(str(err), error=True)
            return
        if self._session is not None:
            self._session.unsubscribe(self._listener)
        self._session = new
        new.subscribe(self._listener)
        self.refresh()

    def _checked_concepts(self) -> list[str]:
        out = []
        for i in range(self.concept_list.count()):
            item = self.concept_list.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(item.data(Qt.ItemDataRole.UserRole))
        return out

    def set_concepts(self, concepts: list[str]) -> None:
        """Tick exactly these concept columns (as a user would)."""
        for i in range(self.concept_list.count()):
            item = self.concept_list.item(i)
            want = item.data(Qt.ItemDataRole.UserRole) in concepts
            item.setCheckState(Qt.CheckState.Checked if want else Qt.CheckState.Unchecked)

    # -- DAG grid ----------------------------------------------------------------------------
    def _rebuild_dag(self, *args: Any, parents: dict[str, list[str]] | None = None) -> None:
        keep = parents if parents is not None else self.parents()
        concepts = self._checked_concepts()
        self._concepts_shown = concepts
        t = self.dag_table
        t.blockSignals(True)
        t.clear()
        t.setRowCount(len(concepts))
        t.setColumnCount(len(concepts))
        t.setVerticalHeaderLabels([f"{c} <-" for c in concepts])
        t.setHorizontalHeaderLabels(concepts)
        for i, child in enumerate(concepts):
            for j, parent in enumerate(concepts):
                item = QTableWidgetItem("")
                if i == j:
                    item.setFlags(Qt.ItemFlag.NoItemFlags)
                    item.setBackground(QColor("#3a3d44"))
                else:
                    item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                    on = parent in keep.get(child, [])
                    item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                    item.setToolTip(f"{parent} -> {child}")
                t.setItem(i, j, item)
        self._mark_undirected()
        t.blockSignals(False)
        self.dag_message.setText("" if concepts else "Tick at least one concept above.")
        self._show_undirected()

    def parents(self) -> dict[str, list[str]]:
        """``{child: [parents]}`` as ticked."""
        t, names = self.dag_table, self._concepts_shown
        out: dict[str, list[str]] = {c: [] for c in names}
        for i, child in enumerate(names):
            for j, parent in enumerate(names):
                item = t.item(i, j)
                if i != j and item is not None and item.checkState() == Qt.CheckState.Checked:
                    out[child].append(parent)
        return out

    def edges(self) -> list[tuple[str, str]]:
        return CausCellSession.edges_from_parents(self.parents())

    def set_parent(self, child: str, parent: str, on: bool = True) -> bool:
        """Tick or untick ``parent -> child`` as a user would; returns whether it holds."""
        names = self._concepts_shown
        item = self.dag_table.item(names.index(child), names.index(parent))
        item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        return item.checkState() == (Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _on_dag_tick(self, item: QTableWidgetItem) -> None:
        self._show_undirected()
        if item.checkState() != Qt.CheckState.Checked:
            self.dag_message.setText("")
            return
        try:
            CausCellSession.check_dag(self._concepts_shown, self.edges())
        except DAGError as err:
            self.dag_table.blockSignals(True)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.dag_table.blockSignals(False)
            names = self._concepts_shown
            edge = f"{names[item.column()]} -> {names[item.row()]}"
            self.dag_message.setText(f"Refused {edge}: {err}")
            self.dag_message.setStyleSheet(_ERROR_STYLE)
            self.message(f"Refused {edge}: {err}", error=True)
            return
        self.dag_message.setText("")

    # -- causal graph assistant ------------------------------------------------------------------
    def suggest_graph(self) -> None:
        """Propose parents from the labels (on a worker thread) and fill the ticks."""
        s = self.session
        if s is None:
            self.message("Open data first (File > Open Sample > CausCell).", error=True)
            return
        if self.busy:
            self.message("Busy: wait for the running job or cancel it.", error=True)
            return
        concepts = self._checked_concepts()
        if len(concepts) < 2:
            self.message("Tick at least two concepts to suggest a graph.", error=True)
            return
        self.message(f"Suggesting a graph over {concepts} from the labels...")
        self._start(s.suggest_dag, concepts, progress={"desc": "CausCell: suggest graph"},
                    returned=self._on_suggested)

    def _on_suggested(self, suggestion: Any) -> None:
        s = self.session
        if s is None or list(suggestion.concepts) != self._checked_concepts():
            self.message("The concepts changed while suggesting; suggest again.", error=True)
            return
        parents, undirected = s.suggestion_ticks(suggestion)
        self.suggestion, self._undirected = suggestion, list(undirected)
        self._rebuild_dag(parents=parents)
        self.dag_plot.show_graph(suggestion)
        self.dag_plot.setVisible(True)
        self._show_undirected()
        self.message(s.suggestion_message(suggestion))

    def _mark_undirected(self) -> None:
        """Colour both grid cells of every suggested undirected edge, with a tooltip."""
        names = self._concepts_shown
        for a, b in self._undirected:
            if a not in names or b not in names:
                continue
            tip = (f"undirected {a} -- {b}: the labels cannot tell the direction; tick "
                   f"{a} -> {b} or {b} -> {a} (or neither)")
            for child, parent in ((b, a), (a, b)):
                item = self.dag_table.item(names.index(child), names.index(parent))
                item.setBackground(QColor(_UNDIRECTED_COLOR))
                item.setToolTip(tip)

    def undirected_pending(self) -> list[tuple[str, str]]:
        """Suggested undirected edges for which neither direction is ticked yet."""
        return CausCellSession.undirected_pending(self._undirected, self.parents())

    def _show_undirected(self) -> None:
        if self.suggestion is None:
            self.suggest_label.setText("")
            return
        pending = self.undirected_pending()
        if pending:
            pairs = ", ".join(f"{a} -- {b}" for a, b in pending)
            self.suggest_label.setText(f"Undirected (decide, marked in the grid): {pairs}")
            self.suggest_label.setStyleSheet(f"color: {_UNDIRECTED_TEXT};")
        else:
            self.suggest_label.setText("Every suggested edge is oriented.")
            self.suggest_label.setStyleSheet(_OK_STYLE)

    # -- domains -----------------------------------------------------------------------------
    def derive_domains(self) -> None:
        s = self.session
        if s is None:
            self.message("Open data first (File > Open Sample > CausCell).", error=True)
            return
        n, cluster = self.domains_n.value(), self.domains_from.currentText() or None
        self.message(f"Deriving {n} spatial domains from {cluster} neighbourhoods...")
        self._start(s.derive_domains, n, cluster,
                    progress={"desc": "CausCell: spatial domains"},
                    returned=self._on_domains)

    def _on_domains(self, key: str) -> None:
        s = self.session
        layer = self.source_layer
        if layer is not None and s is not None:
            color_layer_by_labels(layer, s, key)
        keep = [c for c in self._checked_concepts() if c != key]
        s.notify("obs")
        self.set_concepts([*keep, key])
        self.message(f"Derived domains in column {key!r} ({', '.join(s.labels(key))}); "
                     "the cells are coloured by them.")

    # -- training ----------------------------------------------------------------------------
    def start_training(self) -> None:
        s = self.session
        if s is None:
            self.message("Open data first (File > Open Sample > CausCell).", error=True)
            return
        if self.busy:
            self.message("Busy: wait for the running job or cancel it.", error=True)
            return
        concepts = self._checked_concepts()
        if not concepts:
            self.message("Tick at least one concept column.", error=True)
            return
        try:
            edges = CausCellSession.check_dag(concepts, self.edges())
        except DAGError as err:
            self.message(str(err), error=True)
            return
        device = None if self.device.currentText() == "auto" else self.device.currentText()
        epochs = self.epochs.value()
        self._cancelled = False
        self.loss_plot.clear()
        dag = ", ".join(f"{a}->{b}" for a, b in edges) or "none"
        self.message(f"Training on {s.n_cells} cells: concepts {concepts}, DAG {dag}...")
        self._start(self._train_job, s, concepts, edges, self.seed.value(), device,
                    MODEL_SIZES[self.size.currentText()], epochs,
                    progress={"total": epochs, "desc": "CausCell training"},
                    yielded=self._on_epoch, returned=self._on_trained)

    def _train_job(self, s, concepts, edges, seed, device, size, epochs):
        s.build_model(concepts, edges, seed=seed, device=device, **size)
        if self._cancelled:
            s.request_stop()
        history = yield from s.train_iter(epochs)
        return history

    def cancel(self) -> None:
        """Stop training after the current step; the best weights so far are kept."""
        self._cancelled = True
        if self.session is not None:
            self.session.request_stop()
        self.message("Stopping after the current step...")

    def _on_epoch(self, p: Any) -> None:
        if self._cancelled and self.session is not None:
            self.session.request_stop()  # a stop asked for before the model existed
        val = validation_loss(p.val_losses)
        self.loss_plot.add(p.epoch, p.losses.get("total", np.nan), val)
        text = f"Epoch {p.epoch}/{p.max_epochs}: loss {p.losses.get('total', np.nan):.3f}"
        if val is not None:
            text += f", validation {val:.3f}"
        self.message(text + f" ({p.elapsed:.0f} s)")

    def _on_trained(self, history: Any) -> None:
        s = self.session
        model = s.model
        reason = model.train_params.get("stop_reason", "")
        self.message(f"Trained {len(history)} epochs ({reason}); the model is ready for "
                     "Intervene.")
        s.notify("trained")

    def _set_busy(self, busy: bool) -> None:
        for w in (self.train_btn, self.derive_btn, self.save_btn, self.load_btn,
                  self.layer_combo, self.concept_list, self.dag_table, self.suggest_btn):
            w.setEnabled(not busy)
        self.cancel_btn.setEnabled(busy)

    # -- save / load ---------------------------------------------------------------------------
    def save_model(self, path: str | None = None) -> None:
        s = self.session
        if s is None or s.model is None:
            self.message("No model to save: train one first.", error=True)
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save CausCell model (a folder)",
                                                  "causcell_model")
            if not path:
                return
        try:
            out = s.save_model(path)
        except (OSError, ValueError) as err:
            self.message(f"Could not save: {err}", error=True)
            return
        self.message(f"Saved the model to {out}")

    def load_model(self, path: str | None = None, device: str | None = None) -> None:
        s = self.session
        if s is None:
            self.message("Open the data the model was trained on first.", error=True)
            return
        if path is None:
            path = QFileDialog.getExistingDirectory(self, "Load CausCell model folder")
            if not path:
                return
        try:
            model = s.load_model(path, device=device)
        except Exception as err:  # noqa: BLE001 - any load failure is shown to the user
            self.message(f"Could not load {path}: {err}", error=True)
            return
        self.loss_plot.clear()
        for rec in model.history:
            val = validation_loss(rec, model.train_params.get("select", "recon+concept"),
                                  prefix="val_")
            self.loss_plot.add(rec["epoch"], rec.get("train_total", np.nan), val)
        self.message(f"Loaded {model!r}")


# =========================================================================================
_CELL_MODES = [
    ("All cells", "all"),
    ("A cell type", "cell_type"),
    ("A domain", "domain"),
    ("Cells with a label of...", "label"),
    ("Selected points", "indices"),
    ("Inside drawn shapes", "polygon"),
]


_ALL_OTHERS = "every other label"


class InterveneWidget(_CausCellWidget):
    """do(concept = value) on chosen cells -> a counterfactual kept in the data."""

    title = "Intervene"

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__(napari_viewer)
        what = QGroupBox("Intervention")
        f = QFormLayout(what)
        self.concept_combo = QComboBox()
        self.concept_hint = QLabel("")
        self.target_combo = QComboBox()
        pick = QHBoxLayout()
        self.pick_btn = QPushButton("Pick on tissue")
        self.pick_btn.setCheckable(True)
        self.pick_btn.setToolTip("Click a cell: the target is its label (e.g. its domain)")
        self.shape_target_btn = QPushButton("From drawn shape")
        self.shape_target_btn.setToolTip("The target is the most common label inside the shape")
        pick.addWidget(self.pick_btn)
        pick.addWidget(self.shape_target_btn)
        f.addRow("Concept", self.concept_combo)
        f.addRow("", self.concept_hint)
        f.addRow("Set it to", self.target_combo)
        f.addRow("", pick)
        self.body.addWidget(what)

        cells = QGroupBox("Which cells")
        f = QFormLayout(cells)
        self.mode_combo = QComboBox()
        for text, _ in _CELL_MODES:
            self.mode_combo.addItem(text)
        self.column_combo = QComboBox()
        self.label_combo = QComboBox()
        shapes_row = QHBoxLayout()
        self.shapes_combo = QComboBox()
        self.draw_btn = QPushButton("Draw...")
        self.draw_btn.setToolTip("Add a Shapes layer in polygon mode to draw around cells")
        shapes_row.addWidget(self.shapes_combo, 1)
        shapes_row.addWidget(self.draw_btn)
        f.addRow("Cells", self.mode_combo)
        f.addRow("Column", self.column_combo)
        f.addRow("Label", self.label_combo)
        f.addRow("Shapes", shapes_row)
        self.body.addWidget(cells)

        gen = QGroupBox("Generation")
        f = QFormLayout(gen)
        self.sampler = QComboBox()
        self.sampler.addItems(["mean", "ddim", "ddpm"])
        self.steps = QSpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setValue(DEFAULT_STEPS)
        self.gen_seed = QSpinBox()
        self.gen_seed.setRange(0, 2**31 - 1)
        self.donor = QComboBox()
        self.donor.addItems(["random", "mean"])
        f.addRow("Sampler", self.sampler)
        f.addRow("Steps", self.steps)
        f.addRow("Seed", self.gen_seed)
        f.addRow("Donor token", self.donor)
        self.body.addWidget(gen)

        self.run_btn = QPushButton("Run intervention")
        self.body.addWidget(self.run_btn)
        self.body.addWidget(QLabel("Kept interventions (tables in the SpatialData):"))
        self.results = QListWidget()
        self.results.setMaximumHeight(110)
        self.body.addWidget(self.results)

        trends = QGroupBox("Trends along the concept (tl.age_trends)")
        f = QFormLayout(trends)
        self.trend_source = QComboBox()
        self.trend_source.setToolTip("Cells with this label are moved to the target label(s)")
        self.trend_target = QComboBox()
        f.addRow("From cells at", self.trend_source)
        f.addRow("To", self.trend_target)
        self.trends_btn = QPushButton("Run trends")
        self.trends_btn.setToolTip("Counterfactuals for the source cells, then per cell type x "
                                   "domain and gene: mean change, t-test, BH (off the UI thread)")
        f.addRow(self.trends_btn)
        self.trends_table = QTableWidget(0, 7)
        self.trends_table.setHorizontalHeaderLabels(["to", "group", "gene", "change",
                                                     "interval", "padj", "replicates"])
        self.trends_table.setToolTip("change: mean paired change (log-normalised); interval: "
                                     "its 95 % interval; padj: BH q-value; replicates: the "
                                     "units of replication ('1 donor/age': mouse and age "
                                     "confounded, read as an effect size)")
        self.trends_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.trends_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.trends_table.setMaximumHeight(220)
        f.addRow(self.trends_table)
        self.body.addWidget(trends)
        self.trends_result: pd.DataFrame | None = None

        self.concept_combo.currentTextChanged.connect(self._on_concept)
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self.column_combo.currentTextChanged.connect(self._on_column)
        self.pick_btn.toggled.connect(self._on_pick_toggled)
        self.shape_target_btn.clicked.connect(self.target_from_shapes)
        self.draw_btn.clicked.connect(self.add_shapes_layer)
        self.run_btn.clicked.connect(self.run)
        self.trends_btn.clicked.connect(self.run_trends)
        ev = self.viewer.layers.events
        ev.inserted.connect(self._refresh_shapes)
        ev.removed.connect(self._refresh_shapes)
        self._compact()
        self._refresh_layers()
        self._refresh_shapes()

    # -- state ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        s = self.session
        model = s.model if s is not None else None
        concepts = model.concepts if model is not None else []
        time, dom = (s.guess_column("time"), s.guess_column("domain")) if s else (None, None)
        _set_items(self.concept_combo, concepts, default=time if time in concepts else None)
        self._on_concept(self.concept_combo.currentText())
        cols = s.categorical_columns() if s is not None else []
        _set_items(self.column_combo, cols)
        self._on_mode()
        self.results.clear()
        if s is not None:
            for iv in s.interventions.values():
                self.results.addItem(f"{iv.name}  [{iv.selection.n_cells} cells -> {iv.key}]")
        ready = model is not None and model.is_trained
        self.run_btn.setEnabled(ready and not self.busy)
        self.trends_btn.setEnabled(ready and not self.busy)
        if s is not None and not ready and not self.busy:
            self.status.setText("Train a model (Train widget) or load one first.")
            self.status.setStyleSheet("")

    def _on_concept(self, concept: str) -> None:
        s = self.session
        if s is None or s.model is None or not concept:
            self.target_combo.clear()
            self.trend_source.clear()
            self.trend_target.clear()
            self.concept_hint.setText("")
            return
        labels = list(s.model.concept_space.categories[concept])
        _set_items(self.target_combo, labels, default=labels[-1] if labels else None)
        _set_items(self.trend_source, labels, default=labels[0] if labels else None)
        _set_items(self.trend_target, [_ALL_OTHERS] + labels, default=_ALL_OTHERS)
        role = ("time / age" if concept == s.guess_column("time")
                else "locus (spatial domain)" if concept == s.guess_column("domain")
                else "")
        self.concept_hint.setText(role)

    def _mode(self) -> str:
        return _CELL_MODES[self.mode_combo.currentIndex()][1]

    def set_mode(self, mode: str) -> None:
        self.mode_combo.setCurrentIndex([m for _, m in _CELL_MODES].index(mode))

    def _on_mode(self, *args: Any) -> None:
        mode, s = self._mode(), self.session
        is_label = mode in ("cell_type", "domain", "label")
        self.column_combo.setEnabled(is_label)
        self.label_combo.setEnabled(is_label)
        self.shapes_combo.setEnabled(mode == "polygon")
        if s is not None and mode in ("cell_type", "domain"):
            guess = s.guess_column(mode)
            if guess:
                self.column_combo.setCurrentText(guess)
        self._on_column(self.column_combo.currentText())

    def _on_column(self, column: str) -> None:
        s = self.session
        labels = s.labels(column) if s is not None and column in s.adata.obs else []
        _set_items(self.label_combo, labels)

    def _refresh_shapes(self, event: Any = None) -> None:
        from napari.layers import Shapes

        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Shapes)]
        _set_items(self.shapes_combo, names, default=names[-1] if names else None)

    def shapes_layer(self) -> Any:
        name = self.shapes_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def add_shapes_layer(self) -> Any:
        """A Shapes layer in polygon mode to draw around cells (or a target region)."""
        layer = self.viewer.add_shapes(name="CausCell region", face_color=[1, 1, 1, 0.15],
                                       edge_color="white", edge_width=4)
        layer.mode = "add_polygon"
        self._refresh_shapes()
        self.shapes_combo.setCurrentText(layer.name)
        self.message("Draw a polygon on the tissue (double-click closes it).")
        return layer

    # -- target from the tissue ---------------------------------------------------------------
    def _on_pick_toggled(self, on: bool) -> None:
        cbs = self.viewer.mouse_drag_callbacks
        if on:
            if self._pick_callback not in cbs:
                cbs.append(self._pick_callback)
            self.message("Click a cell on the tissue to take its label as the target.")
        elif self._pick_callback in cbs:
            cbs.remove(self._pick_callback)

    def _pick_callback(self, viewer: Any, event: Any) -> None:
        if getattr(event, "type", "mouse_press") != "mouse_press":
            return
        self.pick_target_at(event.position)
        self.pick_btn.setChecked(False)

    def pick_target_at(self, world_position: Any) -> str | None:
        """Target = the concept label of the cell under a world position (napari ``(y, x)``)."""
        s, layer, concept = self.session, self.source_layer, self.concept_combo.currentText()
        if s is None or layer is None or not concept:
            self.message("Train or load a model first.", error=True)
            return None
        if concept not in s.adata.obs:
            self.message(f"The data have no {concept!r} column.", error=True)
            return None
        xy = world_to_tissue(layer, np.asarray(world_position, float)[-2:])[0]
        label = s.label_at(xy, concept)
        self.target_combo.setCurrentText(label)
        self.message(f"Target from the tissue: {concept}={label} (cell at x={xy[0]:.0f}, "
                     f"y={xy[1]:.0f}).")
        return label

    def target_from_shapes(self) -> str | None:
        """Target = the most common concept label inside the drawn shape(s)."""
        s, layer, shapes = self.session, self.source_layer, self.shapes_layer()
        concept = self.concept_combo.currentText()
        if s is None or layer is None or not concept:
            self.message("Train or load a model first.", error=True)
            return None
        if shapes is None or len(shapes.data) == 0:
            self.message("Draw a shape first (Draw...).", error=True)
            return None
        try:
            label = s.majority_label(shapes_to_tissue(shapes, layer), concept)
        except DataError as err:
            self.message(str(err), error=True)
            return None
        self.target_combo.setCurrentText(label)
        self.message(f"Target from the drawn shape: {concept}={label} (most common label).")
        return label

    # -- run -----------------------------------------------------------------------------------
    def current_selection(self) -> Any:
        """The chosen cells as a :class:`~napari_causcell.session.Selection`."""
        s, mode = self.session, self._mode()
        if mode in ("cell_type", "domain", "label"):
            return s.select(mode, self.label_combo.currentText(),
                            column=self.column_combo.currentText() or None)
        if mode == "indices":
            rows: set[int] = set()
            for layer in self.viewer.layers:
                meta = layer.metadata or {}
                if layer is self.source_layer or meta.get(OVERLAY_KEY) == "A":
                    if getattr(layer, "selected_data", None):
                        r = layer_rows(layer, s)[sorted(layer.selected_data)]
                        rows |= {int(i) for i in r if i >= 0}
            return s.select("indices", sorted(rows))
        if mode == "polygon":
            shapes = self.shapes_layer()
            polys = shapes_to_tissue(shapes, self.source_layer) if shapes is not None else []
            return s.select("polygon", polygons=polys)
        return s.select("all")

    def run(self) -> None:
        s = self.session
        if s is None or s.model is None or not s.model.is_trained:
            self.message("Train a model (Train widget) or load one first.", error=True)
            return
        if self.busy:
            self.message("Busy: wait for the running intervention.", error=True)
            return
        concept, value = self.concept_combo.currentText(), self.target_combo.currentText()
        if not concept or not value:
            self.message("Choose a concept and a target value.", error=True)
            return
        try:
            selection = self.current_selection()
        except DataError as err:
            self.message(f"Refused: {err}", error=True)
            return
        do = {concept: value}
        name = s.intervention_name(do, selection)
        self.message(f"Generating {name} for {selection.n_cells} cells...")
        self._start_reporting(f"CausCell: {name}", s.compute_intervention, do, selection,
                              sampler=self.sampler.currentText(), steps=self.steps.value(),
                              seed=self.gen_seed.value(), donor=self.donor.currentText(),
                              returned=self._on_result)

    def _on_result(self, iv: Any) -> None:
        s = self.session
        s.add_intervention(iv)
        where = ("table" if hasattr(s.data, "tables") else "adata.uns['causcell']")
        self.message(f"Kept {iv.name} ({iv.selection.n_cells} cells) as {where} {iv.key!r}. "
                     "Show it with the Overlay widget.")

    # -- trends --------------------------------------------------------------------------------
    def run_trends(self) -> None:
        """``session.age_trends`` for the chosen concept, source and target(s), on a worker."""
        s = self.session
        if s is None or s.model is None or not s.model.is_trained:
            self.message("Train a model (Train widget) or load one first.", error=True)
            return
        if self.busy:
            self.message("Busy: wait for the running job.", error=True)
            return
        concept, source = self.concept_combo.currentText(), self.trend_source.currentText()
        target = self.trend_target.currentText()
        if not concept or not source or not target:
            self.message("Choose a concept and the source label.", error=True)
            return
        targets = None if target == _ALL_OTHERS else [target]
        if targets == [source]:
            self.message("Refused: the target equals the source.", error=True)
            return
        self.message(f"Computing trends {concept}: {source} -> {target}...")
        self._start_reporting(f"CausCell: trends from {concept}={source}", s.age_trends,
                              source, targets, concept=concept,
                              sampler=self.sampler.currentText(), steps=self.steps.value(),
                              seed=self.gen_seed.value(), donor=self.donor.currentText(),
                              returned=self._on_trends)

    def _on_trends(self, df: pd.DataFrame, n_rows: int = 30) -> None:
        """Show the largest significant changes (or the largest changes if none is)."""
        self.trends_result = df
        top = self.session.top_trends(df, n_rows)
        self.trends_table.setRowCount(len(top))
        for i, rec in enumerate(top.to_dict("records")):
            lo, hi = rec.get("ci_low", np.nan), rec.get("ci_high", np.nan)
            unit = str(rec.get("unit", ""))
            if rec.get("one_donor", False):
                unit += " (1 donor/age)"
            cells = [rec["target"], rec["group"], rec["gene"], f"{rec['mean_change']:+.3f}",
                     f"{lo:+.2f}..{hi:+.2f}" if np.isfinite(lo) else "",
                     f"{rec['padj']:.2g}", unit]
            for j, text in enumerate(cells):
                self.trends_table.setItem(i, j, QTableWidgetItem(str(text)))
        self.message(self.session.trends_message(df))

    def _set_busy(self, busy: bool) -> None:
        self.run_btn.setEnabled(not busy)
        self.trends_btn.setEnabled(not busy)
        self.layer_combo.setEnabled(not busy)


# =========================================================================================
class _ColorBar(QWidget):
    """A colour bar (continuous) or a legend (labels) for the overlay."""

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.bar = QLabel()
        self.bar.setFixedHeight(16)
        self.bar.setScaledContents(True)
        ticks = QHBoxLayout()
        self.lo, self.mid, self.hi = QLabel(""), QLabel(""), QLabel("")
        self.mid.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hi.setAlignment(Qt.AlignmentFlag.AlignRight)
        for w in (self.lo, self.mid, self.hi):
            ticks.addWidget(w)
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        lay.addWidget(self.caption)
        lay.addWidget(self.bar)
        lay.addLayout(ticks)
        lay.addWidget(self.legend)

    def show_overlay(self, ov: Overlay) -> None:
        self.caption.setText(ov.label)
        if ov.kind == "categorical":
            self.bar.clear()
            self.bar.hide()
            for w in (self.lo, self.mid, self.hi):
                w.setText("")
            present = set().union(*(set(map(str, v)) for v in ov.values))
            items = []
            for lab, rgba in ov.palette.items():
                if lab in present:
                    hexc = "#%02x%02x%02x" % tuple(int(255 * c) for c in rgba[:3])
                    items.append(f"<span style='color:{hexc}'>&#9632;</span>&nbsp;{lab}")
            self.legend.setText("&nbsp;&nbsp; ".join(items))
            self.legend.show()
            return
        self.legend.hide()
        self.bar.show()
        from ..session import to_rgba

        lo, hi = ov.limits
        rgba = to_rgba(np.linspace(lo, hi, 256), ov.cmap, ov.limits)
        img = np.ascontiguousarray((np.repeat(rgba[None, :, :3], 8, 0) * 255).astype(np.uint8))
        qimg = QImage(img.data, img.shape[1], img.shape[0], 3 * img.shape[1],
                      QImage.Format.Format_RGB888).copy()
        self.bar.setPixmap(QPixmap.fromImage(qimg))
        self.lo.setText(f"{lo:.3g}")
        self.mid.setText(f"{(lo + hi) / 2:.3g}")
        self.hi.setText(f"{hi:.3g}")


_COLOR_BY = [
    ("Gene expression", "expression"),
    ("Concept labels", "concept"),
    ("Predicted labels", "predicted"),
    ("Magnitude of change", "magnitude"),
]
_FACTUAL = "factual (no intervention)"
_NONE = "(none)"


class OverlayWidget(_CausCellWidget):
    """Factual / counterfactual / difference expression (or labels) on the cells."""

    title = "Overlay"

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        from superqt import QSearchableComboBox

        super().__init__(napari_viewer)
        box = QGroupBox("Show")
        f = QFormLayout(box)
        self.color_by = QComboBox()
        for text, _ in _COLOR_BY:
            self.color_by.addItem(text)
        self.gene_combo = QSearchableComboBox()
        self.gene_combo.setToolTip("Type to search a gene")
        self.view_combo = QComboBox()
        self.view_combo.addItems(["factual", "counterfactual", "difference"])
        self.concept_combo = QComboBox()
        self.panel_a = QComboBox()
        self.panel_b = QComboBox()
        self.panel_b.setToolTip("A second panel, placed beside the first with the same colours")
        f.addRow("Colour by", self.color_by)
        f.addRow("Gene", self.gene_combo)
        f.addRow("View", self.view_combo)
        f.addRow("Labels of", self.concept_combo)
        f.addRow("Intervention", self.panel_a)
        f.addRow("Compare with", self.panel_b)
        self.body.addWidget(box)
        self.show_btn = QPushButton("Show on tissue")
        self.body.addWidget(self.show_btn)
        self.colorbar = _ColorBar()
        self.body.addWidget(self.colorbar)
        self.top_label = QLabel("Top changed genes (click one to show it):")
        self.top_label.setWordWrap(True)
        self.body.addWidget(self.top_label)
        self.top_table = QTableWidget(0, 3)
        self.top_table.setHorizontalHeaderLabels(["gene", "mean change", "factual -> cf"])
        self.top_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.top_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.top_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.top_table.verticalHeader().setVisible(False)
        self.top_table.setMinimumHeight(160)
        self.body.addWidget(self.top_table)
        self.grid_check = QCheckBox("Grid mode: one viewbox per panel (hides other layers)")
        self.grid_check.setToolTip("Otherwise the second panel is placed beside the first")
        self.body.addWidget(self.grid_check)
        self.auto = QCheckBox("Update on every change")
        self.auto.setChecked(True)
        self.body.addWidget(self.auto)
        self.last_overlay: Overlay | None = None
        self._hidden_by_grid: list[Any] = []
        self._grid_on = False
        self.grid_check.toggled.connect(self._on_control_changed)

        self.show_btn.clicked.connect(self.apply)
        self.top_table.cellClicked.connect(self._on_top_clicked)
        for combo in (self.color_by, self.gene_combo, self.view_combo, self.concept_combo,
                      self.panel_a, self.panel_b):
            combo.currentIndexChanged.connect(self._on_control_changed)
        self._compact()
        self._refresh_layers()

    # -- state -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        s = self.session
        blockers = [self.gene_combo, self.concept_combo, self.panel_a, self.panel_b]
        for w in blockers:
            w.blockSignals(True)
        try:
            genes = s.genes if s is not None else []
            if [self.gene_combo.itemText(i) for i in range(self.gene_combo.count())] != genes:
                current = self.gene_combo.currentText()
                self.gene_combo.clear()
                self.gene_combo.addItems(genes)
                if current in genes:
                    self.gene_combo.setCurrentText(current)
            concepts = []
            if s is not None:
                concepts = s.model.concepts if s.model is not None else s.categorical_columns()
            _set_items(self.concept_combo, concepts)
            names = list(s.interventions) if s is not None else []
            newest = names[-1] if names else None
            prev_a = self.panel_a.currentText()
            _set_items(self.panel_a, [*names[::-1], _FACTUAL], keep=False,
                       default=prev_a if prev_a in names and prev_a != self._last_newest
                       else newest)
            _set_items(self.panel_b, [_NONE, _FACTUAL, *names[::-1]])
            self._last_newest = newest
        finally:
            for w in blockers:
                w.blockSignals(False)
        self._update_top_genes()
        if self.auto.isChecked() and s is not None and self.last_overlay is not None:
            self.apply(quiet=True)

    _last_newest: str | None = None

    def _on_control_changed(self, *args: Any) -> None:
        mode = _COLOR_BY[self.color_by.currentIndex()][1]
        self.gene_combo.setEnabled(mode == "expression")
        self.view_combo.setEnabled(mode == "expression")
        self.concept_combo.setEnabled(mode in ("concept", "predicted"))
        self._update_top_genes()
        if self.auto.isChecked() and self.session is not None:
            self.apply(quiet=True)

    def _panels(self) -> list[str | None]:
        a = self.panel_a.currentText()
        b = self.panel_b.currentText()
        panels = [None if a in (_FACTUAL, "") else a]
        if b and b != _NONE:
            panels.append(None if b == _FACTUAL else b)
        return panels

    def set_controls(self, *, color_by: str | None = None, gene: str | None = None,
                     view: str | None = None, intervention: str | None = None,
                     compare: str | None = None, concept: str | None = None) -> None:
        """Set several controls at once (as a user would), then update once."""
        auto = self.auto.isChecked()
        self.auto.setChecked(False)
        try:
            if color_by is not None:
                self.color_by.setCurrentIndex([m for _, m in _COLOR_BY].index(color_by))
            if gene is not None:
                self.gene_combo.setCurrentText(gene)
            if view is not None:
                self.view_combo.setCurrentText(view)
            if concept is not None:
                self.concept_combo.setCurrentText(concept)
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
            if (layer.metadata or {}).get(OVERLAY_KEY) == panel and (
                layer.metadata.get("causcell_session") is self.session
            ):
                return layer
        if not create:
            return None
        s = self.session
        coords = s.coords
        return self.viewer.add_points(
            coords[:, ::-1], name=f"CausCell {panel}", size=point_size(coords),
            border_width=0, face_color="white", translate=self._offset(panel),
            metadata={OVERLAY_KEY: panel, "causcell_session": s},
        )

    def _wide(self) -> bool:
        coords = self.session.coords
        return bool(np.ptp(coords[:, 0]) >= np.ptp(coords[:, 1]))

    def _offset(self, panel: str, grid: bool = False) -> tuple[float, float]:
        """World offset of a panel: B goes below a wide tissue, right of a tall one."""
        if panel == "A" or grid:
            return (0.0, 0.0)
        coords = self.session.coords
        w, h = np.ptp(coords[:, 0]), np.ptp(coords[:, 1])
        return (h * 1.12, 0.0) if w >= h else (0.0, w * 1.12)

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
        s = self.session
        if s is None:
            if not quiet:
                self.message("Open data first (File > Open Sample > CausCell).", error=True)
            return None
        mode = _COLOR_BY[self.color_by.currentIndex()][1]
        try:
            ov = s.overlay(mode, gene=self.gene_combo.currentText() or None,
                           view=self.view_combo.currentText(), interventions=self._panels(),
                           concept=self.concept_combo.currentText() or None)
        except DataError as err:
            self.message(str(err), error=not quiet)
            return None
        grid = self.grid_check.isChecked() and len(ov.values) > 1
        for i, panel in enumerate("AB"[: len(ov.values)]):
            layer = self.overlay_layer(panel)
            layer.translate = self._offset(panel, grid)
            layer.face_color = ov.rgba(i)
            layer.features = pd.DataFrame({"value": ov.values[i]})
            layer.name = f"CausCell {panel}: {ov.titles[i]}"
            layer.visible = True
        if len(ov.values) < 2:
            b = self.overlay_layer("B", create=False)
            if b is not None:
                self.viewer.layers.remove(b)
        if grid or self._grid_on:
            self._set_grid(grid)
        self.colorbar.show_overlay(ov)
        where = ("top", "bottom") if self._wide() else ("left", "right")
        text = ov.label + "".join(
            f"\n{where[i]}: {t}" for i, t in enumerate(ov.titles)
        ) if len(ov.titles) > 1 else f"{ov.label}\n{ov.titles[0]}"
        self.viewer.text_overlay.text = text
        self.viewer.text_overlay.position = "top_left"
        self.viewer.text_overlay.visible = True
        self.viewer.text_overlay.font_size = 11
        self.last_overlay = ov
        if not quiet:
            self.message(f"Showing {ov.label} for {len(ov.values)} panel(s).")
        return ov

    # -- top changed genes ---------------------------------------------------------------------
    def _update_top_genes(self) -> None:
        s = self.session
        self.top_table.setRowCount(0)
        names = [p for p in self._panels() if p is not None] if s is not None else []
        if not names:
            self.top_label.setText("Top changed genes: run an intervention first.")
            return
        df = s.top_genes(names[0], n=15)
        self.top_label.setText(f"Top changed genes of {names[0]} (click one to show it):")
        self.top_table.setRowCount(len(df))
        for r, row in enumerate(df.itertuples(index=False)):
            vals = [row.gene, f"{row.mean_change:+.3f}",
                    f"{row.mean_factual:.2f} -> {row.mean_counterfactual:.2f}"]
            for c, v in enumerate(vals):
                self.top_table.setItem(r, c, QTableWidgetItem(v))
        self.top_table.resizeRowsToContents()

    def top_genes(self) -> list[str]:
        return [self.top_table.item(r, 0).text() for r in range(self.top_table.rowCount())]

    def _on_top_clicked(self, row: int, col: int) -> None:
        gene = self.top_table.item(row, 0).text()
        self.set_controls(color_by="expression", gene=gene)
