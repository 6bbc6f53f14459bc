"""CausCell: the user-facing model that knows AnnData and SpatialData."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch
from scipy import sparse

from . import _checks, _safe_io
from ._constants import DEFAULT_STEPS, MEAN_DRAWS, SAMPLERS
from ._keys import Key
from ._utils import make_generator, pick_device
from ._version import __version__
from .data import adjacency, descendants, expression, resolve_table, select_genes, validate_dag
from .data.stream import ExpressionSource
from .data.concepts import ConceptSpace
from .errors import ConceptError, DataError, ModelFileError, SettingError, TrainingError
from .model import CausCellModule, LossWeights, ModuleConfig

WEIGHTS_FILE = "model.pt"
META_FILE = "causcell.json"
FORMAT_VERSION = 2  # 2: model.pt and causcell.json carry a shared token and checksums
DONOR_BANK = 256  # exogenous tokens kept per label for random-donor interventions
EMA_DECAY = 0.995  # weight averaging in train(): ablation in docs/benchmarks.md
U_RESIDUAL_KL = 0.1  # u's KL weight with u_residual=True (docs/benchmarks.md, seventh round)
DENSE_CACHE_VALUES = 50_000_000  # in-memory data up to this size are held densely in training


def _checked_sampling(method):
    """Refuse ``n_samples=2.5``, ``steps=0``, an unknown concept or label, ... before any work
    (a clear ``SettingError`` / ``ConceptError``)."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        sampler = kwargs.get("sampler", "mean")
        if sampler not in SAMPLERS:
            raise SettingError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        for name in ("n_samples", "steps", "batch_size"):
            if name in kwargs and (name != "steps" or sampler == "ddim"):
                _checks.count(name, kwargs[name], 1)
        do = args[1] if len(args) > 1 else kwargs.get("do")
        if isinstance(do, Mapping):  # unknown concept or label: a ConceptError, before any work
            for concept, label in do.items():
                self.concept_space.code(concept, label)
        return method(self, *args, **kwargs)

    return wrapper


@dataclass
class TrainProgress:
    """What a training callback receives once per epoch.

    Call :meth:`stop` (or return ``False`` from the callback) to end training early; the model
    keeps the best weights seen so far.
    """

    epoch: int
    max_epochs: int
    step: int
    losses: dict[str, float]
    val_losses: dict[str, float]
    elapsed: float
    _stop: threading.Event = field(repr=False, default_factory=threading.Event)

    def stop(self) -> None:
        self._stop.set()


