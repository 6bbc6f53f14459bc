"""Workflow: train a model on the state's table (concepts, graph, size), save and load it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._model import CausCell
from ..train import MONITOR, SELECT_LABELS, TrainProgress, validation_loss
from ..data import validate_dag
from ..errors import DataError
from .jobs import Job, Progress, pump
from .state import AppState

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_MAX_TIME", "MODEL_SIZES", "TrainRequest", "TrainResult",
           "build_model", "check_dag", "devices", "edges_from_parents", "epoch_losses",
           "epoch_text", "limit_text", "load_model", "loss_curve", "loss_labels", "save_model",
           "selected_by", "train_job"]

#: Epochs the Train forms (napari and Jupyter) start with; early stopping may end sooner.
DEFAULT_EPOCHS = 100
#: Time limit (seconds) the Train forms start with; 0 means none (as ``--max-time 0``).
DEFAULT_MAX_TIME = 0.0
#: The quantity a model selects its weights by when it does not say (``CausCell.train``).
_DEFAULT_SELECT = "recon"

#: Model sizes the front ends offer (architecture keyword arguments of CausCell).
MODEL_SIZES = {
    "default": {},
    "small (fast)": {"token_dim": 16, "hidden": 128, "width": 64, "depth": 1},
    "tiny (tests, demos)": {"token_dim": 8, "hidden": 64, "width": 32, "depth": 1},
}


def devices() -> list[str]:
    """Devices a front end offers: ``auto``, ``cpu`` and the accelerators torch sees."""
    import torch

    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def edges_from_parents(parents: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """``{child: [parents]}`` -> ``[(parent, child), ...]``."""
    return [(str(p), str(c)) for c, ps in parents.items() for p in ps]


def check_dag(concepts: Sequence[str], edges: Any) -> list[tuple[str, str]]:
    """Validated edges; raises :class:`~napari_causcell.DAGError` on a cycle."""
    return validate_dag(list(concepts), edges)


def build_model(state: AppState, concepts: Sequence[str], dag: Any = None, *, seed: int = 0,
                device: str | None = None, **kwargs: Any) -> CausCell:
    """Create an untrained model on the state's table (it replaces the current one)."""
    if not concepts:
        raise DataError("Choose at least one concept column.")
    edges = check_dag(concepts, dag)
    model = CausCell(state.data, list(concepts), edges, table_key=state.table_key, seed=seed,
                     device=device, **kwargs)
    state.set_model(model)
    return model


@dataclass
class TrainRequest:
    """What the Train form holds."""

    concepts: Sequence[str]
    parents: Mapping[str, Sequence[str]] = field(default_factory=dict)
    epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    device: str = "auto"
    size: str = "default"
    max_time: float | None = DEFAULT_MAX_TIME or None

    def validate(self) -> list[tuple[str, str]]:
        """The validated edges; raises a :class:`~napari_causcell.CausCellError` with the
        message to show (no concept, a cycle, an unknown size, no epochs)."""
        if not self.concepts:
            raise DataError("Choose at least one concept column.")
        if self.size not in MODEL_SIZES:
            raise DataError(f"Model size must be one of {list(MODEL_SIZES)}.")
        if int(self.epochs) < 1:
            raise DataError("Train for at least one epoch.")
        if self.max_time is not None and not float(self.max_time) >= 0:
            raise DataError("The time limit must be >= 0 seconds (0: no limit).")
        return check_dag(self.concepts, edges_from_parents(self.parents))

    def start_text(self, state: AppState) -> str:
        dag = ", ".join(f"{a} -> {b}" for a, b in self.validate()) or "none"
        return (f"Training on {state.n_cells} cells: concepts {list(self.concepts)}, "
                f"DAG {dag}...")


@dataclass
class TrainResult:
    history: list[dict[str, float]]
    message: str


_LOSS_NAMES = {"recon": "reconstruction", "concept": "concept"}


def selected_by(model: CausCell | None) -> str:
    """The quantity a model keeps its weights by (``train(select=...)``)."""
    params = getattr(model, "train_params", None) or {}
    return str(params.get("select", _DEFAULT_SELECT))


def loss_labels(select: str = _DEFAULT_SELECT) -> tuple[str, str, str]:
    """``(train legend, validation legend, y-axis label)`` of the loss plot.

    Both curves show the same quantity: the one that selects the kept weights
    (``"recon"``: the reconstruction loss; ``"recon+concept"``: plus the concept loss).
    """
    name = " + ".join(_LOSS_NAMES.get(k, k) for k in MONITOR.get(select, (select,)))
    return f"train {name}", f"validation {name}", f"{name} loss"


