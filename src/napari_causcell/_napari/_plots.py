"""Matplotlib canvases in Qt: the live loss curves and the suggested graph."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from ..app.train import loss_labels

_BACKGROUND = "#262930"
_TEXT = "#dddddd"


class _Canvas(QWidget):
    """A fixed-height matplotlib figure."""

    def __init__(self, size: tuple[float, float], height: int, **figure: Any) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=size, dpi=90, **figure)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setFixedHeight(height)
        self.ax = self.figure.add_subplot(111)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas)


class LossPlot(_Canvas):
    """Live training curves: train and validation of the same loss, labelled
    (``self.labels``: train legend, validation legend, y-axis label)."""

    def __init__(self) -> None:
        super().__init__((3.2, 2.0), 170, facecolor=_BACKGROUND)
        self.clear()

    def clear(self) -> None:
        self.labels = loss_labels()
        self.epochs: list[int] = []
        self.train: list[float] = []
        self.val: list[float] = []
        self._draw()

    def add(self, epoch: int, train: float, val: float | None) -> None:
        self.epochs.append(epoch)
        self.train.append(train)
        self.val.append(np.nan if val is None else val)
        self._draw()

    def set_curve(self, epochs: list[int], train: list[float], val: list[float],
                  labels: tuple[str, str, str] | None = None) -> None:
        self.epochs, self.train, self.val = list(epochs), list(train), list(val)
        self.labels = labels or loss_labels()
        self._draw()

    def _draw(self) -> None:
        from matplotlib.ticker import MaxNLocator

        ax = self.ax
        ax.clear()
        ax.set_facecolor(_BACKGROUND)
        for spine in ax.spines.values():
            spine.set_color("#aaaaaa")
        ax.tick_params(colors=_TEXT, labelsize=7)
        train_name, val_name, y_name = self.labels
        if self.epochs:
            ax.plot(self.epochs, self.train, "o-", ms=3, color="#5fb3ff", label=train_name)
            if np.isfinite(self.val).any():
                ax.plot(self.epochs, self.val, "o-", ms=3, color="#ffb45f", label=val_name)
            ax.legend(fontsize=7, facecolor=_BACKGROUND, labelcolor=_TEXT, frameon=False)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch", color=_TEXT, fontsize=8, labelpad=1)
        ax.set_ylabel(y_name, color=_TEXT, fontsize=8)
        self.figure.subplots_adjust(left=0.16, right=0.97, top=0.95, bottom=0.22)
        self.canvas.draw_idle()


class DagPlot(_Canvas):
    """The suggested causal graph (``pl.dag``)."""

    def __init__(self) -> None:
        super().__init__((3.2, 2.2), 200)

    def show_graph(self, suggestion: Any) -> None:
        from .. import pl

        self.ax.clear()
        pl.dag(suggestion, ax=self.ax, title="")
        self.figure.subplots_adjust(left=0.02, right=0.98, top=0.98, bottom=0.12)
        self.canvas.draw_idle()