class CausCell:
    """Causal disentanglement with conditional diffusion for single-cell and spatial data.

    Parameters
    ----------
    data
        AnnData, or SpatialData with a table (``table_key``).
    concepts
        Categorical ``obs`` columns used as observed concepts (e.g. age, domain, cell type).
    dag
        Causal edges between concepts, ``[("age", "cell_type"), ...]`` or ``"age->cell_type"``.
        ``[]`` or ``None`` gives independent concepts (the CausCell_IND ablation).
    table_key
        Table of a SpatialData (default: its only table, or ``"table"``).
    layer
        Layer holding the counts (default ``.X``).
    log_normalized
        ``True`` when the matrix is already ``log1p``-normalised; otherwise raw counts are
        expected and normalised to 10,000 per cell then ``log1p``'d.
    max_genes
        Above this many genes, keep that many highly variable genes.
    seed
        Seed of weights, data split, batches and sampling.
    device
        ``"cuda"``, ``"mps"``, ``"cpu"`` or ``None`` (automatic).
    **module_kwargs
        Architecture options of :class:`~napari_causcell.model.ModuleConfig` (``token_dim``,
        ``hidden``, ``width``, ``depth``, ``heads``, ``n_queries``, ``n_steps``, ``dropout``,
        ``anchor``, ``u_shuffle``, ``t_power``, ``standardize``, ``u_dim``, ``u_residual``,
        ``u_kl``). ``u_dim`` is how many of the ``u`` token's ``token_dim`` entries carry
        information (default ``None``: all). ``u_dim=2`` keeps the labels out of ``u``
        (leakage 0.105 -> 0.005 on the built-in tissue) at equal counterfactual accuracy on
        the simulated tissues and STARmap but 0.03 lower on MERFISH (docs/benchmarks.md,
        "Fifth round"). ``u_residual=True`` encodes ``u`` from each cell minus the training
        mean of its label combination, with ``u``'s KL weight ``u_kl`` (default 0.1 with it,
        else 1): ``u`` then carries the cell's own detail but not its labels (leakage 0.105
        -> 0.00, per-cell reconstruction r 0.58 -> 0.67 on the built-in tissue) at about
        equal counterfactual accuracy (docs/benchmarks.md, "Seventh round"). It keeps one
        mean per label combination, so the product of the concepts' label counts is
        limited.
    """

    def __init__(
        self,
        data: Any,
        concepts: Sequence[str],
        dag: Any = None,
        *,
        table_key: str | None = None,
        layer: str | None = None,
        log_normalized: bool = False,
        max_genes: int = 2000,
        seed: int = 0,
        device: str | None = None,
        **module_kwargs: Any,
    ) -> None:
        # impossible settings fail here, before any work
        _checks.count("max_genes", max_genes, 1)
        _checks.count("seed", seed, 0)
        _checks.architecture(module_kwargs)
        device = pick_device(device)
        adata, table_key = resolve_table(data, table_key)
        self.concept_space = ConceptSpace.from_obs(adata.obs, concepts)
        if module_kwargs.get("u_residual"):
            module_kwargs.setdefault("u_kl", U_RESIDUAL_KL)
            _checks.label_combinations(self.concept_space.n_classes())
        self.edges = validate_dag(self.concept_space.names, dag)
        self.genes = select_genes(adata, layer, log_normalized, max_genes)
        self.layer, self.log_normalized, self.table_key = layer, log_normalized, table_key
        self.seed = int(seed)
        self.device = device
        torch.manual_seed(self.seed)
        config = ModuleConfig(
            n_genes=len(self.genes),
            n_classes=self.concept_space.n_classes(),
            adjacency=adjacency(self.concept_space.names, self.edges).tolist(),
            **module_kwargs,
        )
        self.module = CausCellModule(config).to(self.device)
        self.history: list[dict[str, float]] = []
        self.train_params: dict[str, Any] = {}
        self.is_trained = False
        self._stop = threading.Event()
        self._adata = adata
        self._donors: dict[str, dict[str, torch.Tensor]] = {}

    # -- properties --------------------------------------------------------------------------
    @property
    def concepts(self) -> list[str]:
        return list(self.concept_space.names)

    @property
    def token_names(self) -> list[str]:
        return self.concepts + ["u"]

    def __repr__(self) -> str:
        dag = ", ".join(f"{a}->{b}" for a, b in self.edges) or "none (independent)"
        n = sum(p.numel() for p in self.module.parameters())
        return (
            f"CausCell({len(self.genes)} genes, concepts={self.concepts}, dag=[{dag}], "
            f"{n:,} parameters, device={self.device}, trained={self.is_trained})"
        )

    # -- data --------------------------------------------------------------------------------
    def _table(self, data: Any = None, table_key: str | None = None) -> ad.AnnData:
        if data is None:
            if self._adata is None:
                raise DataError("This model was loaded from disk: pass the data to use.")
            return self._adata
        return resolve_table(data, table_key or self.table_key)[0]

    def _expression(self, adata: ad.AnnData) -> sparse.csr_matrix:
        return expression(adata, self.genes, self.layer, self.log_normalized)

    def _dense(self, x: sparse.csr_matrix, rows: np.ndarray | slice) -> torch.Tensor:
        return torch.from_numpy(np.asarray(x[rows].toarray(), dtype=np.float32)).to(self.device)

    # -- training ----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask a running :meth:`train` to stop after the current step (thread-safe).

        Honoured at any moment of training, its set-up included (training then ends after its
        first step); the model keeps the best weights so far.
        """
        self._stop.set()

    def train(
        self,
        max_epochs: int = 200,
        *,
        batch_size: int = 256,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        validation_fraction: float = 0.1,
        early_stopping: bool = True,
        patience: int = 25,
        max_time: float | None = None,
        weights: LossWeights | Mapping[str, float] | None = None,
        callbacks: Sequence[Callable[[TrainProgress], Any]] | Callable | None = None,
        progress_bar: bool = False,
        precision: str = "32",
        select: str = "recon",
        ema: float = EMA_DECAY,
    ) -> list[dict[str, float]]:
        """Train on the data given at construction; returns the per-epoch history.

        Parameters
        ----------
        max_epochs
            Upper bound on passes over the training cells.
        validation_fraction
            Share of cells held out (seeded) to monitor ``recon + concept`` loss.
        early_stopping, patience
            Stop after ``patience`` epochs without improvement of the validation loss and
            restore the best weights.
        max_time
            Wall-clock budget in seconds (checked every step).
        weights
            Loss weights (``recon``, ``concept``, ``adversary``, ``kl``).
        callbacks
            Callables receiving a :class:`TrainProgress` after every epoch; returning ``False``
            or calling ``progress.stop()`` ends training. :meth:`request_stop` does the same
            from another thread.
        precision
            ``"32"`` (default) or ``"bf16"``: bfloat16 autocast of the forward passes on CUDA
            (ignored elsewhere).
        select
            Validation loss that picks the weights kept (and drives early stopping):
            ``"recon"`` (default, the generator's x0 error: what reconstructions and
            counterfactuals are made of) or ``"recon+concept"`` (adds the concept heads' loss,
            which bottoms out early as the heads overfit).
        ema
            Decay of an exponential moving average of the weights (default 0.995, ``0`` =
            off). When on, validation, checkpoint selection and the returned model use the
            averaged weights (docs/benchmarks.md, "Ablation"). The decay after ``n`` steps is
            ``min(ema, (1 + n) / (10 + n))``, which stays below 0.995 for 1,790 steps.

        Notes
        -----
        Minibatches are read from the data's matrix as it is (CSR, dense, a backed ``.h5ad``
        or a dask array) and densified and normalised per batch, so the whole matrix is never
        densified; small in-memory data (up to 50 M values) are held densely for speed.

        When a ``torch.distributed`` process group with several processes is initialised
        (``torchrun``, or ``napari-causcell train --devices N``), training is data-parallel
        with :class:`~torch.nn.parallel.DistributedDataParallel`: every process reads its
        share of each global batch of ``batch_size`` cells, so the steps per epoch and the
        optimisation match single-process training.
        """
        self._stop.clear()  # a stop requested from here on, set-up included, is honoured
        rank, world = _dist_rank_world()
        _checks.train_args(max_epochs=max_epochs, batch_size=batch_size, lr=lr,
                           weight_decay=weight_decay, validation_fraction=validation_fraction,
                           patience=patience, max_time=max_time, world=world, ema=ema)
        entry = self._snapshot() if self.is_trained else None  # restored on failure
        w = weights if isinstance(weights, LossWeights) else LossWeights(**dict(weights or {}))
        if select not in _MONITOR:
            raise ValueError(f"select must be one of {sorted(_MONITOR)}, got {select!r}")
        callbacks = [callbacks] if callable(callbacks) else list(callbacks or [])
        autocast = _autocast(self.device, precision)
        adata = self._adata
        source = ExpressionSource(adata, self.genes, self.layer, self.log_normalized)
        y_all = self.concept_space.encode(adata.obs)
        n = adata.n_obs
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(n)
        n_val = int(round(validation_fraction * n)) if n >= 20 else 0
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        if len(train_idx) == 0:
            raise DataError("No cells left for training.")
        if len(train_idx) < 2 * world:
            raise DataError(f"{len(train_idx)} training cells cannot be split over {world} "
                            "processes.")
        # one pass over the data in chunks (each process its share): checks every value and
        # finds the clipping bound without holding the whole matrix
        top, s1, s2, n_seen = source.stats(train_idx[rank::world])
        if n_val:
            source.max(val_idx[rank::world])  # validation cells are checked as well
        if world > 1:
            top = _all_reduce(top, "max", self.device)
            tot = _all_reduce(list(s1) + list(s2) + [n_seen], "sum", self.device)
            g = len(s1)
            s1, s2, n_seen = np.asarray(tot[:g]), np.asarray(tot[g:2 * g]), tot[-1]
        mean = s1 / max(n_seen, 1)
        std = np.sqrt(np.maximum(s2 / max(n_seen, 1) - mean**2, 0.0))
        self._set_data_stats(top, y_all[train_idx], mean, std)
        cache = not source.backed and n * len(self.genes) <= DENSE_CACHE_VALUES
        x_dense = None
        if cache:  # small in-memory data: one dense copy on the device, filled chunk-wise
            x_dense = torch.empty((n, len(self.genes)), dtype=torch.float32, device=self.device)
            for rows, block in source.chunks(check=False):
                x_dense[torch.from_numpy(rows).to(self.device)] = torch.from_numpy(block).to(
                    self.device)
        y_t = torch.from_numpy(y_all).to(self.device)
        pin = self.device.type == "cuda"

        def batch(rows: np.ndarray, x: np.ndarray | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
            r = torch.from_numpy(rows).to(self.device)
            if cache:
                return x_dense[r], y_t[r]
            xb = torch.from_numpy(source.rows(rows, check=False) if x is None else x)
            if pin:  # page-locked host memory: asynchronous copy to the GPU
                xb = xb.pin_memory()
            return xb.to(self.device, non_blocking=pin), y_t[r]

        mod = self.module
        step_fn: torch.nn.Module = _TrainStep(mod)
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # the adversaries' update uses only their own parameters: find_unused_parameters
            step_fn = DistributedDataParallel(step_fn, device_ids=ids,
                                              find_unused_parameters=True)
        opt = torch.optim.AdamW(mod.main_parameters(), lr=lr, weight_decay=weight_decay)
        averaged = _EMA(mod.main_parameters(), ema) if ema else None
        adv_opt = torch.optim.AdamW(mod.adversaries.parameters(), lr=lr, weight_decay=weight_decay)
        torch.manual_seed(self.seed + 1000 * rank)  # each process its own noise
        order_gen = np.random.default_rng(self.seed + 1)
        failure: BaseException | None = None  # a non-finite loss or a callback's exception
        step0, good_epochs, last_good = self.train_params.get("steps", 0), 0, None
        best, best_state, bad_epochs = np.inf, None, 0
        start, step = time.perf_counter(), self.train_params.get("steps", 0)
        epoch0 = len(self.history)
        bar = _progress_bar(max_epochs) if progress_bar and rank == 0 else None
        stop_reason = "max_epochs"

        def should_stop() -> bool:
            flag = self._stop.is_set() or bool(max_time and time.perf_counter() - start > max_time)
            if world > 1:  # every process stops at the same step
                flag = bool(_all_reduce(float(flag), "max", self.device))
            return flag

        for epoch in range(epoch0, epoch0 + max_epochs):
            mod.train()
            sums: dict[str, float] = {}
            order = order_gen.permutation(train_idx)  # the same order in every process
            n_batches = 0
            # this process's share of every global batch (too small a last batch is skipped)
            shares = [order[i : i + batch_size][rank::world]
                      for i in range(0, len(order), batch_size)
                      if len(order[i : i + batch_size]) >= 2 * world]
            # read from disk / sparse: the next batch is read in a thread during this step
            ahead = None if cache else _Prefetch(source, shares)
            for j, rows in enumerate(shares):
                xb, yb = batch(rows, None if ahead is None else ahead.get(j))
                with autocast:
                    total, parts, eps = step_fn(xb, yb, w)
                if not _finite(total, world, self.device):  # before the step: weights stay good
                    failure = _non_finite_error("loss", epoch + 1, step + 1, lr)
                    break
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                if averaged is not None:
                    averaged.update()
                with autocast:
                    adv = step_fn(xb, yb, w, eps=eps)
                if not _finite(adv, world, self.device):
                    failure = _non_finite_error("adversary loss", epoch + 1, step + 1, lr)
                    break
                adv_opt.zero_grad(set_to_none=True)
                adv.backward()
                adv_opt.step()
                step += 1
                n_batches += 1
                for k, v in {**parts, "adversary": adv, "total": total}.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                if should_stop():  # after every step: a stop asked at any moment, set-up
                    break  # included, ends training here with a usable (>= 1 step) model
            if ahead is not None:
                ahead.close()
            if failure is not None:
                break
            if n_batches == 0:  # no step in this epoch (cannot happen after the checks above)
                break
            losses = {k: v / max(n_batches, 1) for k, v in sums.items()}
            if world > 1 and losses:
                keys = sorted(losses)
                avg = _all_reduce([losses[k] for k in keys], "sum", self.device)
                losses = {k: v / world for k, v in zip(keys, avg)}
            if averaged is not None:
                averaged.swap()  # validate and keep the averaged weights
            val = self._evaluate(batch, val_idx, w, rank, world) if n_val else {}
            record = {"epoch": epoch + 1, "step": step, "time": time.perf_counter() - start}
            record.update({f"train_{k}": v for k, v in losses.items()})
            record.update({f"val_{k}": v for k, v in val.items()})
            if not all(np.isfinite(v) for v in (*losses.values(), *val.values())):
                failure = _non_finite_error("epoch loss", epoch + 1, step, lr)
                break
            self.history.append(record)
            monitor = sum(val.get(k, losses.get(k, 0.0)) for k in _MONITOR[select])
            if monitor < best - 1e-4:
                best, bad_epochs = monitor, 0
                best_state = copy.deepcopy(mod.state_dict())
            else:
                bad_epochs += 1
            prog = TrainProgress(epoch + 1, epoch0 + max_epochs, step, losses, val,
                                 time.perf_counter() - start, self._stop)
            try:
                for cb in callbacks:
                    if cb(prog) is False:
                        self._stop.set()
            except Exception as err:  # noqa: BLE001 - re-raised once the model is restored
                failure = err
                break
            good_epochs += 1  # every loss finite: these weights are a fallback
            last_good = {k: v.detach().clone() for k, v in mod.state_dict().items()}
            if averaged is not None:
                averaged.swap()  # back to the raw weights to go on training
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses.get('total', 0):.3f}", val=f"{monitor:.3f}")
            cancelled = self._stop.is_set()
            timed_out = bool(max_time and time.perf_counter() - start > max_time)
            if world > 1:  # every process leaves the loop after the same epoch
                cancelled, timed_out = (bool(v) for v in _all_reduce(
                    [float(cancelled), float(timed_out)], "max", self.device))
            if cancelled:
                stop_reason = "cancelled"
                break
            if timed_out:
                stop_reason = "max_time"
                break
            if early_stopping and n_val and bad_epochs >= patience:
                stop_reason = "early_stopping"
                break
        if bar is not None:
            bar.close()
        if averaged is not None:
            averaged.finish()  # the averaged weights, whatever the exit
        if failure is not None or step == step0:  # failed, or stopped before any step
            if entry is not None:  # re-training: back to the model as it was
                self._restore(entry)
                if failure is None:
                    return self.history
                _add_note(failure, "napari-causcell: the model was restored to its state "
                                   "before this train() call.")
                raise failure
            if good_epochs == 0:  # first training: nothing usable was learnt
                self.is_trained = False
                self.train_params = {"steps": step0, "stop_reason": stop_reason}
                if failure is None:
                    return self.history
                _add_note(failure, "napari-causcell: no epoch completed; the model is not "
                                   "trained.")
                raise failure
            mod.load_state_dict(last_good)  # the last epoch whose losses were all finite
            stop_reason = ("non_finite_loss" if isinstance(failure, TrainingError)
                           else "callback_error")
            kept = ("the best weights seen before this error" if n_val else
                    "the weights of the last epoch completed before this error")
            _add_note(failure, f"napari-causcell: training ended early ({stop_reason}); the "
                               f"model keeps {kept} ({good_epochs} complete epoch(s)).")
        if best_state is not None and n_val:
            mod.load_state_dict(best_state)
        mod.eval()
        self.train_params = {
            "max_epochs": max_epochs, "batch_size": batch_size, "lr": lr,
            "weight_decay": weight_decay, "validation_fraction": validation_fraction,
            "patience": patience, "weights": w.__dict__, "steps": step,
            "stop_reason": stop_reason, "n_train": len(train_idx), "n_val": n_val,
            "best_val_loss": float(best), "processes": world, "precision": precision,
            "select": select,
        }
        self._val_index = adata.obs_names[val_idx]
        self._build_donors(source, train_idx, y_all[train_idx])
        self.is_trained = True  # at least one step with a finite loss was made
        if failure is not None:
            raise failure
        return self.history

    def _snapshot(self) -> dict[str, Any]:
        """What :meth:`train` changes, to restore it when training fails."""
        return {
            "state": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
            "donors": self._donors, "train_params": copy.deepcopy(self.train_params),
            "n_history": len(self.history), "is_trained": self.is_trained,
            "val_index": getattr(self, "_val_index", None),
        }

    def _restore(self, snap: dict[str, Any]) -> None:
        self.module.load_state_dict(snap["state"])
        self.module.eval()
        self._donors, self.train_params = snap["donors"], snap["train_params"]
        del self.history[snap["n_history"]:]
        self.is_trained = snap["is_trained"]
        if snap["val_index"] is not None:
            self._val_index = snap["val_index"]

    def _set_data_stats(self, top: float, y: np.ndarray, mean: np.ndarray,
                        std: np.ndarray) -> None:
        mod = self.module
        mod.clip_max.fill_(float(top) * 1.2 if top > 0 else 1.0)
        mod.set_scale(torch.from_numpy(mean).float(), torch.from_numpy(std).float())
        priors = [np.bincount(y[:, k], minlength=c) / len(y)
                  for k, c in enumerate(mod.config.n_classes)]
        mod.label_prior.copy_(torch.from_numpy(np.concatenate(priors).astype(np.float32)))
        mod.label_scm.fit(torch.from_numpy(y).long().to(self.device))

    @torch.no_grad()
    def _evaluate(self, batch, idx: np.ndarray, w: LossWeights, rank: int = 0,
                  world: int = 1) -> dict[str, float]:
        mod = self.module
        mod.eval()
        sums: dict[str, float] = {}
        correct = np.zeros(mod.n_concepts)
        mine = idx[rank::world]  # each process scores its share; the sums are added up
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 7)  # same noise every epoch: comparable val losses
            for i in range(0, len(mine), 512):
                xb, yb = batch(mine[i : i + 512])
                _, parts, eps = mod.loss(xb, yb, w)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(xb)
                logits = mod.classify(eps)
                correct += [float((lg.argmax(-1) == yb[:, k]).sum()) for k, lg in enumerate(logits)]
        keys = ["recon", "concept", "confusion", "kl"]
        if world > 1:
            total = _all_reduce([sums.get(k, 0.0) for k in keys] + list(correct), "sum",
                                self.device)
            sums = dict(zip(keys, total[: len(keys)]))
            correct = np.asarray(total[len(keys):])
        out = {k: v / len(idx) for k, v in sums.items()}
        out.update({f"acc_{c}": float(a / len(idx)) for c, a in zip(self.concepts, correct)})
        return out

    @torch.no_grad()
    def _build_donors(self, source: ExpressionSource, cells: np.ndarray, y: np.ndarray) -> None:
        """Bank of exogenous and endogenous tokens per label, for interventions.

        ``cells`` are the training cells (rows of ``source``), ``y`` their codes. Only the
        cells kept in the bank (at most ``DONOR_BANK`` per label) are read and encoded.
        """
        rng = np.random.default_rng(self.seed + 2)
        chosen: dict[str, np.ndarray] = {}
        for k, name in enumerate(self.concepts):
            for code, label in enumerate(self.concept_space.categories[name]):
                rows = np.flatnonzero(y[:, k] == code)
                if len(rows) > DONOR_BANK:
                    rows = np.sort(rng.choice(rows, DONOR_BANK, replace=False))
                chosen[f"{name}={label}"] = rows
        union = np.unique(np.concatenate([np.zeros(0, np.int64), *chosen.values()]))
        self.module.eval()
        y_u = torch.from_numpy(y[union]).to(self.device)
        parts = [self.module.encode(torch.from_numpy(block).to(self.device),
                                    y_u[i * 2048 : (i + 1) * 2048])[0]
                 for i, (_, block) in enumerate(source.chunks(cells[union], 2048, check=False))]
        resid = torch.cat(parts) if parts else torch.zeros(
            (0, self.module.n_tokens, self.module.config.token_dim), device=self.device)
        eps = self.module.anchor(resid, y_u)
        z = self.module.tokens(eps)
        self._donors = {}
        for key, rows in chosen.items():
            k = self.concepts.index(key.split("=", 1)[0])
            pos = torch.from_numpy(np.searchsorted(union, rows)).to(self.device)
            self._donors[key] = {"eps": eps[pos, k].cpu(), "z": z[pos, k].cpu()}

    # -- inference ---------------------------------------------------------------------------
    def _source(self, adata: ad.AnnData) -> ExpressionSource:
        """The model's input for ``adata``, read and normalised chunk by chunk."""
        return ExpressionSource(adata, self.genes, self.layer, self.log_normalized)

    @torch.no_grad()
    def _encode_matrix(
        self, x: sparse.csr_matrix | ExpressionSource, batch_size: int = 2048,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Posterior means of the exogenous tokens ``(n, K, d)`` (abduction).

        ``x`` is the normalised matrix, or an :class:`ExpressionSource` read chunk-wise;
        ``y`` the cells' label codes where known.
        """
        self.module.eval()
        enc = self.module.encode
        if isinstance(x, ExpressionSource):
            out = [enc(torch.from_numpy(b).to(self.device),
                       None if y is None else y[torch.from_numpy(r).to(y.device)])[0]
                   for r, b in x.chunks(size=batch_size)]
        else:
            out = [enc(self._dense(x, slice(i, i + batch_size)),
                       None if y is None else y[i : i + batch_size])[0]
                   for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out)

    @torch.no_grad()
    def _exogenous(
        self, adata: ad.AnnData, x: sparse.csr_matrix | ExpressionSource,
        use_labels: bool | None = None,
    ) -> torch.Tensor:
        """Exogenous tokens of ``adata``'s cells: anchored on their labels when obs has them.

        ``use_labels=None`` uses the labels when every concept column is present, else the
        labels predicted from expression; ``True`` requires them.
        """
        has = all(c in adata.obs for c in self.concepts)
        if use_labels or (use_labels is None and has):
            y = torch.from_numpy(self.concept_space.encode(adata.obs)).to(self.device)
            return self.module.anchor(self._encode_matrix(x, y=y), y)
        return self.module.anchor(self._encode_matrix(x))

    def _check_cells(self, adata: ad.AnnData) -> None:
        if adata.n_obs == 0:
            raise DataError("The cell selection is empty: choose at least one cell.")

    def concept_embeddings(
        self, data: Any = None, *, table_key: str | None = None, exogenous: bool = False,
        write: bool = True, use_labels: bool | None = None,
    ) -> dict[str, np.ndarray]:
        """Per-concept embeddings (``n_cells, token_dim``), including ``u`` (``u_dim`` columns
        when the model was built with ``u_dim``).

        By default the endogenous tokens ``z`` (after the SCM); ``exogenous=True`` gives
        ``eps``. With ``write=True`` each is also stored in ``obsm['X_causcell_<concept>']``.
        Tokens are anchored on the cells' labels when obs has every concept column
        (``use_labels=None``); ``use_labels=False`` uses labels predicted from expression.
        """
        adata = self._table(data, table_key)
        self._check_cells(adata)
        eps = self._exogenous(adata, self._source(adata), use_labels)
        tok = eps if exogenous else self.module.tokens(eps)
        out = {name: tok[:, k].cpu().numpy() for k, name in enumerate(self.token_names)}
        u_dim = self.module.config.u_dim
        if u_dim is not None:  # u's other entries are fixed at zero
            out["u"] = out["u"][:, :u_dim]
        if write:
            for name, emb in out.items():
                adata.obsm[Key.obsm.embedding(name)] = emb
        return out

    @torch.no_grad()
    def predict_concepts(
        self, data: Any = None, *, table_key: str | None = None, probabilities: bool = False
    ) -> pd.DataFrame:
        """Predicted label of every concept (columns = concepts; ``<c>_prob`` with probabilities).

        Probability columns per label are added as ``<concept>:<label>`` when
        ``probabilities=True``.
        """
        adata = self._table(data, table_key)
        self._check_cells(adata)
        resid = self._encode_matrix(self._source(adata))
        df = pd.DataFrame(index=adata.obs_names.copy())
        for name, logits in zip(self.concepts, self.module.classify(resid)):
            p = logits.softmax(-1).cpu().numpy()
            df[name] = self.concept_space.decode(name, p.argmax(1))
            df[f"{name}_prob"] = p.max(1)
            if probabilities:
                for j, label in enumerate(self.concept_space.categories[name]):
                    df[f"{name}:{label}"] = p[:, j]
        return df

    @_checked_sampling  # sampler, steps, batch_size: checked first
    def reconstruct(
        self, data: Any = None, *, table_key: str | None = None, sampler: str = "mean",
        steps: int = DEFAULT_STEPS, seed: int | None = None, batch_size: int = 4096,
        progress: Callable[[float], Any] | None = None,
    ) -> ad.AnnData:
        """Generate every cell from its own concepts.

        ``sampler="mean"`` (default) returns each cell's expected expression ``E[x | tokens]``
        (the denoiser's conditional mean, averaged over noise draws): the best per-cell
        estimate, smooth, without sampling zeros. ``"ddim"`` (``steps`` steps) or ``"ddpm"``
        returns one generated sample per cell, with realistic cell-to-cell noise.

        Returns an AnnData with the generated log-normalised expression in ``.X``, the input's
        log-normalised expression in ``layers['factual']`` and the input's ``obs``;
        ``uns['causcell']['output']`` says ``"expected"`` or ``"sample"``.
        ``progress(fraction)`` is called after every sampler step.
        """
        adata = self._table(data, table_key)
        self._check_cells(adata)
        x = self._source(adata)
        z = self.module.tokens(self._exogenous(adata, x))
        gen = self._generate(z, sampler, steps, seed, batch_size, progress)
        out = ad.AnnData(gen, obs=adata.obs.copy(), var=pd.DataFrame(index=list(self.genes)))
        if "spatial" in adata.obsm:
            out.obsm["spatial"] = np.asarray(adata.obsm["spatial"])
        out.layers[Key.layers.FACTUAL] = _all_rows(x)
        out.uns[Key.uns.CAUSCELL] = {"kind": "reconstruction", "sampler": sampler, "steps": steps,
                               "output": "expected" if sampler == "mean" else "sample"}
        return out

    def _generate(self, z, sampler, steps, seed, batch_size, progress=None) -> np.ndarray:
        g = make_generator(self.seed if seed is None else seed, self.device)
        starts = range(0, z.shape[0], batch_size)
        parts = []
        for b, i in enumerate(starts):
            step = None
            if progress is not None:
                def step(done, total, b=b):  # fraction of this call's work
                    progress((b + done / total) / len(starts))
            if sampler == "mean":
                parts.append(self.module.expected(z[i : i + batch_size], MEAN_DRAWS, g))
                if step is not None:
                    step(1, 1)
            else:
                parts.append(self.module.generate(z[i : i + batch_size], sampler, steps, g,
                                                  step))
        return torch.cat(parts).cpu().numpy().astype(np.float32)

    @_checked_sampling  # n_samples, steps, batch_size, do's concepts/labels: checked first
    @torch.no_grad()
    def counterfactual(
        self,
        data: Any = None,
        do: Mapping[str, Any] | None = None,
        *,
        table_key: str | None = None,
        donor: str = "random",
        hard: bool = True,
        propagate: str = "labels",
        unseen: str = "average",
        sampler: str = "mean",
        steps: int = DEFAULT_STEPS,
        n_samples: int = 1,
        seed: int | None = None,
        batch_size: int = 4096,
        progress: Callable[[float], Any] | None = None,
    ) -> ad.AnnData:
        """Counterfactual cells under ``do(concept = value)`` for the given cells.

        Parameters
        ----------
        data
            The cells to intervene on (AnnData, a subset of one, or SpatialData).
        do
            ``{concept: label}``; several concepts are applied together.
        donor
            ``"random"``: each cell takes the token of a random training cell with that label;
            ``"mean"``: the label's mean token.
        hard
            ``True`` (default): the textbook do-operator, cutting the edges into the intervened
            concept so its token is the donor's whatever its parents; descendants are recomputed
            through the SCM. ``False``: the reference's soft swap of the exogenous part only,
            keeping the cell's own parents' contribution. Both are identical for root concepts.
        propagate
            ``"labels"`` (default): the labels of the intervened concepts' descendants are
            recomputed by the categorical label SCM with each cell's own abducted Gumbel noise
            (so e.g. do(age) can turn an OPC into an oligodendrocyte, in the share the training
            data imply); a cell whose label changes takes a donor's token of its new label.
            ``"tokens"``: descendants keep their labels and only their tokens move with the
            intervened parent's token (the linear token SCM alone).
        unseen
            A cell whose descendant label was never seen in training together with its new
            parent labels (e.g. do(age=old) on microglia when no old microglia were measured)
            keeps its label, and the data say nothing about how that label responds.
            ``"average"`` (default): its change is the model's change for the same cell as
            each label of that concept that was seen with both its old and its new parent
            labels, averaged with the labels' training frequencies (the effect transported
            from the measured labels; ``obs['extrapolated']`` marks these cells).
            ``"decoder"``: the decoder's own extrapolation to the unseen combination.
        sampler, steps
            ``"mean"`` (default): the expected expression ``E[x | tokens]`` (the denoiser's
            conditional mean, averaged over noise draws); ``"ddim"`` with ``steps`` steps or
            ``"ddpm"`` (all ``T`` steps): one generated sample per cell.
        n_samples
            Counterfactuals per cell (rows repeat each cell), each with its own donors,
            label noise and sampler noise.
        progress
            Called as ``progress(fraction)`` (0..1) after every sampler step.

        Returns
        -------
        AnnData
            ``.X`` counterfactual log-normalised expression (model genes, same order; expected
            values for ``sampler="mean"``, samples otherwise); ``layers['factual']`` the
            observed input; ``layers['reconstructed']`` the same cells generated without
            intervention with the same noise; ``layers['delta']`` = counterfactual -
            reconstructed, the paired effect estimate (generator bias and noise cancel;
            ``X - factual`` would mix them in). ``obs``: the input's obs with the
            counterfactual labels (intervened and, with ``propagate="labels"``, recomputed
            descendants), ``factual_<concept>`` for each descendant, ``source_id`` and
            ``sample``; ``uns['causcell']['switched']`` the share of cells whose descendant
            label changed.
        """
        if not self.is_trained:
            raise RuntimeError("Train the model (or load a trained one) before intervening.")
        adata = self._table(data, table_key)
        self._check_cells(adata)
        do = dict(do or {})
        if not do:
            raise ConceptError("Give at least one intervention, e.g. do={'age': '90wk'}.")
        if donor not in ("random", "mean"):
            raise ValueError(f"donor must be 'random' or 'mean', got {donor!r}")
        if propagate not in ("labels", "tokens"):
            raise ValueError(f"propagate must be 'labels' or 'tokens', got {propagate!r}")
        if unseen not in ("average", "decoder"):
            raise SettingError(f"unseen must be 'average' or 'decoder', got {unseen!r}")
        do_codes = {self.concepts.index(name): self.concept_space.code(name, value)
                    for name, value in do.items()}  # unknown concept or label: fail here
        x = self._source(adata)  # read chunk-wise: CSR, backed .h5ad or dask
        labelled = all(c in adata.obs for c in self.concepts)
        y_obs = (torch.from_numpy(self.concept_space.encode(adata.obs)).to(self.device)
                 if labelled else None)
        resid = self._encode_matrix(x, y=y_obs)
        y = y_obs if labelled else self._codes(adata, resid)
        # unlabelled cells: the heads' soft prototypes, as in reconstruct (hard labels only
        # drive the label SCM)
        eps0 = self.module.anchor(resid, y if labelled else None)
        z0 = self.module.tokens(eps0)
        n = adata.n_obs
        base_seed = self.seed if seed is None else seed
        rng = np.random.default_rng(base_seed)
        kind = "z" if hard else "eps"
        desc = sorted(set().union(*(descendants(self.concepts, self.edges, c) for c in do)))
        desc_k = [self.concepts.index(c) for c in desc]
        outs, recons, obs_parts, switched, unsupported = [], [], [], [], []
        passes = 2 * n_samples
        for s in range(n_samples):
            g = make_generator(base_seed + 7919 * (s + 1), self.device)
            y_cf = y.clone()
            for k, code in do_codes.items():
                y_cf[:, k] = code
            eps = eps0.clone()
            kept = torch.zeros_like(y, dtype=torch.bool)
            if propagate == "labels":
                y_cf, kept = self.module.label_scm.counterfactual(
                    y, do_codes, self.module.label_scm.abduct(y, g))
                unsupported.append(float(kept.any(-1).float().mean()))
                for k in desc_k:
                    moved = torch.nonzero(y_cf[:, k] != y[:, k]).flatten()
                    for code in y_cf[moved, k].unique().tolist():
                        rows = moved[y_cf[moved, k] == code]
                        eps[rows, k] = self._switched_token(k, code, resid[rows, k], donor, rng)
            switched.append(float((y_cf[:, desc_k] != y[:, desc_k]).any(-1).float().mean())
                            if desc_k else 0.0)
            values = {k: self._donor_value(self.concepts[k], do[self.concepts[k]], kind, donor,
                                           n, rng).to(self.device)
                      for k in do_codes}
            z = self.module.scm.intervene(eps, values, hard=hard)
            s_seed = base_seed + s

            def part(k):  # progress of pass k out of ``passes``
                return None if progress is None else (lambda f: progress((k + f) / passes))

            gen_s = self._generate(z, sampler, steps, s_seed, batch_size, part(2 * s))
            # the same cell without intervention, same noise: cancels decoder bias
            recon_s = self._generate(z0, sampler, steps, s_seed, batch_size, part(2 * s + 1))
            extrapolated = np.zeros(n, bool)
            if unseen == "average" and bool(kept.any()):
                idx = torch.nonzero(kept.any(-1)).flatten().cpu().numpy()
                change = self._transported_change(eps, eps0, y, y_cf, kept, values, hard,
                                                  donor, rng, (sampler, steps, s_seed,
                                                               batch_size))
                ok = np.isfinite(change).all(1)
                gen_s[idx[ok]] = recon_s[idx[ok]] + change[ok]
                extrapolated[idx[ok]] = True
            outs.append(gen_s)
            recons.append(recon_s)
            obs_parts.append(self._cf_obs(adata, y, y_cf, desc, s, n_samples))
            obs_parts[-1][Key.obs.EXTRAPOLATED] = extrapolated
        gen = np.concatenate(outs)
        out = ad.AnnData(gen, obs=pd.concat(obs_parts), var=pd.DataFrame(index=list(self.genes)))
        if "spatial" in adata.obsm:
            out.obsm["spatial"] = np.tile(np.asarray(adata.obsm["spatial"]), (n_samples, 1))
        recon = np.concatenate(recons)
        out.layers[Key.layers.FACTUAL] = np.tile(_all_rows(x), (n_samples, 1))
        out.layers[Key.layers.RECONSTRUCTED] = recon
        out.layers[Key.layers.DELTA] = gen - recon
        out.uns[Key.uns.CAUSCELL] = {
            "kind": "counterfactual", "do": {k: str(v) for k, v in do.items()},
            "donor": donor, "hard": hard, "propagate": propagate, "sampler": sampler,
            "output": "expected" if sampler == "mean" else "sample", "steps": steps,
            "descendants": desc, "switched": float(np.mean(switched)),
            "unsupported": float(np.mean(unsupported)) if unsupported else 0.0,
            "unseen": unseen,
        }
        if unsupported and np.mean(unsupported) > 0:
            warnings.warn(
                f"{_share(np.mean(unsupported))} of the cells have a label never seen in training "
                f"with the new parent labels under do({do}); they keep their label "
                "(uns['causcell']['unsupported'])"
                + ("; their change is averaged over the labels seen with both parent labels "
                   "(obs['extrapolated'])." if unseen == "average" else "."),
                UserWarning, stacklevel=2)
        return out

    def _transported_change(self, eps, eps0, y, y_cf, kept, values, hard, donor, rng,
                            gen_args) -> np.ndarray:
        """Change of the cells with an unsupported label (``kept``): the mean, weighted by
        training frequency, of their change when that label is replaced by each label seen
        with both their factual and their counterfactual parent labels."""
        rows = torch.nonzero(kept.any(-1)).flatten()
        scm, priors = self.module.label_scm, self.module.priors()
        acc = np.zeros((len(rows), self.module.config.n_genes), np.float32)
        total = np.zeros(len(rows), np.float32)
        for j in torch.nonzero(kept.any(0)).flatten().tolist():
            sub = rows[kept[rows, j]]
            pos = torch.searchsorted(rows, sub).cpu().numpy()
            name = self.concepts[j]
            for code, label in enumerate(self.concept_space.categories[name]):
                ok = (scm.seen_with_parents(j, y[sub], code)
                      & scm.seen_with_parents(j, y_cf[sub], code))
                w = float(priors[j][code])
                if not bool(ok.any()) or w <= 0 or f"{name}={label}" not in self._donors:
                    continue
                cells = sub[ok]
                tok = self._donor_value(name, label, "eps", donor, len(cells), rng).to(
                    self.device)
                e1, e0 = eps[cells].clone(), eps0[cells].clone()
                e1[:, j], e0[:, j] = tok, tok
                vals = {k: v if v.dim() == 1 else v[cells] for k, v in values.items()}
                change = (self._generate(self.module.scm.intervene(e1, vals, hard=hard),
                                         *gen_args)
                          - self._generate(self.module.tokens(e0), *gen_args))
                at = pos[ok.cpu().numpy()]
                acc[at] += w * change
                total[at] += w
        # cells without any label seen with both keep the decoder's extrapolation (NaN)
        with np.errstate(invalid="ignore", divide="ignore"):
            return acc / total[:, None]

    def _switched_token(self, k: int, code: int, resid: torch.Tensor, donor: str,
                        rng) -> torch.Tensor:
        """Exogenous token of concept ``k`` for cells whose label became ``code``: a donor's
        (training cell with that label), or without donors the cells' own encoded part plus
        the new label's prototype."""
        name = self.concepts[k]
        label = self.concept_space.categories[name][code]
        try:
            return self._donor_value(name, label, "eps", donor, len(resid), rng).to(self.device)
        except ConceptError:
            return resid + self.module.prototypes[k][code] if self.module.config.anchor else resid

    def _codes(self, adata: ad.AnnData, resid: torch.Tensor) -> torch.Tensor:
        """Label codes ``(n, M)`` of the cells: obs where every concept column is there, else
        the heads' predictions from expression."""
        if all(c in adata.obs for c in self.concepts):
            return torch.from_numpy(self.concept_space.encode(adata.obs)).to(self.device)
        return self.module.predicted_labels(resid)

    def _cf_obs(self, adata, y, y_cf, desc, s, n_samples) -> pd.DataFrame:
        """obs of one counterfactual sample: counterfactual labels, factual descendants."""
        obs = adata.obs.copy()
        y_np, cf_np = y.cpu().numpy(), y_cf.cpu().numpy()
        for k, name in enumerate(self.concepts):
            cats = self.concept_space.categories[name]
            if name in desc:
                obs[Key.obs.factual(name)] = pd.Categorical.from_codes(y_np[:, k], categories=cats)
            if name in desc or (cf_np[:, k] != y_np[:, k]).any() or name not in obs:
                obs[name] = pd.Categorical.from_codes(cf_np[:, k], categories=cats)
        obs[Key.obs.SOURCE_ID] = adata.obs_names.astype(str).to_numpy()
        obs[Key.obs.SAMPLE] = s
        obs.index = [f"{i}-cf{s}" if n_samples > 1 else str(i) for i in adata.obs_names]
        return obs

    def _donor_value(self, name, label, kind, donor, n, rng) -> torch.Tensor:
        key = f"{name}={label}"
        bank = self._donors.get(key)
        if bank is None or len(bank[kind]) == 0:
            raise ConceptError(f"No training cells with {key}: cannot intervene on it.")
        if donor == "mean":
            return bank[kind].mean(0)
        return bank[kind][torch.from_numpy(rng.integers(0, len(bank[kind]), n))]

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a self-contained model directory (weights, settings, genes, codes, donors).

        The directory is written whole under a hidden name next to ``path`` and then switched
        into place in one step (an atomic swap on Linux), so a kill at any moment leaves the
        old model or the new one, never a mix. ``model.pt`` and ``causcell.json`` carry the
        same token and each other's checksums, which :meth:`load` checks. ``overwrite=True``
        replaces only a model directory (or an empty one), never other files.
        """
        path = Path(path)
        check_model_target(path, overwrite)
        meta = {
            "format": "napari-causcell-model", "format_version": FORMAT_VERSION,
            "version": __version__,
            "genes": list(self.genes), "concepts": self.concept_space.to_dict(),
            "dag": [list(e) for e in self.edges], "seed": self.seed, "layer": self.layer,
            "log_normalized": self.log_normalized, "table_key": self.table_key,
            "config": self.module.config.to_dict(), "train_params": self.train_params,
            "history": self.history, "is_trained": self.is_trained,
        }
        meta = json.loads(json.dumps(meta))  # exactly what load will read
        token = uuid.uuid4().hex
        state = {"module": self.module.state_dict(),
                 "donors": {k: dict(v) for k, v in self._donors.items()},
                 "token": token, "settings_sha256": _settings_digest(meta)}
        path.parent.mkdir(parents=True, exist_ok=True)
        _safe_io.remove_leftovers(path)
        tmp = _safe_io.temp_sibling(path)
        try:
            tmp.mkdir()
            torch.save(state, tmp / WEIGHTS_FILE)
            meta["token"] = token
            meta["weights_sha256"] = _sha256(tmp / WEIGHTS_FILE)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
            _safe_io.kill_point("model-written")
            _safe_io.replace_dir(tmp, path)
        except BaseException:
            _safe_io.remove(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, data: Any = None) -> CausCell:
        """Load a directory written by :meth:`save`; ``data`` optionally attaches a dataset.

        Raises :class:`~napari_causcell.ModelFileError` for a missing, truncated, corrupt,
        tampered or inconsistent directory (files from two saves, settings that do not match
        the weights, an unknown ``format_version``).
        """
        path = Path(path)
        meta_file, weights_file = path / META_FILE, path / WEIGHTS_FILE
        if not path.is_dir():
            raise ModelFileError(f"{path} is not a model directory.")
        for f in (meta_file, weights_file):
            if not f.is_file():
                raise ModelFileError(f"{path} is incomplete: {f.name} is missing.")
        try:
            meta = json.loads(meta_file.read_text())
            if not isinstance(meta, dict) or meta.get("format") != "napari-causcell-model":
                raise ValueError("not a napari-causcell model")
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any parse failure means a bad directory
            raise ModelFileError(f"{path} is corrupt or truncated: {err}") from err
        _check_model_files(path, meta, state, weights_file)
        self = cls.__new__(cls)
        try:
            self.concept_space = ConceptSpace.from_dict(meta["concepts"])
            self.edges = [tuple(e) for e in meta["dag"]]
            self.genes = list(meta["genes"])
            self.layer, self.log_normalized = meta["layer"], meta["log_normalized"]
            self.table_key, self.seed = meta["table_key"], meta["seed"]
            _check_settings(self.concept_space, self.edges, self.genes, meta["config"])
            config = _without_retired(dict(meta["config"]), path, meta.get("version"))
            config.setdefault("standardize", False)  # saved before diffusion was standardised
            config.setdefault("u_dim", None)  # saved before the option existed: all entries
            self.module = CausCellModule(ModuleConfig(**config))
            self.module.load_state_dict(_with_new_buffers(state["module"], self.module))
            self._donors = {str(k): {str(kk): vv for kk, vv in v.items()}
                            for k, v in state["donors"].items()}
            _check_donors(self.concept_space, self._donors, self.module.config.token_dim)
            self.history, self.train_params = list(meta["history"]), dict(meta["train_params"])
            self.is_trained = meta["is_trained"]
            if not isinstance(self.is_trained, bool):
                raise TypeError(f"is_trained is {self.is_trained!r}, not true/false")
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as err:
            what = f"missing setting {err}" if isinstance(err, KeyError) else str(err)
            what = " ".join(what.split()) or type(err).__name__  # one line for front ends
            raise ModelFileError(
                f"{path}: the settings do not match the weights or are incomplete: "
                f"{what if len(what) <= 300 else what[:297] + '...'}"
            ) from err
        self.device = pick_device(device)
        self.module.to(self.device).eval()
        self.saved_version = meta.get("version")
        self._stop = threading.Event()
        self._adata = None
        if data is not None:
            self._adata = self._table(data)
            self._source(self._adata)  # genes mismatch fails here, not later
        return self


#: ModuleConfig options removed after the ablation measured them (docs/benchmarks.md,
#: "Ablation"), each with the value whose behaviour this version keeps
RETIRED_OPTIONS = {"concept_residual": True, "linear_skip": False, "cond_mlp": False}


def _without_retired(config: dict, path: Path, version: Any) -> dict:
    """A saved config without retired options; one set to a removed behaviour is refused."""
    for name, kept in RETIRED_OPTIONS.items():
        if name in config and config.pop(name) != kept:
            raise ModelFileError(
                f"{path} was saved with {name}={not kept!r}, an option this version no longer "
                f"has (measured and removed: docs/benchmarks.md, 'Ablation'). Load it with the "
                f"napari-causcell version that saved it ({version or 'unknown'}).")
    return config


def check_model_target(path: Path, overwrite: bool) -> None:
    """Refuse to write a model to ``path`` when that would lose something.

    An existing non-empty ``path`` needs ``overwrite=True`` and must be a model directory
    (only ``model.pt``/``causcell.json``): other files are never deleted. A file is refused.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a directory; refusing to replace it.")
    names = [p.name for p in path.iterdir()]
    if not names:
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists and is not empty; pass overwrite=True "
                              "(--overwrite) to replace it.")
    foreign = sorted(n for n in names if n not in (WEIGHTS_FILE, META_FILE)
                     and not n.endswith(".tmp"))
    if foreign:
        raise FileExistsError(f"{path} holds other files than a model ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}); refusing to replace it.")


