"""The parent-tick grid of the Train widget: row = child, column = parent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

from ..app import graph

UNDIRECTED_COLOR = "#7a5c00"  # grid cells of an undirected suggested edge
_DIAGONAL = "#3a3d44"
_CHECKED, _UNCHECKED = Qt.CheckState.Checked, Qt.CheckState.Unchecked
#: rows the grid shows without scrolling (more concepts scroll inside the grid)
MAX_ROWS_SHOWN = 8


class DagGrid(QTableWidget):
    """Tick each concept's parents; a tick that closes a cycle is undone and ``refused``
    is emitted with the message; any other change emits ``ticked``."""

    refused = Signal(str)
    ticked = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.concepts: list[str] = []
        self.undirected: list[tuple[str, str]] = []
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.itemChanged.connect(self._on_tick)
        self._fit_height()

    def rebuild(self, concepts: Sequence[str], parents: Mapping[str, Sequence[str]]) -> None:
        """Show ``concepts`` with exactly ``parents`` ticked."""
        self.concepts = list(concepts)
        n = len(self.concepts)
        self.blockSignals(True)
        self.clear()
        self.setRowCount(n)
        self.setColumnCount(n)
        self.setVerticalHeaderLabels([f"{c} <-" for c in self.concepts])
        self.setHorizontalHeaderLabels(self.concepts)
        for i, child in enumerate(self.concepts):
            for j, parent in enumerate(self.concepts):
                self.setItem(i, j, self._cell(child, parent, parents, i == j))
        self._mark_undirected()
        self.blockSignals(False)
        self._fit_height()

    def _fit_height(self) -> None:
        """As tall as its rows (every tick box in view, no inner scrolling), at most
        :data:`MAX_ROWS_SHOWN` rows; the dock's scroll area takes the rest."""
        rows = min(max(self.rowCount(), 2), MAX_ROWS_SHOWN)
        row_h = self.verticalHeader().defaultSectionSize()
        head = self.horizontalHeader().sizeHint().height()
        bar = self.horizontalScrollBar().sizeHint().height()
        self.setFixedHeight(head + rows * row_h + 2 * self.frameWidth() + bar)

    @staticmethod
    def _cell(child: str, parent: str, parents: Mapping[str, Sequence[str]],
              diagonal: bool) -> QTableWidgetItem:
        item = QTableWidgetItem("")
        if diagonal:
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            item.setBackground(QColor(_DIAGONAL))
            return item
        item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
        item.setCheckState(_CHECKED if parent in parents.get(child, []) else _UNCHECKED)
        item.setToolTip(f"{parent} -> {child}")
        return item

    def parents(self) -> dict[str, list[str]]:
        """``{child: [parents]}`` as ticked."""
        out: dict[str, list[str]] = {c: [] for c in self.concepts}
        for i, child in enumerate(self.concepts):
            for j, parent in enumerate(self.concepts):
                item = self.item(i, j)
                if i != j and item is not None and item.checkState() == _CHECKED:
                    out[child].append(parent)
        return out

    def set_parent(self, child: str, parent: str, on: bool = True) -> bool:
        """Tick or untick ``parent -> child`` as a user would; returns whether it holds."""
        item = self.item(self.concepts.index(child), self.concepts.index(parent))
        want = _CHECKED if on else _UNCHECKED
        item.setCheckState(want)
        return item.checkState() == want

    def set_undirected(self, undirected: Sequence[tuple[str, str]]) -> None:
        self.undirected = list(undirected)

    def _mark_undirected(self) -> None:
        """Colour both grid cells of every suggested undirected edge, with a tooltip."""
        names = self.concepts
        for a, b in self.undirected:
            if a in names and b in names:
                for child, parent in ((b, a), (a, b)):
                    item = self.item(names.index(child), names.index(parent))
                    item.setBackground(QColor(UNDIRECTED_COLOR))
                    item.setToolTip(graph.undirected_tip(a, b))

    def _on_tick(self, item: QTableWidgetItem) -> None:
        if item.checkState() == _CHECKED:
            parent, child = self.concepts[item.column()], self.concepts[item.row()]
            refusal = graph.check_tick(self.concepts, self.parents(), parent, child)
            if refusal is not None:
                self.blockSignals(True)
                item.setCheckState(_UNCHECKED)
                self.blockSignals(False)
                self.refused.emit(refusal)
                return
        self.ticked.emit()
