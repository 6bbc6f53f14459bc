"""Training through napari's Train tab with and without the slowed spinner, in one process.

    OMP_NUM_THREADS=1 xvfb-run -a python -m benchmarks.napari_train --repeats 3

Opens a napari window at 1366 x 768 with the real MERFISH sample (4,788 cells x 200 genes)
and the CausCell dock, as tests/napari/test_screen_trained.py does, then trains the tiny model
for ``--epochs`` epochs (seed 0, cpu) three ways, in turn, ``--repeats`` times (so load on a
shared machine hits all three):

- ``napari spinner``: through the Train tab with napari's "in progress" spinner at its own
  33 frames a second (the code before the fix: ``_worker.THROTTLE`` swapped for a no-op);
- ``slowed spinner``: through the Train tab as shipped (a few frames a second);
- ``beside napari``: ``CausCell.train`` of the same model (its last validation loss equals the
  dock's) on a plain thread in the same process, the same window shown and its events
  processed, no progress bar (the reference).

For each run: wall time from the click to the end (model building included), the steady time
per epoch (``history`` time stamps, epoch 1 to the last), the process's CPU seconds (all its
threads: torch, Qt, the software OpenGL that composites the window), and the window repaints
(``UpdateRequest`` events of the main window). Prints medians and the ratios to the reference,
writes ``benchmarks/results/napari-train-<date>.json``. A first, unmeasured run imports
Lightning. Needs an X server (``xvfb-run -a``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np

from ._results import write_result

ROOT = Path(__file__).resolve().parents[1]
TINY = "tiny (tests, demos)"
CONCEPTS = ["age", "domain", "cell_type"]
EDGES = [("age", "cell_type"), ("domain", "cell_type")]
WAYS = ("napari spinner", "slowed spinner", "beside napari")


class _Window:
    """The napari window with the sample and the dock, and a repaint counter."""

    def __init__(self, epochs: int) -> None:
        import napari
        from qtpy.QtCore import QEvent, QObject
        from qtpy.QtWidgets import QApplication

        self.viewer = napari.Viewer(show=True)
        self.main = self.viewer.window._qt_window
        self.main.resize(1366, 768)
        self.viewer.open_sample("napari-causcell", "merfish_brain_aging")
        _, self.tabs = self.viewer.window.add_plugin_dock_widget("napari-causcell",
                                                                 "CausCell (all in tabs)")
        self.app = QApplication.instance()
        self.repaints = 0
        window = self

        class Count(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
                if obj is window.main and event.type() == QEvent.Type.UpdateRequest:
                    window.repaints += 1
                return False

        self._filter = Count()
        self.main.installEventFilter(self._filter)
        self._form(epochs)

    def _form(self, epochs: int) -> None:
        train = self.tabs.train
        self.tabs.show_tab("Train")
        train.set_concepts(CONCEPTS)
        for parent, child in EDGES:
            train.set_parent(child, parent)
        s = train.settings
        s.epochs.value, s.seed.value, s.model_size.value, s.device.value = epochs, 0, TINY, "cpu"

    def pump(self, seconds: float, until=None) -> None:
        """Process Qt events for ``seconds`` or, with ``until``, while ``until()`` is false."""
        end = time.perf_counter() + seconds
        while (until is not None and not until()) or (until is None and
                                                      time.perf_counter() < end):
            self.app.processEvents()
            time.sleep(0.005)


def _dock_run(win: _Window, spinner: bool) -> tuple[float, list]:
    import napari_causcell._napari._worker as worker

    class Off:
        def acquire(self) -> None: ...
        def release(self) -> None: ...

    real, train = worker.THROTTLE, win.tabs.train
    worker.THROTTLE = Off() if spinner else real
    try:
        t = time.perf_counter()
        train.train_btn.click()
        win.pump(0, until=lambda: not train.busy)
        wall = time.perf_counter() - t
    finally:
        worker.THROTTLE = real
    return wall, train.state.model.history


def _beside_run(win: _Window, epochs: int) -> tuple[float, list]:
    from napari_causcell import CausCell
    from napari_causcell.app.train import MODEL_SIZES

    train, out = win.tabs.train, {}
    concepts = train._checked_concepts()  # in the form's order: the model the dock trains
    t = time.perf_counter()
    model = CausCell(train.state.data, concepts, train.edges(), table_key=train.state.table_key,
                     seed=0, device="cpu", **MODEL_SIZES[TINY])
    thread = threading.Thread(target=lambda: out.update(h=model.train(epochs)))
    thread.start()
    win.pump(0, until=lambda: not thread.is_alive())
    return time.perf_counter() - t, out["h"]


def _measure(win: _Window, way: str, epochs: int) -> dict[str, float]:
    win.pump(1.0)  # napari hides its spinner after the last bar's deferred deletion
    win.repaints, cpu = 0, time.process_time()
    if way == "beside napari":
        wall, history = _beside_run(win, epochs)
    else:
        wall, history = _dock_run(win, spinner=way == "napari spinner")
    steady = (history[-1]["time"] - history[0]["time"]) / max(len(history) - 1, 1)
    return {"wall_s": wall, "steady_epoch_s": steady,
            "cpu_s": time.process_time() - cpu, "repaints_per_s": win.repaints / wall,
            "val_recon": history[-1]["val_recon"]}


def _summary(runs: dict[str, list[dict]]) -> dict:
    med = {w: {k: float(np.median([r[k] for r in rs])) for k in rs[0]} for w, rs in runs.items()}
    ref = med["beside napari"]
    ratio = {w: {k: m[k] / ref[k] for k in ("wall_s", "steady_epoch_s", "cpu_s")}
             for w, m in med.items()}
    paired = [o["steady_epoch_s"] / n["steady_epoch_s"]
              for o, n in zip(runs["napari spinner"], runs["slowed spinner"])]
    return {"median": med, "ratio_to_beside_napari": ratio,
            "median_paired_steady_ratio_napari_spinner_over_slowed": float(np.median(paired))}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        raise SystemExit("needs an X server: run under xvfb-run -a")
    import torch

    torch.set_num_threads(1)
    win = _Window(args.epochs)
    _beside_run(win, 1)  # imports Lightning, unmeasured
    runs: dict[str, list[dict]] = {w: [] for w in WAYS}
    for _ in range(args.repeats):
        for way in WAYS:
            runs[way].append(_measure(win, way, args.epochs))
            print(way, {k: round(v, 3) for k, v in runs[way][-1].items()}, flush=True)
    win.viewer.close()
    result = {"date": dt.date.today().isoformat(), "machine": platform.processor() or
              platform.machine(), "cpus": os.cpu_count(), "threads": 1, "args": vars(args),
              "display": "Xvfb (software OpenGL)", "runs": runs, **_summary(runs)}
    print(json.dumps({k: result[k] for k in result if k != "runs"}, indent=1))
    write_result(ROOT / "benchmarks" / "results", f"napari-train-{result['date']}", result)
    return result


if __name__ == "__main__":
    main()
