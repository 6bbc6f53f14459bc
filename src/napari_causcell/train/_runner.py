"""The runner: builds the Lightning ``Trainer`` for one :meth:`CausCell.train` call and turns
its end (finished, stopped, failed) into the weights the model keeps."""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as lp
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.strategies import DDPStrategy

from ..errors import SettingError, TrainingError
from ..model import CausCellModule, LossWeights
from ._callbacks import EMA, BestWeights, EpochRecord, LastGood, Progress, Stop
from ._data import TrainData
from ._plan import TrainingPlan

PRECISIONS = {"32": "32-true", "32-true": "32-true", "bf16": "bf16-mixed",
              "bf16-mixed": "bf16-mixed"}


@dataclass
class TrainSettings:
    """Everything :meth:`CausCell.train` passes on to the runner."""

    max_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    early_stopping: bool
    patience: int
    max_time: float | None
    weights: LossWeights
    select: str
    ema: float
    precision: str = "32"
    progress_bar: bool = False
    accelerator: str | None = None
    devices: Any = None
    strategy: Any = None
    trainer_kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """How a run ended: ``failure`` is the error to re-raise (``None`` when it finished)."""

    steps: int
    stop_reason: str
    good_epochs: int
    best: float
    processes: int
    failure: BaseException | None = None


class _AdversaryDDP(DDPStrategy):
    """DDP whose gradient sync leaves out the adversaries: their update is a second backward
    in the same step, so the plan averages their gradients through the strategy itself."""

    def _setup_model(self, model: torch.nn.Module):
        model._ddp_params_and_buffers_to_ignore = [
            n for n, _ in model.named_parameters() if ".adversaries." in n]
        return super()._setup_model(model)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise SettingError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                           f"{precision!r}")
    return PRECISIONS[precision]


def _distributed() -> tuple[int, int]:
    """``(processes, processes per node)`` of an initialised process group, else ``(1, 1)``."""
    import os

    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return 1, 1
    world = dist.get_world_size()
    return world, int(os.environ.get("LOCAL_WORLD_SIZE", world))


