"""One job abstraction for every workflow: progress as a generator, cancellable, UI-free.

A :class:`Job` wraps a generator function ``steps(job)`` that yields :class:`Progress` and
returns the workflow's result. The same job runs

- synchronously: :meth:`Job.run` (scripts, tests);
- on a plain thread: :func:`start_thread` (the Jupyter panels);
- on napari's ``thread_worker``: ``napari_causcell._napari._worker.start_worker`` (the dock
  widgets), which moves a ``napari.utils.progress`` bar.

Long library calls that report through a callback (training, sampling) are turned into
yields by :func:`pump`, which runs the call on a helper thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..errors import CausCellError

__all__ = ["BUSY", "USER_ERRORS", "Cancelled", "Job", "Progress", "describe_error", "pump",
           "start_thread"]

R = TypeVar("R")
Steps = Generator["Progress", None, R]


@dataclass(frozen=True)
class Progress:
    """One progress report.

    ``fraction`` is in ``[0, 1]`` (``None``: unknown); ``text`` a status line for the user;
    ``data`` whatever the workflow adds (e.g. the per-epoch losses of training).
    """

    fraction: float | None = None
    text: str = ""
    data: Any = None


class Cancelled(CausCellError):
    """The job was cancelled before it produced a result."""


#: Shown when a second job is asked for while one runs.
BUSY = "Busy: wait for the running job (or cancel it)."

#: Errors a user can cause with an input: shown as "Refused: ...", not as a failure.
USER_ERRORS = (CausCellError, ValueError, KeyError, OSError)


def describe_error(err: BaseException) -> str:
    """The status line for an error a job or a request raised."""
    if isinstance(err, Cancelled):
        return str(err)
    if isinstance(err, USER_ERRORS):
        return f"Refused: {err}"
    return f"Failed: {type(err).__name__}: {err}"


class Job(Generic[R]):
    """A cancellable run of one workflow.

    Parameters
    ----------
    steps
        ``steps(job)``: a generator yielding :class:`Progress`, returning the result. It
        should call :meth:`check` between steps (or register :meth:`on_cancel`).
    title
        Shown on progress bars (``"CausCell training"``).
    total
        Number of steps a progress bar shows (e.g. epochs); ``None`` for a percentage.
    cancel_text
        What the front end shows when the user cancels.
    """

    def __init__(self, steps: Callable[[Job], Steps], *, title: str,
                 total: int | None = None, cancel_text: str = "Cancelling...") -> None:
        self.title = title
        self.total = total
        self.cancel_text = cancel_text
        self._steps = steps
        self._cancel = threading.Event()
        self._hooks: list[Callable[[], Any]] = []
        self.result: R | None = None
        self.done = False

    # -- cancelling -----------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the job to stop (thread-safe); it ends at its next check."""
        self._cancel.set()
        for hook in list(self._hooks):
            hook()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def on_cancel(self, hook: Callable[[], Any]) -> None:
        """Call ``hook()`` when the job is cancelled (now, if it already is)."""
        self._hooks.append(hook)
        if self.cancelled:
            hook()

    def check(self) -> None:
        """Raise :class:`Cancelled` when the job was cancelled."""
        if self.cancelled:
            raise Cancelled(f"{self.title}: cancelled.")

    # -- running ----------------------------------------------------------------------------
    def __iter__(self) -> Steps:
        self.result = yield from self._steps(self)
        self.done = True
        return self.result

    def run(self, on_progress: Callable[[Progress], Any] | None = None) -> R:
        """Run to the end in this thread and return the result."""
        for p in self:
            if on_progress is not None:
                on_progress(p)
        return self.result  # type: ignore[return-value]


def pump(job: Job, call: Callable[[Callable[[Any], None]], R],
         to_progress: Callable[[Any], Progress], *, abort: bool = True) -> Steps:
    """Yield :class:`Progress` while ``call(report)`` runs on a helper thread.

    ``call`` receives ``report(item)``, which the library calls with each progress item
    (a fraction, a ``TrainProgress``); each becomes ``to_progress(item)``. With ``abort``,
    ``report`` raises :class:`Cancelled` once the job is cancelled, which ends the library
    call; otherwise the job's cancel hooks must stop it. Returns ``call``'s result.
    """
    items: queue.Queue = queue.Queue()
    out: dict[str, Any] = {}

    def report(item: Any) -> None:
        if abort:
            job.check()
        items.put(item)

    def run() -> None:
        try:
            out["result"] = call(report)
        except BaseException as err:  # noqa: BLE001 - re-raised on the job's thread
            out["error"] = err
        finally:
            items.put(_END)

    thread = threading.Thread(target=run, name=f"causcell: {job.title}", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not _END:
            yield to_progress(item)
    finally:
        if thread.is_alive():  # the consumer stopped early: stop the call too
            job.cancel()
            thread.join()
    if "error" in out:
        raise out["error"]
    return out["result"]


_END = object()


def start_thread(
    job: Job[R], *, progress: Callable[[Progress], Any] | None = None,
    returned: Callable[[R], Any] | None = None,
    errored: Callable[[BaseException], Any] | None = None,
    finished: Callable[[], Any] | None = None,
) -> threading.Thread:
    """Run ``job`` on a daemon thread; the callbacks run on that thread too."""

    def run() -> None:
        try:
            result = job.run(progress)
            if returned is not None:
                returned(result)
        except BaseException as err:  # noqa: BLE001 - handed to the front end
            if errored is None:
                raise
            errored(err)
        finally:
            if finished is not None:
                finished()

    thread = threading.Thread(target=run, name=f"causcell: {job.title}", daemon=True)
    thread.start()
    return thread
