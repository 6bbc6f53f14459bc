"""Console helpers of the command line and the demo: progress lines, Ctrl-C that stops
training gracefully."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["progress_printer", "stop_on_interrupt"]


@contextlib.contextmanager
def stop_on_interrupt(model: Any) -> Iterator[None]:
    """While active, a first Ctrl-C asks ``model`` to stop training (keeping its best
    weights); a second one interrupts as usual. No-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        model.request_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nStopping training after this step (Ctrl-C again to abort)...", flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def progress_printer(log: Callable[[str], Any], every_s: float = 10.0) -> Callable:
    """Training callback that logs one line at most every ``every_s`` seconds (and at the
    first epoch)."""
    from .train import validation_loss

    last = [-math.inf]

    def callback(p) -> None:
        if p.elapsed - last[0] >= every_s or p.epoch == 1:
            last[0] = p.elapsed
            val = validation_loss(p.val_losses)
            val = math.nan if val is None else val
            log(f"  epoch {p.epoch:>4}/{p.max_epochs}  train loss {p.losses.get('total', 0):.4f}"
                f"  val recon {val:.4f}  {p.elapsed:6.1f} s")

    return callback