def trainer_args(device: torch.device, s: TrainSettings) -> dict[str, Any]:
    """The ``Trainer``'s accelerator, devices, strategy and precision for ``device``.

    Inside an initialised process group (``torchrun``) the defaults are data-parallel over
    all its processes, as before Lightning. bfloat16 autocast is used on CUDA only.
    """
    accelerator = s.accelerator or {"cuda": "gpu", "mps": "mps"}.get(device.type, "cpu")
    world, local = _distributed()
    devices = s.devices
    if devices is None:
        devices = [device.index] if device.type == "cuda" and device.index is not None and \
            world == 1 else local
    nodes = int(s.trainer_kwargs.get("num_nodes", max(world // max(local, 1), 1)))
    strategy = s.strategy
    many = (devices if isinstance(devices, int) else len(devices)) * nodes > 1
    if strategy in (None, "auto", "ddp") and many or strategy == "ddp":
        strategy = _AdversaryDDP(find_unused_parameters=True)
    precision = check_precision(s.precision)
    if device.type != "cuda":
        precision = "32-true"  # bf16 autocast only where it is fast and tested: CUDA
    return {"accelerator": accelerator, "devices": devices, "num_nodes": nodes,
            "strategy": strategy or "auto", "precision": precision}


def build_callbacks(s: TrainSettings, history: list, stop: threading.Event, epoch0: int,
                    callbacks: Sequence[Callable], validating: bool) -> dict[str, lp.Callback]:
    """The callbacks of one run, by name, in the order they must run."""
    cbs: dict[str, lp.Callback] = {}
    if s.ema:
        cbs["ema"] = EMA(s.ema)
    cbs["record"] = EpochRecord(history, s.select, epoch0)
    cbs["best"] = BestWeights(cbs["record"])
    cbs["progress"] = Progress(callbacks, cbs["record"], stop, s.max_epochs)
    cbs["last_good"] = LastGood()
    cbs["stop"] = Stop(stop, s.max_time)
    if s.early_stopping and validating:
        cbs["early"] = EarlyStopping("val_select", min_delta=1e-4, patience=s.patience,
                                     mode="min", check_on_train_epoch_end=True)
    return cbs


def fit(module: CausCellModule, data: TrainData, s: TrainSettings, *, seed: int,
        concepts: list[str], history: list, stop: threading.Event,
        callbacks: Sequence[Callable], step0: int, device: torch.device) -> Outcome:
    """Train ``module`` in place; the weights are the best (or last good) ones afterwards."""
    plan = TrainingPlan(module, data, seed=seed, lr=s.lr, weight_decay=s.weight_decay,
                        weights=s.weights, batch_size=s.batch_size, concepts=concepts,
                        step0=step0)
    cbs = build_callbacks(s, history, stop, len(history), callbacks, len(data.val_idx) > 0)
    args = trainer_args(device, s)
    extra = {k: v for k, v in s.trainer_kwargs.items() if k != "num_nodes"}
    failure = None
    with _quiet_lightning():
        trainer = lp.Trainer(
            **args, max_epochs=s.max_epochs, logger=False, enable_checkpointing=False,
            enable_model_summary=False, enable_progress_bar=s.progress_bar,
            num_sanity_val_steps=0, use_distributed_sampler=False,
            callbacks=list(cbs.values()), **extra)
        try:
            trainer.fit(plan)
        except BaseException as err:  # noqa: BLE001 - handled by the caller after restoring
            failure = err
    module.to(device)  # Lightning's teardown moves the module to the CPU
    if "ema" in cbs:
        cbs["ema"].finish()
    reason = cbs["stop"].reason
    if reason == "max_epochs" and "early" in cbs and cbs["early"].stopped_epoch > 0:
        reason = "early_stopping"
    out = Outcome(plan.steps, reason, cbs["last_good"].epochs, cbs["best"].best,
                  trainer.world_size, failure)
    if failure is not None and plan.steps > step0 and out.good_epochs:
        module.load_state_dict(cbs["last_good"].state)  # the last epoch with finite losses
        out.stop_reason = ("non_finite_loss" if isinstance(failure, TrainingError)
                           else "callback_error")
    if len(data.val_idx) and (failure is None or out.good_epochs):
        cbs["best"].restore(module)
    module.eval()
    return out


class _quiet_lightning:
    """Lightning's start-up lines ("GPU available ...") and its hints off for one run."""

    NAMES = ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
             "lightning.fabric.utilities.distributed")

    def __enter__(self):
        self._levels = [logging.getLogger(n).level for n in self.NAMES]
        for n in self.NAMES:
            logging.getLogger(n).setLevel(logging.WARNING)
        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        return self

    def __exit__(self, *exc):
        self._warn.__exit__(*exc)
        for n, lvl in zip(self.NAMES, self._levels):
            logging.getLogger(n).setLevel(lvl)
        return False


def add_note(err: BaseException, note: str) -> BaseException:
    """``err`` with a note on what the model kept (shown by Python and the front ends)."""
    note = f"napari-causcell: {note}"
    if hasattr(err, "add_note"):
        err.add_note(note)
    prev = getattr(err, "causcell_note", None)
    err.causcell_note = note if prev is None else f"{prev} {note}"
    return err


class Snapshot:
    """What :meth:`CausCell.train` changes, to restore it when training fails."""

    def __init__(self, model) -> None:
        self.state = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
        self.donors, self.train_params = model.donors, copy.deepcopy(model.train_params)
        self.n_history, self.is_trained = len(model.history), model.is_trained
        self.val_names = model.val_names

    def restore(self, model) -> None:
        model.module.load_state_dict(self.state)
        model.module.eval()
        model.donors, model.train_params = self.donors, self.train_params
        del model.history[self.n_history:]
        model.is_trained, model.val_names = self.is_trained, self.val_names


def settle(model, out: Outcome, s: TrainSettings, data: TrainData, entry: Snapshot | None,
           step0: int, validation_fraction: float) -> list[dict[str, float]]:
    """The model after a run: restored, untrained, or trained with its donor bank."""
    from .. import cf

    if out.failure is not None or out.steps == step0:  # failed, or stopped before a step
        if entry is not None:  # re-training: back to the model as it was
            entry.restore(model)
            if out.failure is None:
                return model.history
            raise add_note(out.failure, "the model was restored to its state before this "
                                        "train() call.")
        if out.good_epochs == 0:  # first training: nothing usable was learnt
            model.is_trained = False
            model.train_params = {"steps": step0, "stop_reason": out.stop_reason}
            if out.failure is None:
                return model.history
            raise add_note(out.failure, "no epoch completed; the model is not trained.")
    n_val = len(data.val_idx)
    model.train_params = {
        "max_epochs": s.max_epochs, "batch_size": s.batch_size, "lr": s.lr,
        "weight_decay": s.weight_decay, "validation_fraction": validation_fraction,
        "patience": s.patience, "weights": s.weights.__dict__, "steps": out.steps,
        "stop_reason": out.stop_reason, "n_train": len(data.train_idx), "n_val": n_val,
        "best_val_loss": float(out.best), "processes": out.processes,
        "precision": s.precision, "select": s.select}
    model.val_names = [str(n) for n in model._adata.obs_names[data.val_idx]]
    model.donors = cf.DonorBank.build(model.module, data.source, data.train_idx,
                                      data.codes[data.train_idx], model.concept_space,
                                      model.seed, model.device)
    model.is_trained = True  # at least one step with a finite loss was made
    if out.failure is not None:
        kept = ("the best weights seen before this error" if n_val else
                "the weights of the last epoch completed before this error")
        raise add_note(out.failure, f"training ended early ({out.stop_reason}); the model "
                                    f"keeps {kept} ({out.good_epochs} complete epoch(s)).")
    return model.history