_SETTINGS_KEYS = ("genes", "concepts", "dag", "seed", "layer", "log_normalized", "table_key",
                  "config", "is_trained")


def _settings_digest(meta: Mapping[str, Any]) -> str:
    """Checksum of the settings that must match the weights (stored in ``model.pt``)."""
    core = {k: meta.get(k) for k in _SETTINGS_KEYS}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: state added after format 1 models were written: older files load with these defaults
#: (identity scaling; a label SCM without effects, so descendants keep their labels)
_NEW_STATE = ("x_mean", "x_std", "label_scm.")


def _with_new_buffers(saved: dict, module: CausCellModule) -> dict:
    """``saved`` completed with the module's defaults for state that older versions lack."""
    out = dict(saved)
    for key, value in module.state_dict().items():
        if key not in out and key.startswith(_NEW_STATE):
            out[key] = value
    return out


def _check_model_files(path: Path, meta: dict, state: Any, weights_file: Path) -> None:
    """Format version, completeness and the pairing of ``model.pt`` with ``causcell.json``."""
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not (
            1 <= version <= FORMAT_VERSION):
        raise ModelFileError(
            f"{path} has format_version {version!r}; this napari-causcell "
            f"({__version__}) reads versions 1 to {FORMAT_VERSION}"
            + (": update napari-causcell." if isinstance(version, int) and version > 1 else ".")
        )
    missing = [k for k in (*_SETTINGS_KEYS, "history", "train_params") if k not in meta]
    if missing:
        raise ModelFileError(f"{path} is incomplete: causcell.json lacks {', '.join(missing)}.")
    if not isinstance(state, dict) or not isinstance(state.get("module"), dict) or \
            not isinstance(state.get("donors"), dict):
        raise ModelFileError(f"{path}: model.pt does not hold a napari-causcell model.")
    if version >= 2:
        if meta.get("token") != state.get("token") or meta.get("weights_sha256") != _sha256(
                weights_file):
            raise ModelFileError(
                f"{path}: model.pt and causcell.json do not belong together (files from "
                "different saves, or one was replaced or damaged); save the model again.")
        if state.get("settings_sha256") != _settings_digest(meta):
            raise ModelFileError(
                f"{path}: the settings in causcell.json were changed after saving (genes, "
                "concepts, labels, DAG or architecture no longer match the weights).")