def epoch_losses(losses: Mapping[str, float], val_losses: Mapping[str, float],
                 select: str = _DEFAULT_SELECT) -> tuple[float, float]:
    """``(train, validation)`` value of the same quantity for one epoch (NaN: missing).

    ``losses`` and ``val_losses`` as in a :class:`~napari_causcell.train.TrainProgress`
    (keys ``recon``, ``concept``, ..., ``total``); the train side is not the ``total`` (which
    adds the adversary and KL terms the validation side does not select by).
    """
    train = validation_loss(losses, select)
    val = validation_loss(val_losses, select)
    return (math.nan if train is None else train), (math.nan if val is None else val)


def epoch_text(p: TrainProgress) -> str:
    """``Epoch 3/60: train reconstruction 1.234, validation reconstruction 0.987 (12 s)``."""
    train, val = epoch_losses(p.losses, p.val_losses)
    train_name, val_name, _ = loss_labels()
    val_text = f", {val_name} {val:.3f}" if math.isfinite(val) else ""
    return (f"Epoch {p.epoch}/{p.max_epochs}: {train_name} {train:.3f}{val_text} "
            f"({p.elapsed:.0f} s)")


def limit_text(epochs: int, max_time: float | None) -> str:
    """How a training with these settings ends, in words (for the Train forms)."""
    limit = (f"{int(epochs)} epochs or {float(max_time):g} s, whichever comes first"
             if max_time else f"{int(epochs)} epochs (no time limit)")
    return (f"Trains for at most {limit}; early stopping may end it sooner, keeping the "
            "best weights.")


def _done_text(model: CausCell, n_epochs: int) -> str:
    params = model.train_params
    reason = params.get("stop_reason", "")
    best = params.get("best_val_loss", float("nan"))
    label = SELECT_LABELS.get(params.get("select", "recon"), "validation loss")
    return (f"Trained {n_epochs} epochs (ended by {reason}); best {label} {best:.3f}, whose "
            "weights are kept. The model is ready for Intervene.")


def train_job(state: AppState, request: TrainRequest) -> Job[TrainResult]:
    """Build the model and train it; one :class:`Progress` per epoch (``data``: the
    ``TrainProgress``). Cancelling stops after the current step and keeps the best weights."""
    edges = request.validate()
    start = request.start_text(state)
    device = None if request.device == "auto" else request.device

    def steps(job: Job) -> Any:
        yield Progress(0.0, start)
        model = build_model(state, request.concepts, edges, seed=int(request.seed),
                            device=device, **MODEL_SIZES[request.size])
        job.on_cancel(model.request_stop)

        def as_progress(p: TrainProgress) -> Progress:
            if job.cancelled:  # a stop asked for before training started
                model.request_stop()
            return Progress(p.epoch / p.max_epochs, epoch_text(p), p)

        def call(report: Any) -> list[dict[str, float]]:
            return model.train(int(request.epochs), callbacks=[report],
                               max_time=request.max_time or None)

        history = yield from pump(job, call, as_progress, abort=False)
        state.trained()
        yield Progress(1.0, "")
        return TrainResult(history, _done_text(model, len(history)))

    return Job(steps, title="CausCell training", total=int(request.epochs),
               cancel_text="Stopping after the current step; the best weights so far are "
                           "kept...")


def loss_curve(model: CausCell | None) -> tuple[list[int], list[float], list[float]]:
    """``(epochs, train loss, validation loss)`` of a model's history (NaN: none): the same
    quantity on both sides, the one that selected the kept weights (see
    :func:`loss_labels`)."""
    epochs: list[int] = []
    train: list[float] = []
    val: list[float] = []
    if model is None:
        return epochs, train, val
    select = selected_by(model)
    for rec in model.history:
        t, v = (validation_loss(rec, select, prefix=pre) for pre in ("train_", "val_"))
        epochs.append(int(rec["epoch"]))
        train.append(math.nan if t is None else t)
        val.append(math.nan if v is None else v)
    return epochs, train, val


def save_model(state: AppState, path: str | Path) -> str:
    """Save the state's model; returns the message to show."""
    if state.model is None:
        raise DataError("No model to save: train one first.")
    out = state.model.save(path, overwrite=True)
    return f"Saved the model to {out}."


def load_model(state: AppState, path: str | Path, device: str | None = None) -> str:
    """Load a saved model for the state's data; returns the message to show."""
    model = CausCell.load(path, device=device, data=state.data)
    state.set_model(model)
    state.trained()
    return f"Loaded a model of {model.concepts} from {path}."
