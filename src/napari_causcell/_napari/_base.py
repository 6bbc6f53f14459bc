"""What every dock widget shares: the cells-layer choice, the state, a status line, jobs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from ..app import USER_ERRORS, AppState, Job, Progress
from ..app.forms import JobHost
from ._layers import data_layers, state_for
from ._worker import start_worker

if TYPE_CHECKING:
    import napari

ERROR_STYLE = "color: #ff6b6b;"
OK_STYLE = "color: #9fd49f;"
NO_DATA = "Open data first (File > Open Sample > CausCell)."


class _Bridge(QObject):
    """Carries state events (from any thread) to the GUI thread."""

    changed = Signal()


def set_items(combo: QComboBox, items: Sequence[str], keep: bool = True,
              default: str | None = None) -> None:
    """Replace a combo box's items, keeping the current one (or ``default``) when offered."""
    current = combo.currentText() if keep else None
    combo.blockSignals(True)
    combo.clear()
    combo.addItems([str(i) for i in items])
    for want in (current, default):
        if want and want in items:
            combo.setCurrentText(want)
            break
    combo.blockSignals(False)


class CausCellWidget(QWidget, JobHost):
    """Cells-layer choice, status line, state events and the job (one at a time)."""

    title = "CausCell"

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self.pbar: Any = None
        self._state: AppState | None = None
        self._bridge = _Bridge()
        self._bridge.changed.connect(self.refresh)
        self._layers: list[Any] = []
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
        for event in (ev.inserted, ev.removed, ev.reordered):
            event.connect(self._refresh_layers)

    # -- layers and state ------------------------------------------------------------------
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
    def state(self) -> AppState | None:
        return self._state

    def _on_layer_changed(self, *args: Any) -> None:
        self.use_table(None)

    def use_table(self, table_key: str | None) -> None:
        """Follow the state of the chosen layer's data (and ``table_key``)."""
        layer, new = self.source_layer, None
        if layer is not None:
            try:
                new = state_for(layer, table_key)
            except (*USER_ERRORS, TypeError) as err:
                self.message(str(err), error=True)
        if new is not self._state:
            if self._state is not None:
                for name in self._state.events:
                    self._state.events[name].disconnect(self._relay)
            self._state = new
            if new is not None:
                for name in new.events:
                    new.events[name].connect(self._relay)
        self.refresh()

    def _relay(self, *args: Any) -> None:
        try:
            self._bridge.changed.emit()
        except RuntimeError:  # the widget was closed
            pass

    def refresh(self) -> None:  # pragma: no cover - overridden
        pass

    # -- messages and jobs -----------------------------------------------------------------
    def message(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(ERROR_STYLE if error else OK_STYLE)
        if error:
            from napari.utils.notifications import show_warning

            show_warning(f"CausCell {self.title}: {text}")

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def submit(self, make_job: Callable[[], Job], returned: Callable[[Any], Any],
               progress: Callable[[Progress], Any] | None = None) -> Job | None:
        """:meth:`JobHost.submit` once there is data."""
        if self.state is None:
            self.message(NO_DATA, error=True)
            return None
        return super().submit(make_job, returned, progress)

    def _launch(self, job: Job, returned: Callable[[Any], Any],
                progress: Callable[[Progress], Any]) -> None:
        self.worker = start_worker(job, returned=returned, progress=progress,
                                   errored=self._job_failed, finished=self._job_finished)
        self.pbar = self.worker.pbar

    def _job_finished(self) -> None:
        self.worker = None
        super()._job_finished()

    def _compact(self) -> None:
        """Let long labels (gene, intervention names) not widen the dock."""
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        self.setMinimumWidth(320)
