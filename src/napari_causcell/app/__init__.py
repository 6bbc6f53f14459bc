"""The application layer under both front ends (napari dock widgets, Jupyter panels).

Qt-free and ipywidgets-free. :class:`AppState` holds one dataset, its model and the kept
interventions, and declares its events with ``psygnal``. Each workflow is one module with a
request object that validates itself and a job (:class:`~napari_causcell.app.jobs.Job`) that
yields progress, can be cancelled and returns the text and data a front end shows:

========================  ========================================================
:mod:`.train`             :class:`TrainRequest` -> :func:`train_job`; save, load
:mod:`.graph`             :class:`SuggestRequest` -> :func:`suggest_job`; tick checks
:mod:`.domains`           :class:`DomainsRequest` -> :func:`domains_job`
:mod:`.cells`             :func:`select`: which cells (labels, rows, drawn shapes)
:mod:`.intervene`         :class:`InterveneRequest` -> :func:`intervene_job`
:mod:`.overlay`           :class:`OverlayRequest` -> :class:`Overlay`; top changed genes
:mod:`.trends`            :class:`TrendsRequest` -> :func:`trends_job`
========================  ========================================================

Front ends copy widget values into a request, start the job with their adapter
(``_napari/_worker.py``: napari's ``thread_worker``; :func:`start_thread` for Jupyter) and
display what comes back. Every user-facing message is written here, once.
"""

from .cells import SELECTION_MODES, Selection, select
from .domains import DomainsRequest, DomainsResult, domains_job
from .graph import SuggestRequest, SuggestResult, suggest_job
from .intervene import InterveneRequest, InterveneResult, Intervention, intervene_job
from .jobs import BUSY, USER_ERRORS, Cancelled, Job, Progress, describe_error, pump, start_thread
from .overlay import COLOR_BY, VIEWS, Overlay, OverlayRequest, label_palette, to_rgba
from .state import AppEvents, AppState, data_from_metadata
from .train import MODEL_SIZES, TrainRequest, TrainResult, train_job
from .trends import ALL_OTHERS, TrendsRequest, TrendsResult, trends_job

__all__ = [
    "ALL_OTHERS", "BUSY", "COLOR_BY", "MODEL_SIZES", "SELECTION_MODES", "USER_ERRORS", "VIEWS",
    "AppEvents", "AppState", "Cancelled", "DomainsRequest", "DomainsResult",
    "InterveneRequest", "InterveneResult", "Intervention", "Job", "Overlay", "OverlayRequest",
    "Progress", "Selection", "SuggestRequest", "SuggestResult", "TrainRequest", "TrainResult",
    "TrendsRequest", "TrendsResult", "data_from_metadata", "describe_error", "domains_job",
    "intervene_job", "label_palette", "pump", "select", "start_thread", "suggest_job",
    "to_rgba", "train_job", "trends_job",
]
