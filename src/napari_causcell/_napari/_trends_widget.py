"""The Trends section of the Intervene dock widget (``tl.age_trends`` as an app job)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
)

from ..app import ALL_OTHERS
from ..app import trends as app_trends
from ._base import set_items

if TYPE_CHECKING:
    from ._intervene_widget import InterveneWidget


class TrendsBox(QGroupBox):
    """From cells at one label of the intervention's concept to another (or all others):
    the largest significant changes per group and gene. Shares the concept and the sampling
    settings of its :class:`~napari_causcell._napari.InterveneWidget`."""

    def __init__(self, host: InterveneWidget) -> None:
        super().__init__("Trends along the concept (tl.age_trends)")
        self.host = host
        self.result: pd.DataFrame | None = None
        f = QFormLayout(self)
        self.source = QComboBox()
        self.source.setToolTip("Cells with this label are moved to the target label(s)")
        self.target = QComboBox()
        f.addRow("From cells at", self.source)
        f.addRow("To", self.target)
        self.run_btn = QPushButton("Run trends")
        self.run_btn.setToolTip("Counterfactuals for the source cells, then per cell type x "
                                "domain and gene: mean change, t-test, BH (off the UI thread)")
        f.addRow(self.run_btn)
        self.table = QTableWidget(0, len(app_trends.TABLE_HEADER))
        self.table.setHorizontalHeaderLabels(app_trends.TABLE_HEADER)
        self.table.setToolTip(app_trends.TABLE_TIP)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setMaximumHeight(220)
        f.addRow(self.table)
        self.run_btn.clicked.connect(self.run)

    def fill(self, labels: list[str]) -> None:
        """Offer the labels of the chosen concept."""
        set_items(self.source, labels, default=labels[0] if labels else None)
        set_items(self.target, [ALL_OTHERS, *labels] if labels else [], default=ALL_OTHERS)

    def request(self) -> app_trends.TrendsRequest:
        h = self.host
        return app_trends.TrendsRequest(
            h.concept_combo.currentText(), self.source.currentText(),
            self.target.currentText(), **h.generation.sampling())

    def run(self) -> Any:
        """Start the trends job on a worker (through the host)."""
        request = self.request()
        return self.host.submit(lambda: app_trends.trends_job(self.host.state, request),
                                self._on_result)

    def _on_result(self, result: app_trends.TrendsResult) -> None:
        """Show the largest significant changes (or the largest changes if none is)."""
        self.result = result.trends
        rows = app_trends.table_rows(result.top)
        self.table.setRowCount(len(rows))
        for i, cells in enumerate(rows):
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.host.message(result.message)
