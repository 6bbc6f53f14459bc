"""What every panel shares: a status line and one background job at a time (on a thread)."""

from __future__ import annotations

import html
import io
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from ..app import AppState, Job, Progress, start_thread
from ..app.forms import JobHost

__all__ = ["Panel", "figure_png", "new_figure", "set_options"]


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """PNG bytes of a matplotlib figure (no pyplot state involved), cropped to everything
    drawn, so no colour-bar label or legend is clipped."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    return buf.getvalue()


def new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def set_options(dropdown: widgets.Dropdown, options: Sequence[Any]) -> None:
    """Replace a dropdown's options, keeping its value when still offered (else the first)."""
    options = list(options)
    keep = dropdown.value if dropdown.value in options else (options[0] if options else None)
    if list(dropdown.options) == options and dropdown.value == keep:
        return
    if list(dropdown.options) != options:
        dropdown.options = options
    dropdown.value = keep


class Panel(widgets.VBox, JobHost):
    """A panel over an :class:`~napari_causcell.app.AppState`: a status line and at most one
    job at a time (:class:`~napari_causcell.app.forms.JobHost`), run on a thread by
    :func:`napari_causcell.app.start_thread`."""

    def __init__(self, state: AppState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.status = widgets.HTML()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # -- status ----------------------------------------------------------------------------
    def message(self, text: str, error: bool = False) -> None:
        colour = "#b00020" if error else "inherit"
        self.status.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

    @property
    def status_text(self) -> str:
        """The status line as plain text."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value))

    # -- jobs ------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, make_job: Callable[[], Job], returned: Callable[[Any], Any],
              progress: Callable[[Progress], Any] | None = None) -> bool:
        """:meth:`~napari_causcell.app.forms.JobHost.submit`; whether the job started."""
        return self.submit(make_job, returned, progress) is not None

    def _on_fraction(self, p: Progress) -> None:
        """Move the panel's ``progress`` bar (a ``FloatProgress`` over ``[0, 1]``)."""
        if p.fraction is not None:
            self.progress.value = p.fraction

    def _launch(self, job: Job, returned: Callable[[Any], Any],
                progress: Callable[[Progress], Any]) -> None:
        self.error = None
        self._thread = start_thread(job, progress=progress, returned=returned,
                                    errored=self._job_failed, finished=self._job_finished)

    def _job_failed(self, err: BaseException) -> None:
        self.error = err
        super()._job_failed(err)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job ends (for scripts and tests); re-raise its error."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"{type(self).__name__} job still running after {timeout} s")
        if self.error is not None:
            raise self.error
