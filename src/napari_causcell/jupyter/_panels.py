"""The panels moved to one file each; this module keeps the old import path."""

from ._base import figure_png, set_options
from ._causcell_panel import CausCellPanel
from ._intervene_panel import IntervenePanel
from ._overlay_panel import OverlayPanel
from ._train_panel import TrainPanel
from ._trends_panel import TrendsPanel

__all__ = ["CausCellPanel", "IntervenePanel", "OverlayPanel", "TrainPanel", "TrendsPanel",
           "figure_png", "set_options"]
