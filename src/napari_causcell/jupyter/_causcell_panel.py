"""The tabbed :class:`CausCellPanel`: Train, Intervene, Overlay and Trends over one dataset."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..app import AppState, Intervention
from ._intervene_panel import IntervenePanel
from ._overlay_panel import OverlayPanel
from ._train_panel import TrainPanel
from ._trends_panel import TrendsPanel


class CausCellPanel(widgets.VBox):
    """Train, Intervene, Overlay and Trends tabs over one dataset (SpatialData or AnnData).

    Parameters
    ----------
    data
        SpatialData with a table, or AnnData, with tissue coordinates.
    table_key
        Table of the SpatialData (default: ``"table"`` or its only table).
    model
        An already trained :class:`~napari_causcell.CausCell` on this data (optional).

    Attributes
    ----------
    state, train_panel, intervene_panel, overlay_panel, trends_panel, tabs
    """

    def __init__(self, data: Any, table_key: str | None = None, model: Any = None) -> None:
        super().__init__()
        self.state = AppState(data, table_key)
        if model is not None:
            self.state.set_model(model)
        self.train_panel = TrainPanel(self.state)
        self.overlay_panel = OverlayPanel(self.state)
        self.intervene_panel = IntervenePanel(self.state, on_result=self._show_result)
        self.trends_panel = TrendsPanel(self.state)
        self.tabs = widgets.Tab(children=[self.train_panel, self.intervene_panel,
                                          self.overlay_panel, self.trends_panel])
        for i, title in enumerate(["Train", "Intervene", "Overlay", "Trends"]):
            self.tabs.set_title(i, title)
        if model is not None and model.is_trained:
            self.tabs.selected_index = 1
            self.train_panel.draw_loss()
        head = widgets.HTML(f"<b>CausCell</b> &middot; {self.state.n_cells} cells &middot; "
                            f"{len(self.state.genes)} genes")
        self.children = [head, self.tabs]

    def _show_result(self, iv: Intervention) -> None:
        self.overlay_panel.show(iv)
        self.tabs.selected_index = 2

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every panel's running job (for scripts and tests)."""
        for panel in (self.train_panel, self.intervene_panel, self.overlay_panel,
                      self.trends_panel):
            panel.wait(timeout)
