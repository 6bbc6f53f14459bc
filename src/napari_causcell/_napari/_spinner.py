"""napari's "in progress" spinner, slowed to two frames a second while our jobs run.

While any ``napari.utils.progress`` bar is open, napari animates a GIF in the status bar of
every viewer window (``ActivityToggleItem``: 90 frames of 30 ms, about 33 repaints a second).
A window that holds the OpenGL canvas is composited as a whole on every repaint, so with
software OpenGL (Xvfb, virtual machines, remote desktops) each frame of that spinner cost the
GUI thread about 25 ms: most of a core, taken from training on a small machine (3 epochs of
the tiny model on the MERFISH sample took 2 to 4 times as long through the Train tab as beside
it; docs/benchmarks.md, "Training in napari"). While a CausCell job runs,
:data:`THROTTLE` sets the spinner's speed (``QMovie.setSpeed``, public Qt API) so that it shows
:data:`FRAMES_PER_SECOND` frames a second: it still turns, slowly. napari still starts, stops
and hides it; its speed is given back when the last job ends.
"""

from __future__ import annotations

from collections.abc import Iterator

from qtpy.QtGui import QMovie
from qtpy.QtWidgets import QApplication, QLabel

__all__ = ["FRAMES_PER_SECOND", "THROTTLE", "SpinnerThrottle", "activity_spinners", "slow_speed"]

#: Frames a second napari's spinner shows while a CausCell job runs (napari: about 33); 4
#: still cost a third more time per epoch under Xvfb, 2 about a tenth (benchmarks.napari_train).
FRAMES_PER_SECOND = 2
_NAPARI_FRAME_MS = 30  # loading.gif's frame delay, when the movie does not say


def activity_spinners() -> Iterator[QMovie]:
    """The movies of napari's activity indicators in every top-level window (none when napari
    renames its private ``ActivityToggleItem``: the spinner then runs as napari made it)."""
    app = QApplication.instance()
    if app is None:
        return
    for top in app.topLevelWidgets():
        for label in top.findChildren(QLabel):
            movie = label.movie()
            if movie is not None and type(label.parent()).__name__ == "ActivityToggleItem":
                yield movie


def slow_speed(movie: QMovie, per_second: float = FRAMES_PER_SECOND) -> int:
    """The ``QMovie`` speed (percent) that shows ``per_second`` frames a second (never
    faster than the movie's own speed)."""
    delay = movie.nextFrameDelay() if movie.state() == QMovie.MovieState.Running else 0
    delay = delay * movie.speed() / 100 if delay > 0 else _NAPARI_FRAME_MS
    return max(1, min(movie.speed(), round(delay * per_second / 10)))


class SpinnerThrottle:
    """Slows napari's spinners while :meth:`acquire` calls outnumber :meth:`release` calls
    (``jobs``); ``saved`` holds each slowed movie and the speed to give back."""

    def __init__(self, per_second: float = FRAMES_PER_SECOND) -> None:
        self.per_second = per_second
        self.jobs = 0
        self.saved: list[tuple[QMovie, int]] = []

    def acquire(self) -> None:
        """A job started (after its progress bar, which starts the spinner)."""
        self.jobs += 1
        mine = [m for m, _ in self.saved]
        for movie in activity_spinners():
            if movie not in mine:
                self.saved.append((movie, movie.speed()))
                movie.setSpeed(slow_speed(movie, self.per_second))

    def release(self) -> None:
        """A job ended; after the last one the spinners get their speed back."""
        self.jobs = max(0, self.jobs - 1)
        if self.jobs:
            return
        for movie, speed in self.saved:
            try:
                movie.setSpeed(speed)
            except RuntimeError:  # its window was closed meanwhile
                pass
        self.saved = []


#: The one throttle all dock widgets share (their jobs may overlap).
THROTTLE = SpinnerThrottle()