def _check_settings(space: ConceptSpace, edges: list, genes: list, config: Mapping) -> None:
    """Settings that contradict each other or the weights' shapes (a tampered file)."""
    from .data.dag import DAGError

    names = list(space.names)
    if not names or len(set(names)) != len(names) or set(space.categories) != set(names):
        raise ValueError(f"concept names {names} do not match their label lists")
    for name in names:
        labels = space.categories[name]
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"concept {name!r} has labels {labels}")
    if not all(isinstance(g, str) for g in genes) or len(set(genes)) != len(genes):
        raise ValueError("the gene list has duplicates or non-text names")
    try:
        checked = validate_dag(names, [list(e) for e in edges])
    except DAGError as err:
        raise ValueError(f"bad DAG: {err}") from err
    if len(checked) != len(edges):
        raise ValueError("the DAG repeats edges")
    if config.get("n_genes") != len(genes):
        raise ValueError(f"{len(genes)} genes, but the weights are for {config.get('n_genes')}")
    if list(config.get("n_classes", [])) != space.n_classes():
        raise ValueError(f"label counts {space.n_classes()} do not match the weights' "
                         f"{config.get('n_classes')}")
    if np.asarray(config.get("adjacency")).tolist() != adjacency(names, checked).tolist():
        raise ValueError("the DAG does not match the weights' adjacency matrix")


