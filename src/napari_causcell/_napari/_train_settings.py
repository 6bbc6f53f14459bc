"""The Train widget's settings form, built with magicgui (psygnal-evented widgets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, SpinBox

from ..app import MODEL_SIZES
from ..app import train as app_train

__all__ = ["TrainSettings"]


class TrainSettings(Container):
    """Epochs, time limit, device, seed and model size; ``changed`` (psygnal) fires on any
    edit, and the line below the form says how a training with these settings ends.

    Each value widget is an attribute (``epochs``, ``max_time``, ``device``, ``seed``,
    ``model_size``): ``settings.epochs.value = 30`` sets it as a user would.
    """

    def __init__(self) -> None:
        self.epochs = SpinBox(value=app_train.DEFAULT_EPOCHS, min=1, max=100_000,
                              label="Epochs", tooltip="At most this many passes over the cells")
        self.max_time = FloatSpinBox(value=app_train.DEFAULT_MAX_TIME, min=0.0, max=1e7,
                                     step=30.0, label="Time limit (s)",
                                     tooltip="Stop after this many seconds (0: no limit); "
                                             "the best weights so far are kept")
        self.device = ComboBox(choices=app_train.devices(), value="auto", label="Device")
        self.seed = SpinBox(value=0, min=0, max=2**31 - 1, label="Seed")
        self.model_size = ComboBox(choices=list(MODEL_SIZES), value="default",
                                   label="Model size")
        self.limit = Label(value="")
        super().__init__(widgets=[self.epochs, self.max_time, self.device, self.seed,
                                  self.model_size, self.limit], labels=True)
        self.limit.native.setWordWrap(True)
        self.changed.connect(self._show_limit)
        self._show_limit()

    def _show_limit(self, *args: object) -> None:
        self.limit.value = app_train.limit_text(self.epochs.value, self.max_time.value)

    def request(self, concepts: Sequence[str],
                parents: Mapping[str, Sequence[str]]) -> app_train.TrainRequest:
        """The settings with the ticked concepts and parents as a training request."""
        return app_train.TrainRequest(list(concepts), dict(parents), int(self.epochs.value),
                                      int(self.seed.value), str(self.device.value),
                                      str(self.model_size.value),
                                      float(self.max_time.value) or None)
