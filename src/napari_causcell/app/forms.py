"""What a front end's form (a napari dock widget, a Jupyter panel) does with a job, once.

:class:`JobHost` is a mixin: the front end provides :meth:`message`, :attr:`busy` and
:meth:`_launch` (its adapter: napari's ``thread_worker`` or a thread); the mixin validates
the request, refuses a second job, shows progress text and cancels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import graph
from .jobs import BUSY, USER_ERRORS, Job, Progress, describe_error

__all__ = ["GraphForm", "JobHost", "readiness_text"]


def readiness_text(state: Any) -> str:
    """The status line a form shows when the model of ``state`` (an
    :class:`~napari_causcell.app.AppState`) appears, changes or finishes training, so that a
    line such as "Train a model first" does not stay after training."""
    model = getattr(state, "model", None)
    if model is None:
        return "No model yet: train one (Train) or load a saved one."
    if not model.is_trained:
        return "The model is not trained yet: train it (Train) or load a trained one."
    edges = ", ".join(f"{a} -> {b}" for a, b in model.edges) or "none"
    return f"Model ready: concepts {', '.join(model.concepts)}; graph {edges}."


class JobHost:
    """One job at a time for a form (mixin; no ``__init__``)."""

    job: Job | None = None

    # -- provided by the front end --------------------------------------------------------
    def message(self, text: str, error: bool = False) -> None:  # pragma: no cover
        raise NotImplementedError

    @property
    def busy(self) -> bool:  # pragma: no cover
        raise NotImplementedError

    def _launch(self, job: Job, returned: Callable[[Any], Any],
                progress: Callable[[Progress], Any]) -> None:  # pragma: no cover
        """Start ``job``; call ``self._job_failed(err)`` and ``self._job_finished()``."""
        raise NotImplementedError

    def _set_busy(self, busy: bool) -> None:
        """Hook: enable or disable the form's buttons."""

    # -- shared ----------------------------------------------------------------------------
    def submit(self, make_job: Callable[[], Job], returned: Callable[[Any], Any],
               progress: Callable[[Progress], Any] | None = None) -> Job | None:
        """Validate (``make_job()`` builds the job from a request) and start it.

        Returns the job, or ``None`` when it was refused (the message says why).
        """
        if self.busy:
            self.message(BUSY, error=True)
            return None
        try:
            job = make_job()
        except USER_ERRORS as err:
            self.message(describe_error(err), error=True)
            return None
        self.job = job

        def on_progress(p: Progress) -> None:
            # a front end may deliver a report after the result (napari's thread_worker
            # does): it is stale then, and must not replace the final message
            if job.done:
                return
            if p.text:
                self.message(p.text)
            if progress is not None:
                progress(p)

        self._set_busy(True)
        self._launch(job, returned, on_progress)
        return job

    def cancel(self) -> None:
        """Cancel the running job (training stops after its step, keeping the best weights)."""
        if self.job is not None and self.busy:
            self.job.cancel()
            self.message(self.job.cancel_text)

    def _job_failed(self, err: BaseException) -> None:
        self.message(describe_error(err), error=True)

    def _job_finished(self) -> None:
        self._set_busy(False)


class GraphForm:
    """Parent ticks with a suggested graph (mixin of the Train forms; no ``__init__``).

    The front end provides :meth:`parents` (the ticks), :meth:`message` and the drawing;
    the mixin keeps the suggestion and says which undirected edges are left to decide.
    """

    suggestion: Any = None

    def parents(self) -> dict[str, list[str]]:  # pragma: no cover
        raise NotImplementedError

    def accept(self, result: graph.SuggestResult, concepts: list[str]) -> bool:
        """Keep a suggestion made over ``concepts`` (refused, with a message, when the ticked
        concepts changed while it ran)."""
        if not result.matches(concepts):
            self.message(graph.CHANGED_WHILE_SUGGESTING, error=True)
            return False
        self.suggestion = result.suggestion
        return True

    def undirected(self) -> tuple[list[str], str]:
        """``(what needs a look, the line to show)``: see :func:`graph.review`. The first is
        empty only when the line is good news (front ends show it as such, e.g. green):
        undirected edges, ticks into a where/when concept and confounds make it non-empty."""
        return graph.review(self.suggestion, self.parents())

    def undirected_pending(self) -> list[tuple[str, str]]:
        """Suggested undirected edges for which neither direction is ticked yet."""
        return graph.pending_text(self.suggestion, self.parents())[0]