def _check_donors(space: ConceptSpace, donors: Mapping, token_dim: int) -> None:
    for key, bank in donors.items():
        name, _, label = key.partition("=")
        if name not in space.names or label not in space.categories[name]:
            raise ValueError(f"donor bank {key!r} names no concept label of the model")
        for kind, t in bank.items():
            if not isinstance(t, torch.Tensor) or (t.ndim and t.shape[-1] != token_dim):
                raise ValueError(f"donor bank {key!r}/{kind} is not a token tensor")


def _finite(loss: torch.Tensor, world: int, device: torch.device) -> bool:
    """Whether ``loss`` is finite (in every process)."""
    ok = bool(torch.isfinite(loss.detach()).all())
    if world > 1:
        ok = not _all_reduce(float(not ok), "max", device)
    return ok


def _non_finite_error(what: str, epoch: int, step: int, lr: float) -> TrainingError:
    return TrainingError(
        f"Training stopped: the {what} became NaN or infinite at epoch {epoch} (step {step}). "
        f"Lower the learning rate (lr={lr:g}) or check the data."
    )


def _add_note(err: BaseException, note: str) -> None:
    if hasattr(err, "add_note"):
        err.add_note(note)
    train_note = getattr(err, "causcell_note", None)
    err.causcell_note = note if train_note is None else f"{train_note} {note}"


