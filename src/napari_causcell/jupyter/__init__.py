"""Jupyter front end: ipywidgets panels over the same session API as the napari plugin.

>>> from napari_causcell.jupyter import CausCellPanel
>>> panel = CausCellPanel(sdata)  # train, intervene, overlay and trends tabs
>>> panel                         # displays in JupyterLab / Notebook / VS Code

The panels only collect inputs, call :class:`~napari_causcell.session.CausCellSession` and
draw its results with :mod:`napari_causcell.pl`; long work (training, counterfactuals) runs on
a background thread so the notebook stays responsive and progress streams while it runs.
Needs ``ipywidgets`` (``pip install "napari-causcell[jupyter]"``).
"""

try:
    import ipywidgets  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "The Jupyter panels need ipywidgets: pip install 'napari-causcell[jupyter]'"
    ) from err

from ._panels import CausCellPanel, IntervenePanel, OverlayPanel, TrainPanel, TrendsPanel

__all__ = ["CausCellPanel", "IntervenePanel", "OverlayPanel", "TrainPanel", "TrendsPanel"]
