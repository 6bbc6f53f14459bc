"""Deprecated: :class:`CausCellSession` is a thin alias of :class:`napari_causcell.app.AppState`.

.. deprecated:: 0.2
   Use :mod:`napari_causcell.app`: :class:`~napari_causcell.app.AppState` for the state and
   one module per workflow (``app.train``, ``app.graph``, ``app.intervene``, ``app.overlay``,
   ``app.trends``). This alias keeps the old method names for one release and will then be
   removed. Creating one emits a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

from . import app
from .app import cells, domains, graph, intervene, train, trends
from .app import overlay as _overlay
from .app.cells import SELECTION_MODES, Selection
from .app.intervene import Intervention
from .app.overlay import COLOR_BY, VIEWS, Overlay, label_palette, to_rgba
from .app.state import AppState, data_from_metadata
from .app.train import MODEL_SIZES

__all__ = [
    "COLOR_BY", "MODEL_SIZES", "SELECTION_MODES", "VIEWS", "CausCellSession", "Intervention",
    "Overlay", "Selection", "data_from_metadata", "label_palette", "to_rgba",
]

_WHAT = {"model": "model", "trained": "training", "obs": "obs",
         "interventions": "interventions"}


def _method(fn: Callable) -> Callable:
    """``fn(state, ...)`` as a method of the alias."""
    def method(self: CausCellSession, *args: Any, **kwargs: Any) -> Any:
        return fn(self, *args, **kwargs)

    method.__doc__ = f"Deprecated: :func:`{fn.__module__}.{fn.__name__}`."
    return method


class CausCellSession(AppState):
    """Deprecated alias of :class:`napari_causcell.app.AppState` (one release).

    Keeps the old method names; each calls the workflow function of :mod:`napari_causcell.app`
    of the same name.
    """

    def __init__(self, data: Any, table_key: str | None = None) -> None:
        warnings.warn("CausCellSession is deprecated; use napari_causcell.app.AppState and the "
                      "workflow modules of napari_causcell.app.", DeprecationWarning,
                      stacklevel=2)
        super().__init__(data, table_key)
        self._listeners: dict[Callable, list[tuple[Any, Callable]]] = {}

    # -- the old listener API over the psygnal events ----------------------------------------
    def subscribe(self, callback: Callable[[str], Any]) -> None:
        """``callback(what)`` with ``"model"``, ``"training"``, ``"obs"``, ``"interventions"``."""
        if callback in self._listeners:
            return
        pairs = []
        for signal, what in _WHAT.items():
            def slot(*_: Any, _what: str = what) -> None:
                callback(_what)

            getattr(self.events, signal).connect(slot)
            pairs.append((getattr(self.events, signal), slot))
        self._listeners[callback] = pairs

    def unsubscribe(self, callback: Callable[[str], Any]) -> None:
        for signal, slot in self._listeners.pop(callback, []):
            signal.disconnect(slot)

    def notify(self, what: str) -> None:
        {"model": lambda: self.events.model.emit(self.model),
         "obs": lambda: self.events.obs.emit(""),
         "interventions": lambda: self.events.interventions.emit(None)}.get(
            what, self.trained)()

    # -- training ---------------------------------------------------------------------------
    edges_from_parents = staticmethod(train.edges_from_parents)
    check_dag = staticmethod(train.check_dag)
    build_model = _method(train.build_model)

    def train_iter(self, max_epochs: int, **train_kwargs: Any) -> Iterator[Any]:
        """Train the current model, yielding a ``TrainProgress`` per epoch."""
        model = self.require_model(trained=False)
        job = app.Job(lambda j: app.pump(j, lambda report: model.train(
            max_epochs, callbacks=[report], **train_kwargs), lambda p: p, abort=False),
            title="train")
        history = yield from job
        self.trained()
        return history

    def train(self, max_epochs: int, **train_kwargs: Any) -> list[dict[str, float]]:
        history = self.require_model(trained=False).train(max_epochs, **train_kwargs)
        self._predicted = None
        return history

    def request_stop(self) -> None:
        if self.model is not None:
            self.model.request_stop()

    def save_model(self, path: Any, overwrite: bool = True) -> Any:
        return self.require_model(trained=False).save(path, overwrite=overwrite)

    def load_model(self, path: Any, device: str | None = None) -> Any:
        train.load_model(self, path, device)
        return self.model

    # -- graph, domains, cells ------------------------------------------------------------------
    suggest_dag = _method(graph.suggest_dag)
    auto_tiers = _method(graph.auto_tiers)
    undirected_pending = staticmethod(graph.undirected_pending)
    suggestion_message = staticmethod(graph.suggestion_message)

    @staticmethod
    def suggestion_ticks(suggestion: Any) -> tuple[dict[str, list[str]], list]:
        return suggestion.parents(), suggestion.undirected

    derive_domains = _method(domains.derive_domains)
    select = _method(cells.select)
    cells_in_polygons = _method(cells.cells_in_polygons)
    nearest_cell = _method(cells.nearest_cell)
    label_at = _method(cells.label_at)
    majority_label = _method(cells.majority_label)

    # -- interventions, overlays, trends ---------------------------------------------------------
    intervention_name = staticmethod(intervene.intervention_name)
    intervention_key = _method(intervene.intervention_key)
    compute_intervention = _method(intervene.compute_intervention)

    def intervene(self, do: Any, selection: Selection | None = None,
                  **kwargs: Any) -> Intervention:
        selection = selection or cells.select(self, "all")
        return self.add_intervention(intervene.compute_intervention(self, do, selection,
                                                                    **kwargs))

    gene_values = _method(_overlay.gene_values)
    magnitude = _method(_overlay.magnitude)
    concept_labels = _method(_overlay.concept_labels)
    predicted_labels = _method(_overlay.predicted_labels)
    overlay = _method(_overlay.make_overlay)
    shared_limits = _method(_overlay.shared_limits)
    top_genes = _method(_overlay.top_genes)
    age_trends = _method(trends.age_trends)
    TREND_FIELDS = trends.TREND_FIELDS
    top_trends = staticmethod(trends.top_trends)
    trends_message = staticmethod(trends.trends_message)