class _TrainStep(torch.nn.Module):
    """The module's two losses behind ``forward``, so DistributedDataParallel can wrap them.

    ``forward(x, y, w)`` is the main loss ``(total, parts, eps)``; with ``eps`` given, the
    adversaries' loss on those (detached) tokens.
    """

    def __init__(self, module: CausCellModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, x, y, w, eps=None):
        if eps is None:
            return self.module.loss(x, y, w)
        return self.module.adversary_loss(eps, y)


class _Prefetch:
    """Reads minibatch ``j + 1`` in a background thread while minibatch ``j`` trains."""

    def __init__(self, source: ExpressionSource, batches: list[np.ndarray]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._source, self._batches = source, batches
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="causcell-read")
        self._next: tuple[int, Any] | None = None
        self._submit(0)

    def _submit(self, j: int) -> None:
        self._next = None
        if j < len(self._batches):
            self._next = (j, self._pool.submit(self._source.rows, self._batches[j], False))

    def get(self, j: int) -> np.ndarray:
        if self._next is None or self._next[0] != j:
            raise RuntimeError(f"minibatch {j} was not prefetched")
        x = self._next[1].result()
        self._submit(j + 1)
        return x

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _all_rows(source: ExpressionSource) -> np.ndarray:
    """Every cell's input, dense float32 (for outputs that are dense anyway)."""
    return np.concatenate([b for _, b in source.chunks(check=False)])


