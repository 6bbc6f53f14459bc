"""napari front end: dock widgets Train / Intervene / Overlay, sample data and reader.

The logic lives in :mod:`napari_causcell.session` (Qt-free) and the public API; this package
only builds widgets and layers.
"""

from ._sample import brain_aging_sample
from ._widgets import InterveneWidget, OverlayWidget, TrainWidget

__all__ = ["InterveneWidget", "OverlayWidget", "TrainWidget", "brain_aging_sample"]
