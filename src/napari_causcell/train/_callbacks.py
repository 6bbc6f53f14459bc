"""Callbacks for what Lightning lacks or does differently.

Their order in the trainer matters and is set by :func:`~._runner.build_callbacks`: at the end
of an epoch the averaged weights are swapped in (:class:`EMA`), the epoch is scored and
recorded (:class:`EpochRecord`), the best weights kept (:class:`BestWeights`), the user's
callbacks called (:class:`Progress`), the weights kept as the last good ones
(:class:`LastGood`) and the stop conditions checked (:class:`Stop`).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as lp
import numpy as np
import torch

from ..errors import TrainingError
from ._plan import TrainingPlan
from ._progress import MONITOR, TrainProgress

MIN_DELTA = 1e-4  # an improvement of the selected validation loss


class EMA(lp.Callback):
    """Exponential moving average of the main parameters, swapped in between epochs.

    Lightning's ``WeightAveraging`` averages the whole module (adversaries and buffers too) and
    swaps around its own validation loop; here validation, selection and the returned model
    use the average of the main parameters. The decay after ``n`` steps is
    ``min(decay, (1 + n) / (10 + n))``.
    """

    def __init__(self, decay: float) -> None:
        self.decay, self.n, self.swapped = decay, 0, False
        self.params: list[torch.Tensor] = []
        self.shadow: list[torch.Tensor] = []

    def on_train_start(self, trainer: lp.Trainer, plan: TrainingPlan) -> None:
        self.params = list(plan.module.main_parameters())
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def on_train_batch_end(self, trainer, plan, outputs, batch, batch_idx) -> None:
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))  # short memory at the start
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @torch.no_grad()
    def swap(self) -> None:
        for p, s in zip(self.params, self.shadow):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)
        self.swapped = not self.swapped

    def on_train_epoch_start(self, trainer, plan) -> None:
        if self.swapped:
            self.swap()  # back to the raw weights to go on training

    def on_train_epoch_end(self, trainer, plan) -> None:
        if not self.swapped:
            self.swap()  # validate and keep the averaged weights

    def finish(self) -> None:
        """The averaged weights in the module, whatever the exit."""
        if self.params and not self.swapped:
            self.swap()


class EpochRecord(lp.Callback):
    """Scores the epoch (training and validation losses) and appends it to ``history``."""

    def __init__(self, history: list[dict[str, float]], select: str, epoch0: int) -> None:
        self.history, self.select, self.epoch0 = history, select, epoch0
        self.start = time.perf_counter()
        self.losses: dict[str, float] = {}
        self.val: dict[str, float] = {}
        self.monitor = np.inf

    def on_train_start(self, trainer, plan) -> None:
        self.start = time.perf_counter()  # history times count from here, after set-up

    def on_train_epoch_end(self, trainer: lp.Trainer, plan: TrainingPlan) -> None:
        self.losses, self.val = plan.epoch_losses(), plan.evaluate()
        epoch = self.epoch0 + trainer.current_epoch + 1
        if not all(np.isfinite(v) for v in (*self.losses.values(), *self.val.values())):
            raise TrainingError(
                f"Training stopped: the epoch loss became NaN or infinite at epoch {epoch} "
                f"(step {plan.steps}). Lower the learning rate (lr={plan.lr:g}) or check "
                "the data.")
        record = {"epoch": epoch, "step": plan.steps, "time": time.perf_counter() - self.start}
        record.update({f"train_{k}": v for k, v in self.losses.items()})
        record.update({f"val_{k}": v for k, v in self.val.items()})
        self.history.append(record)
        self.monitor = sum(self.val.get(k, self.losses.get(k, 0.0))
                           for k in MONITOR[self.select])
        plan.log("val_select", float(self.monitor), on_epoch=True, prog_bar=True)


class BestWeights(lp.Callback):
    """Keeps the weights with the best selected validation loss, for :meth:`restore`."""

    def __init__(self, record: EpochRecord) -> None:
        self.record, self.best = record, np.inf
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer, plan: TrainingPlan) -> None:
        if self.record.monitor < self.best - MIN_DELTA:
            self.best = float(self.record.monitor)
            self.state = copy.deepcopy(plan.module.state_dict())

    def restore(self, module: torch.nn.Module) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)


class Progress(lp.Callback):
    """Calls the user's callbacks with a :class:`TrainProgress` after every epoch; a callback
    returning ``False`` (or calling ``progress.stop()``) asks training to stop."""

    def __init__(self, callbacks: Sequence[Callable[[TrainProgress], Any]], record: EpochRecord,
                 stop: threading.Event, max_epochs: int) -> None:
        self.callbacks, self.record, self.stop, self.max_epochs = callbacks, record, stop, \
            max_epochs

    def on_train_epoch_end(self, trainer, plan: TrainingPlan) -> None:
        r = self.record
        prog = TrainProgress(r.epoch0 + trainer.current_epoch + 1, r.epoch0 + self.max_epochs,
                             plan.steps, r.losses, r.val, time.perf_counter() - r.start,
                             self.stop)
        for cb in self.callbacks:
            if cb(prog) is False:
                self.stop.set()


class LastGood(lp.Callback):
    """The weights after the last epoch whose losses were all finite (a fallback)."""

    def __init__(self) -> None:
        self.epochs, self.state = 0, None

    def on_train_epoch_end(self, trainer, plan: TrainingPlan) -> None:
        self.epochs += 1
        self.state = plan.state()


class Stop(lp.Callback):
    """Stops at the next step once a stop is requested (:meth:`CausCell.request_stop`, a
    callback) or ``max_time`` seconds have passed; every process stops at the same step."""

    def __init__(self, stop: threading.Event, max_time: float | None) -> None:
        self.event, self.max_time = stop, max_time
        self.start = time.perf_counter()
        self.reason = "max_epochs"

    def on_train_start(self, trainer, plan) -> None:
        self.start = time.perf_counter()  # max_time counts the training, not the set-up pass

    def _flags(self, trainer: lp.Trainer) -> tuple[bool, bool]:
        cancelled = self.event.is_set()
        timed_out = bool(self.max_time and time.perf_counter() - self.start > self.max_time)
        if trainer.world_size > 1:
            s = trainer.strategy
            cancelled = s.reduce_boolean_decision(cancelled, all=False)
            timed_out = s.reduce_boolean_decision(timed_out, all=False)
        return cancelled, timed_out

    def on_train_batch_end(self, trainer, plan, outputs, batch, batch_idx) -> None:
        if any(self._flags(trainer)):
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer, plan) -> None:
        cancelled, timed_out = self._flags(trainer)
        if cancelled or timed_out:
            self.reason = "cancelled" if cancelled else "max_time"
            trainer.should_stop = True