#: validation losses summed to select the checkpoint (``train(select=...)``)
_MONITOR = {"recon": ("recon",), "recon+concept": ("recon", "concept")}
#: how front ends name that quantity
SELECT_LABELS = {"recon": "validation recon", "recon+concept": "validation recon + concept"}


def _share(x: float) -> str:
    """A share as a percentage that never reads 0 % or 100 % when it is neither."""
    if 0 < x < 0.01:
        return f"{x:.2%}" if x >= 1e-4 else "under 0.01%"
    return f"{x:.0%}" if x == 1 or x < 0.995 else "over 99.5%"


class _EMA:
    """Exponential moving average of parameters, swapped in and out of the module."""

    def __init__(self, params, decay: float) -> None:  # decay checked by train_args
        self.params = list(params)
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay, self.n, self.swapped = decay, 0, False

    @torch.no_grad()
    def update(self) -> None:
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

    def finish(self) -> None:
        if not self.swapped:
            self.swap()


def validation_loss(losses: Mapping[str, float], select: str = "recon",
                    prefix: str = "") -> float | None:
    """The validation quantity that picks the kept weights (``train(select=...)``).

    ``losses`` is a :class:`TrainProgress`'s ``val_losses`` or, with ``prefix="val_"``, a
    ``history`` record. ``None`` when it has no validation losses.
    """
    keys = [prefix + k for k in _MONITOR[select]]
    if not all(k in losses for k in keys):
        return None
    return float(sum(losses[k] for k in keys))


def _dist_rank_world() -> tuple[int, int]:
    """``(rank, world size)`` of an initialised process group, else ``(0, 1)``."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce(value, op: str, device: torch.device):
    """Sum or max of a float (or list of floats) over all processes."""
    dist = torch.distributed
    dev = device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(value, dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.tolist()


def _autocast(device: torch.device, precision: str):
    if precision not in ("32", "bf16"):
        raise ValueError(f"precision must be '32' or 'bf16', got {precision!r}")
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _progress_bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="CausCell training", unit="epoch")
