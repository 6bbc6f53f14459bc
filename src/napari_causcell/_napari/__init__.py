"""napari front end: dock widgets Train / Intervene / Overlay, sample data and reader.

The logic lives in :mod:`napari_causcell.session` (Qt-free) and the public API; this package
only builds widgets and layers. The widgets (which import Qt) load on first use.
"""

from ._sample import brain_aging_sample

__all__ = ["InterveneWidget", "OverlayWidget", "TrainWidget", "brain_aging_sample"]


def __getattr__(name: str):
    if name in {"InterveneWidget", "OverlayWidget", "TrainWidget"}:
        from . import _widgets

        return getattr(_widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
