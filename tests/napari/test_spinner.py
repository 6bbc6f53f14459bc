"""napari's "in progress" spinner is slowed to a few frames a second while a CausCell job runs
(each of its frames repaints the whole window, canvas included: with software OpenGL that took
most of a core from training; docs/benchmarks.md, "Training in napari").

Run: ``OMP_NUM_THREADS=1 xvfb-run -a pytest tests/napari/test_spinner.py``.
"""

from __future__ import annotations

import threading

import pytest

from _qt_env import why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)

from napari_causcell._napari._spinner import (  # noqa: E402
    FRAMES_PER_SECOND,
    THROTTLE,
    activity_spinners,
)
from napari_causcell._napari._worker import start_worker  # noqa: E402
from napari_causcell.app import Job, Progress  # noqa: E402


def _job(release: threading.Event, steps: int = 3) -> Job:
    def run(job):
        for i in range(steps):
            release.wait(10)
            yield Progress((i + 1) / steps, f"step {i + 1}")
        return steps

    return Job(run, title="spinner test", total=steps)


def _speeds() -> list[int]:
    return [m.speed() for m in activity_spinners()]


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer(show=True)


def test_spinner_slowed_while_a_job_runs_and_given_back(qtbot, viewer):
    assert _speeds() == [100]  # napari's own speed, before any job
    release = threading.Event()
    worker = start_worker(_job(release))
    (movie,) = activity_spinners()
    assert THROTTLE.jobs == 1 and movie.speed() < 100
    # frames a second napari's 30 ms GIF shows at that speed: a few, not 33
    assert 1000 / (30 * 100 / movie.speed()) <= FRAMES_PER_SECOND + 0.5
    frames = []
    movie.frameChanged.connect(frames.append)
    qtbot.wait(1500)  # the spinner still turns (the user sees that work goes on)...
    movie.frameChanged.disconnect(frames.append)
    assert 1 <= len(frames) <= 1.5 * FRAMES_PER_SECOND + 2  # ... a few times a second
    release.set()
    qtbot.waitUntil(lambda: worker.job.done and THROTTLE.jobs == 0, timeout=10_000)
    assert _speeds() == [100] and THROTTLE.saved == []


def test_overlapping_jobs_keep_it_slow_until_the_last_ends(qtbot, viewer):
    first, second = threading.Event(), threading.Event()
    w1, w2 = start_worker(_job(first)), start_worker(_job(second))
    assert THROTTLE.jobs == 2 and all(s < 100 for s in _speeds())
    first.set()
    qtbot.waitUntil(lambda: THROTTLE.jobs == 1, timeout=10_000)
    assert w1.job.done and all(s < 100 for s in _speeds())  # the second still runs
    second.set()
    qtbot.waitUntil(lambda: THROTTLE.jobs == 0, timeout=10_000)
    assert w2.job.done and _speeds() == [100]
