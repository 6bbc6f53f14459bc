"""The dock widgets moved to one file each; this module keeps the old import path."""

from ._dag_grid import UNDIRECTED_COLOR as _UNDIRECTED_COLOR
from ._intervene_widget import InterveneWidget
from ._overlay_widget import OverlayWidget
from ._train_widget import TrainWidget

__all__ = ["InterveneWidget", "OverlayWidget", "TrainWidget", "_UNDIRECTED_COLOR"]
