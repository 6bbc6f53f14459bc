"""napari front end: dock widgets Train / Intervene / Overlay, sample data and reader.

One widget per file (``_train_widget.py``, ``_intervene_widget.py`` with its
``_trends_widget.py`` section, ``_overlay_widget.py``; ``_dock.py`` shows the three as tabs
of one dock); each form scrolls inside its dock (``_base.py``). They copy widget values into
the requests of :mod:`napari_causcell.app` (Qt-free) and show what comes back. Jobs run through
``_worker.start_worker`` (napari's ``thread_worker`` and a ``napari.utils.progress`` bar).
The widgets (which import Qt) load on first use.
"""

from ._sample import brain_aging_sample

__all__ = ["CausCellDock", "InterveneWidget", "OverlayWidget", "TrainWidget",
           "brain_aging_sample"]

_WIDGETS = {"CausCellDock": "._dock", "InterveneWidget": "._intervene_widget",
            "OverlayWidget": "._overlay_widget", "TrainWidget": "._train_widget"}


def __getattr__(name: str):
    if name in _WIDGETS:
        import importlib

        return getattr(importlib.import_module(_WIDGETS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
