"""Jupyter front end: ipywidgets panels over napari_causcell.app, shared with the napari plugin.

>>> from napari_causcell.jupyter import CausCellPanel
>>> panel = CausCellPanel(sdata)  # train, intervene, overlay and trends tabs
>>> panel                         # displays in JupyterLab / Notebook / VS Code

One panel per file (``_train_panel.py``, ``_intervene_panel.py``, ...). The panels only copy
widget values into the requests of :mod:`napari_causcell.app` and display what comes back
(drawn with :mod:`napari_causcell.pl`); long work (training, counterfactuals) runs as an app
job on a background thread, so the notebook stays responsive and progress streams.
Needs ``ipywidgets`` (``pip install "napari-causcell[jupyter]"``).
"""

try:
    import ipywidgets  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "The Jupyter panels need ipywidgets: pip install 'napari-causcell[jupyter]'"
    ) from err

from ._causcell_panel import CausCellPanel
from ._intervene_panel import IntervenePanel
from ._overlay_panel import OverlayPanel
from ._train_panel import TrainPanel
from ._trends_panel import TrendsPanel

__all__ = ["CausCellPanel", "IntervenePanel", "OverlayPanel", "TrainPanel", "TrendsPanel"]
