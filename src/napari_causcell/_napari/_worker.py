"""The app's job, run by napari's ``thread_worker`` with a ``napari.utils.progress`` bar.

This is the one place the napari front end turns a :class:`napari_causcell.app.Job` into a
worker: every dock widget starts its jobs through :func:`start_worker`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..app import Job, Progress
from ._spinner import THROTTLE

__all__ = ["start_worker"]


def start_worker(
    job: Job, *, returned: Callable[[Any], Any] | None = None,
    progress: Callable[[Progress], Any] | None = None,
    errored: Callable[[BaseException], Any] | None = None,
    finished: Callable[[], Any] | None = None,
) -> Any:
    """Start ``job`` on a napari ``GeneratorWorker``; returns the worker.

    The worker's ``pbar`` (a ``napari.utils.progress`` with ``job.total`` steps, or 100 for
    a percentage) follows each yielded :class:`~napari_causcell.app.Progress`; it is moved
    on the GUI thread, where the ``yielded`` signal arrives. ``worker.job`` is the job (to
    cancel it). While it runs, napari's "in progress" spinner shows two frames a second,
    not 33 (:mod:`._spinner`: each frame costs the GUI thread a whole-window composite).
    """
    from napari.qt.threading import thread_worker
    from napari.utils import progress as progress_bar

    worker = thread_worker(job.__iter__, start_thread=False)()
    total = job.total or 100
    pbar = progress_bar(total=total, desc=job.title)

    def on_yielded(p: Progress) -> None:
        if p.fraction is not None:
            done = min(total, round(p.fraction * total))
            if done > pbar.n:
                pbar.update(done - pbar.n)
        if progress is not None:
            progress(p)

    worker.yielded.connect(on_yielded)
    if returned is not None:
        worker.returned.connect(returned)
    if errored is not None:
        worker.errored.connect(errored)
    worker.finished.connect(pbar.close)
    worker.finished.connect(THROTTLE.release)
    if finished is not None:
        worker.finished.connect(finished)
    worker.pbar, worker.job = pbar, job
    THROTTLE.acquire()
    worker.start()
    return worker
