"""The job abstraction: progress, results, errors, cancelling, the thread runner."""

from __future__ import annotations

import threading
import time

import pytest

from napari_causcell.app import (
    BUSY,
    Cancelled,
    Job,
    Progress,
    describe_error,
    pump,
    start_thread,
)
from napari_causcell.app.forms import JobHost
from napari_causcell.errors import DataError


def _counting(n: int) -> Job[int]:
    def steps(job):
        for i in range(n):
            job.check()
            yield Progress((i + 1) / n, f"step {i + 1}")
        return n * 10

    return Job(steps, title="count", total=n)


def test_run_yields_progress_and_returns_the_result():
    seen = []
    job = _counting(3)
    assert job.run(seen.append) == 30 and job.done and job.result == 30
    assert [p.fraction for p in seen] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert [p.text for p in seen] == ["step 1", "step 2", "step 3"]


def test_cancel_stops_at_the_next_check_and_runs_the_hooks():
    job = _counting(5)
    hooked = []
    job.on_cancel(lambda: hooked.append("a"))
    it = iter(job)
    next(it)
    job.cancel()
    with pytest.raises(Cancelled, match="count: cancelled"):
        next(it)
    assert hooked == ["a"] and not job.done
    job.on_cancel(lambda: hooked.append("late"))  # registered after: runs at once
    assert hooked == ["a", "late"]


def test_pump_turns_callbacks_into_progress_and_reraises_errors():
    def call(report):
        for f in (0.25, 0.5, 1.0):
            report(f)
        return "done"

    job = Job(lambda j: pump(j, call, lambda f: Progress(f)), title="pump")
    seen = []
    assert job.run(seen.append) == "done"
    assert [p.fraction for p in seen] == [0.25, 0.5, 1.0]

    def failing(report):
        report(0.1)
        raise DataError("bad input")

    job = Job(lambda j: pump(j, failing, lambda f: Progress(f)), title="fail")
    with pytest.raises(DataError, match="bad input"):
        job.run()


def test_pump_aborts_the_call_when_cancelled():
    reached = []

    def slow(report):
        for i in range(1000):
            report(i / 1000)
            reached.append(i)
            time.sleep(0.001)
        return "never"

    job = Job(lambda j: pump(j, slow, lambda f: Progress(f)), title="slow")
    it = iter(job)
    next(it)
    job.cancel()
    with pytest.raises(Cancelled):
        for _ in it:
            pass
    assert len(reached) < 1000


def test_start_thread_calls_back_on_its_thread():
    done, finished = threading.Event(), []
    out = {}
    start_thread(_counting(2), returned=lambda r: out.setdefault("r", r),
                 finished=lambda: (finished.append(1), done.set()))
    assert done.wait(10) and out == {"r": 20} and finished == [1]
    done.clear()

    def bad(job):
        yield Progress(0.5)
        raise RuntimeError("boom")

    start_thread(Job(bad, title="bad"), errored=lambda e: out.setdefault("e", e),
                 finished=done.set)
    assert done.wait(10) and isinstance(out["e"], RuntimeError)


def test_describe_error_tells_refusals_from_failures():
    assert describe_error(DataError("no cells")) == "Refused: no cells"
    assert describe_error(RuntimeError("crash")) == "Failed: RuntimeError: crash"
    assert describe_error(Cancelled("x: cancelled.")) == "x: cancelled."


class _Form(JobHost):
    """A front end in miniature: runs jobs synchronously."""

    def __init__(self):
        self.lines, self.running, self.results = [], False, []

    def message(self, text, error=False):
        self.lines.append(("error: " if error else "") + text)

    @property
    def busy(self):
        return self.running

    def _launch(self, job, returned, progress):
        try:
            returned(job.run(progress))
        except Exception as err:  # noqa: BLE001
            self._job_failed(err)
        finally:
            self._job_finished()


def test_a_report_delivered_after_the_result_is_ignored():
    """napari's thread_worker can deliver a yielded report after ``returned``: it must not
    replace the final message (it did: "Epoch 8/500 ..." stayed after training ended)."""

    class Late(_Form):
        def _launch(self, job, returned, progress):
            reports = list(job)  # the job runs; its reports are delivered late
            returned(job.result)
            self.message("done")
            for p in reports:
                progress(p)
            self._job_finished()

    form, seen = Late(), []
    form.submit(lambda: _counting(3), form.results.append, seen.append)
    assert form.results == [30] and form.lines == ["done"] and seen == []


def test_job_host_validates_refuses_when_busy_and_reports():
    form = _Form()

    def invalid():
        raise DataError("Choose a concept.")

    assert form.submit(invalid, form.results.append) is None
    assert form.lines == ["error: Refused: Choose a concept."]
    assert form.submit(lambda: _counting(2), form.results.append) is not None
    assert form.results == [20] and form.lines[-1] == "step 2"
    form.running = True
    assert form.submit(lambda: _counting(2), form.results.append) is None
    assert form.lines[-1] == "error: " + BUSY
