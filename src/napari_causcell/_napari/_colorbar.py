"""A colour bar (continuous overlays) or a legend (labels) under the Overlay controls."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..app import Overlay, to_rgba


class ColorBar(QWidget):
    """Shows an :class:`~napari_causcell.app.Overlay`'s caption and colours."""

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
        categorical = ov.kind == "categorical"
        self.bar.setVisible(not categorical)
        self.legend.setVisible(categorical)
        if categorical:
            self.bar.clear()
            for w in (self.lo, self.mid, self.hi):
                w.setText("")
            self.legend.setText("&nbsp;&nbsp; ".join(
                f"<span style='color:{hexc}'>&#9632;</span>&nbsp;{lab}"
                for lab, hexc in ov.legend()))
            return
        lo, hi = ov.limits
        rgba = to_rgba(np.linspace(lo, hi, 256), ov.cmap, ov.limits)
        img = np.ascontiguousarray((np.repeat(rgba[None, :, :3], 8, 0) * 255).astype(np.uint8))
        qimg = QImage(img.data, img.shape[1], img.shape[0], 3 * img.shape[1],
                      QImage.Format.Format_RGB888).copy()
        self.bar.setPixmap(QPixmap.fromImage(qimg))
        self.lo.setText(f"{lo:.3g}")
        self.mid.setText(f"{(lo + hi) / 2:.3g}")
        self.hi.setText(f"{hi:.3g}")
