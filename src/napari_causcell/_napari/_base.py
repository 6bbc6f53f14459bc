"""What every dock widget shares: the cells-layer choice, the state, a status line, jobs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..app import USER_ERRORS, AppState, Job, Progress
from ..app.forms import JobHost, readiness_text
from ._layers import data_layers, state_for
from ._worker import start_worker

if TYPE_CHECKING:
    import napari

ERROR_STYLE = "color: #ff6b6b;"
OK_STYLE = "color: #9fd49f;"
NO_DATA = "Open data first (File > Open Sample > CausCell)."
#: narrowest dock body: a napari side dock at its default width
MIN_WIDTH = 320


class _Bridge(QObject):
    """Carries state events (from any thread) to the GUI thread."""

    changed = Signal()
    model_changed = Signal()


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


class WrappedCheckBox(QWidget):
    """A check box whose (long) text wraps instead of widening the dock; ``text``,
    ``setText``, ``isChecked``, ``setChecked`` and ``toggled`` as a ``QCheckBox``. Clicking
    the text toggles it."""

    toggled = Signal(bool)

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.box = QCheckBox()
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.mouseReleaseEvent = lambda event: self.box.toggle()  # type: ignore
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.box, 0, Qt.AlignmentFlag.AlignTop)
        lay.addWidget(self.label, 1)
        self.box.toggled.connect(self.toggled)

    def text(self) -> str:
        return self.label.text()

    def setText(self, text: str) -> None:  # noqa: N802 - the QCheckBox name
        self.label.setText(text)

    def isChecked(self) -> bool:  # noqa: N802
        return self.box.isChecked()

    def setChecked(self, on: bool) -> None:  # noqa: N802
        self.box.setChecked(on)


class CausCellWidget(QWidget, JobHost):
    """Cells-layer choice, status line, state events and the job (one at a time).

    The form (``self.form``, then ``self.body``) sits in a vertical scroll area
    (``self.scroll``, its widget ``self.content``) and the status line below it, always in
    view: a dock asks for little height, so the three docks fit a 1366 x 768 screen.
    """

    title = "CausCell"

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self.pbar: Any = None
        self._state: AppState | None = None
        self._bridge = _Bridge()
        self._bridge.changed.connect(self.refresh)
        self._bridge.model_changed.connect(self._show_readiness)
        self._layers: list[Any] = []
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("Layer whose cells (SpatialData / AnnData) are used")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.form = QFormLayout()
        self.form.addRow("Cells layer", self.layer_combo)
        self.body = QVBoxLayout()
        self._build_scroll()
        self.layer_combo.currentIndexChanged.connect(self._on_layer_changed)
        ev = self.viewer.layers.events
        for event in (ev.inserted, ev.removed, ev.reordered):
            event.connect(self._refresh_layers)

    def _build_scroll(self) -> None:
        self.content = QWidget()
        inner = QVBoxLayout(self.content)
        inner.addLayout(self.form)
        inner.addLayout(self.body)
        inner.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(self.content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.addWidget(self.scroll, 1)
        outer.addWidget(self.status)
        self.content.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
        """Keep the form's full width in view when its content changes (it only scrolls
        vertically)."""
        if obj is getattr(self, "content", None) and event.type() == QEvent.Type.LayoutRequest:
            self._fit_width()
        return False

    def _fit_width(self) -> None:
        bar = self.scroll.verticalScrollBar().sizeHint().width() + 6  # styled bars differ
        width = max(MIN_WIDTH, self.content.minimumSizeHint().width() + bar)
        if width != self.scroll.minimumWidth():
            self.scroll.setMinimumWidth(width)
            self.setMinimumWidth(width + 8)

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
            self._follow(self._state, False)
            self._state = new
            self._follow(new, True)
        self.refresh()

    def _follow(self, state: AppState | None, on: bool) -> None:
        """(Dis)connect the state's events: any event refreshes the form; a new or trained
        model also replaces the status line (:func:`~napari_causcell.app.forms.readiness_text`)."""
        if state is None:
            return
        for name in state.events:
            getattr(state.events[name], "connect" if on else "disconnect")(self._relay)
        for sig in (state.events.model, state.events.trained):
            getattr(sig, "connect" if on else "disconnect")(self._relay_model)

    def _relay(self, *args: Any) -> None:
        try:
            self._bridge.changed.emit()
        except RuntimeError:  # the widget was closed
            pass

    def _relay_model(self, *args: Any) -> None:
        try:
            self._bridge.model_changed.emit()
        except RuntimeError:  # the widget was closed
            pass

    def _show_readiness(self) -> None:
        """A new or newly trained model: the old status line (e.g. "Train a model first")
        is stale; a running job's own messages are left alone."""
        if self.state is not None and not self.busy:
            self.message(readiness_text(self.state))

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
        """Let long labels (gene, intervention names) not widen the dock, and keep the
        form's full width in view (the scroll area only scrolls vertically)."""
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        self._fit_width()
