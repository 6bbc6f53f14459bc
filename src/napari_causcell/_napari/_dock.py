"""One "CausCell" dock: the Train, Intervene and Overlay widgets as tabs.

The three widgets stay registered as separate docks too (napari.yaml); this one takes the
height of a single dock, so the whole workflow fits a 1366 x 768 laptop screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QTabWidget

if TYPE_CHECKING:
    import napari

__all__ = ["CausCellDock"]


class CausCellDock(QTabWidget):
    """Tabs Train / Intervene / Overlay over the same data (``self.train``,
    ``self.intervene``, ``self.overlay``)."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        from ._intervene_widget import InterveneWidget
        from ._overlay_widget import OverlayWidget
        from ._train_widget import TrainWidget

        self.viewer = napari_viewer
        self.train = TrainWidget(napari_viewer)
        self.intervene = InterveneWidget(napari_viewer)
        self.overlay = OverlayWidget(napari_viewer)
        for widget in (self.train, self.intervene, self.overlay):
            self.addTab(widget, widget.title)
        self.setDocumentMode(True)

    def show_tab(self, title: str) -> None:
        """Bring the tab named ``title`` (``"Train"``, ``"Intervene"``, ``"Overlay"``) to the
        front."""
        titles = [self.tabText(i) for i in range(self.count())]
        self.setCurrentIndex(titles.index(title))
