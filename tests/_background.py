"""Slow subprocess jobs (the Sphinx build, the example notebooks) run in the background while
the rest of the suite runs.

The test process trains on one thread, so on a 2-core machine the second core is idle for most
of a run. When pytest has collected a test module that defines ``background_jobs(selected,
mktemp)`` (``selected``: the names of its tests that will run; ``mktemp(name)``: a fresh
folder), the conftest queues the :class:`Job` objects it returns and one thread runs them, one
after another, in subprocesses. A test asks for its job's result with :func:`result`: it waits
for a job already running or done, and runs a job not started yet itself (so a test never waits
behind another one). No job starts while a test that keeps both cores busy itself runs (the
conftest's ``BOTH_CORES``). ``CAUSCELL_TEST_BACKGROUND=0`` turns this off: every job then runs in the
foreground, in its test, as before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: off with CAUSCELL_TEST_BACKGROUND=0, and in pytest-xdist workers (each collects every test)
ENABLED = (os.environ.get("CAUSCELL_TEST_BACKGROUND", "1") != "0"
           and "PYTEST_XDIST_WORKER" not in os.environ)


@dataclass
class Job:
    """``cmd`` run in ``cwd`` with ``os.environ`` plus ``env``; ``folder``: its scratch folder."""

    name: str
    cmd: Sequence[str]
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    timeout: float = 1800
    result: subprocess.CompletedProcess | None = None
    _claimed: bool = False
    _done: threading.Event = field(default_factory=threading.Event)
    _proc: subprocess.Popen | None = None

    def run(self) -> None:
        """Run the command (once); ``result`` gets its exit status and output."""
        try:
            self._proc = subprocess.Popen(
                list(self.cmd), cwd=self.cwd, env={**os.environ, **self.env}, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            if _stopping.is_set():
                self.stop()
            try:
                out, err = self._proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self.stop()
                out, err = self._proc.communicate()
                err += f"\n[killed after {self.timeout:.0f} s]"
            self.result = subprocess.CompletedProcess(self.cmd, self._proc.returncode, out, err)
        except OSError as exc:  # the command could not start
            self.result = subprocess.CompletedProcess(self.cmd, -1, "", repr(exc))
        finally:
            self._done.set()

    def stop(self) -> None:
        """End the command and what it started (a notebook's kernel) if it is still running."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)  # its own session: its group
            except ProcessLookupError:
                pass


_lock = threading.Lock()
_jobs: dict[str, Job] = {}
_queue: list[Job] = []
_stopping = threading.Event()
_may_start = threading.Event()  # cleared while a test that uses both cores itself runs
_may_start.set()


def _claim(job: Job) -> bool:
    with _lock:
        if job._claimed:
            return False
        job._claimed = True
        return True


def _worker() -> None:
    for job in list(_queue):
        _may_start.wait()
        if _claim(job):
            job.run()


def hold(on: bool) -> None:
    """While ``on``, start no new job (the running one goes on): for the tests that keep both
    cores busy themselves (a browser and a kernel, two training processes)."""
    if on:
        _may_start.clear()
    else:
        _may_start.set()


def submit(jobs: list[Job]) -> None:
    """Queue ``jobs`` (run in this order by one background thread, started by :func:`start`)."""
    for job in jobs:
        _jobs[job.name] = job
        _queue.append(job)


def start() -> None:
    if _queue and ENABLED:
        threading.Thread(target=_worker, name="causcell-test-background", daemon=True).start()


def stop() -> None:
    """Stop every job still running, and let no queued one start."""
    _stopping.set()
    _may_start.set()
    for job in _queue:
        _claim(job)
        job.stop()


def result(name: str, make: Callable[[], Job]) -> Job:
    """Job ``name``, finished: the queued one (waited for, or run here if it has not started),
    else ``make()`` run here."""
    job = _jobs.get(name)
    if job is None:
        job = make()
        job._claimed = True
        job.run()
    elif _claim(job):
        job.run()
    job._done.wait()
    return job
