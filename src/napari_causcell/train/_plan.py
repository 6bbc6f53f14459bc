"""The training plan: CausCell's two updates per minibatch on Lightning.

The shape of scvi-tools' ``AdversarialTrainingPlan``: manual optimisation, one step of the
main loss (encoder, SCM, heads, generator) and one step of the adversaries on the detached
tokens, each with its own AdamW.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as lp
import numpy as np
import torch

from ..errors import TrainingError
from ..model import CausCellModule, LossWeights
from ._data import EpochBatches, TrainData

VAL_BATCH = 512
VAL_SEED_OFFSET = 7  # validation noise: the same every epoch, so val losses compare
PART_KEYS = ("recon", "concept", "confusion", "kl")
#: a step loss this many times its first value (at least 1) has diverged, not only NaN
DIVERGED = 1000.0


class TrainingPlan(lp.LightningModule):
    """Optimisation of a :class:`~napari_causcell.model.CausCellModule` on :class:`TrainData`.

    Parameters
    ----------
    module
        The network, trained in place.
    data
        Training and validation cells.
    seed
        Seed of the minibatch order (``seed + 1``) and the training noise
        (``seed + 1000 * rank``).
    """

    def __init__(self, module: CausCellModule, data: TrainData, *, seed: int, lr: float,
                 weight_decay: float, weights: LossWeights, batch_size: int,
                 concepts: list[str], step0: int = 0) -> None:
        super().__init__()
        self.module = module
        self.automatic_optimization = False
        self.data, self.seed, self.lr, self.weight_decay = data, seed, lr, weight_decay
        self.weights, self.batch_size, self.concepts = weights, batch_size, concepts
        self.steps = step0
        self._sums: dict[str, float] = {}
        self._n_batches = 0
        self._first: dict[str, float] = {}  # each loss at the first step, for divergence

    # -- set-up ------------------------------------------------------------------------------
    def reduce(self, values: list[float], op: str) -> list[float]:
        """Sum or max of floats over all processes (the strategy's collective)."""
        if self.trainer.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if op == "max":
            t = self.trainer.strategy.all_gather(t).max(0).values
        else:
            t = self.trainer.strategy.reduce(t, reduce_op="sum")
        return t.tolist()

    def on_fit_start(self) -> None:
        """Data statistics (clipping bound, gene scale, label priors, label SCM) from one
        streamed pass over the training cells, then the data on the device."""
        rank, world = self.trainer.global_rank, self.trainer.world_size
        self.data.check_processes(world)
        stats = self.data.stats(rank, world, self.reduce)
        mod = self.module
        mod.clip_max.fill_(stats.top * 1.2 if stats.top > 0 else 1.0)
        mod.set_scale(torch.from_numpy(stats.mean).float(), torch.from_numpy(stats.std).float())
        y = self.data.codes[self.data.train_idx]
        priors = [np.bincount(y[:, k], minlength=c) / len(y)
                  for k, c in enumerate(mod.config.n_classes)]
        mod.label_prior.copy_(torch.from_numpy(np.concatenate(priors).astype(np.float32)))
        mod.label_scm.fit(torch.from_numpy(y).long().to(self.device))
        self.data.to_device(self.device)

    def on_train_start(self) -> None:
        """Seed the training noise."""
        torch.manual_seed(self.seed + 1000 * self.trainer.global_rank)  # each process its noise

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """AdamW for the main parameters and AdamW for the adversaries."""
        mod, wd = self.module, self.weight_decay
        return [torch.optim.AdamW(mod.main_parameters(), lr=self.lr, weight_decay=wd),
                torch.optim.AdamW(mod.adversaries.parameters(), lr=self.lr, weight_decay=wd)]

    def train_dataloader(self) -> EpochBatches:
        """This process's minibatches, epoch after epoch."""
        return EpochBatches(self.data, self.batch_size, self.seed, self.trainer.global_rank,
                            self.trainer.world_size)

    # -- steps -------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        """Training mode; the epoch's loss sums start at zero."""
        self.module.train()
        self._sums, self._n_batches = {}, 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """One step of the main loss, then one of the adversaries on the detached tokens."""
        x, y = batch
        opt, adv_opt = self.optimizers(use_pl_optimizer=False)
        out = self.module.loss(x, y, self.weights)
        self._check_finite(out.total, "loss")  # before the step: the weights stay good
        opt.zero_grad(set_to_none=True)
        self.manual_backward(out.total)
        opt.step()
        adv = self.module.adversary_loss(out.eps, y)
        self._check_finite(adv, "adversary loss")
        adv_opt.zero_grad(set_to_none=True)
        adv.backward()  # the adversaries are outside DDP's gradient sync (a second backward)
        self._average_adversary_grads()
        adv_opt.step()
        self.steps += 1
        self._n_batches += 1
        for k, v in {**out.parts, "adversary": adv, "total": out.total}.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v.detach())

    def _check_finite(self, loss: torch.Tensor, what: str) -> None:
        """Refuse a NaN, infinite or exploded loss before the optimiser step, so the weights
        stay good (every process decides together)."""
        value = float(loss.detach())
        if math.isfinite(value):
            self._first.setdefault(what, value)
        problem = loss_problem(value, self._first.get(what))
        ok = problem is None
        if self.trainer.world_size > 1:
            ok = self.trainer.strategy.reduce_boolean_decision(ok, all=True)
        if not ok:
            raise TrainingError(
                f"Training stopped: the {what} {problem or 'diverged in another process'} at "
                f"epoch {self.current_epoch + 1} (step {self.steps + 1}). Lower the learning "
                f"rate (lr={self.lr:g}) or check the data.")

    def _average_adversary_grads(self) -> None:
        if self.trainer.world_size == 1:
            return
        for p in self.module.adversaries.parameters():
            if p.grad is not None:
                p.grad = self.trainer.strategy.reduce(p.grad, reduce_op="mean")

    # -- epoch summary -----------------------------------------------------------------------
    def epoch_losses(self) -> dict[str, float]:
        """Mean training losses of this epoch (averaged over the processes)."""
        losses = {k: v / max(self._n_batches, 1) for k, v in self._sums.items()}
        if self.trainer.world_size > 1 and losses:
            keys = sorted(losses)
            avg = self.reduce([losses[k] for k in keys], "sum")
            losses = {k: v / self.trainer.world_size for k, v in zip(keys, avg)}
        return losses

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation losses and the heads' accuracy per concept (empty without validation
        cells); every process scores its share and the sums are added up."""
        idx = self.data.val_idx
        if len(idx) == 0:
            return {}
        mod = self.module
        mod.eval()
        sums, correct = dict.fromkeys(PART_KEYS, 0.0), np.zeros(mod.n_concepts)
        mine = idx[self.trainer.global_rank::self.trainer.world_size]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + VAL_SEED_OFFSET)
            for i in range(0, len(mine), VAL_BATCH):
                xb, yb = self.data.batch(mine[i : i + VAL_BATCH])
                out = mod.loss(xb, yb, self.weights)
                for k, v in out.parts.items():
                    sums[k] += float(v) * len(xb)
                correct += [float((lg.argmax(-1) == yb[:, k]).sum())
                            for k, lg in enumerate(mod.classify(out.eps))]
        total = self.reduce([sums[k] for k in PART_KEYS] + list(correct), "sum")
        out_d = {k: v / len(idx) for k, v in zip(PART_KEYS, total)}
        out_d.update({f"acc_{c}": float(a / len(idx))
                      for c, a in zip(self.concepts, total[len(PART_KEYS):])})
        return out_d

    def state(self) -> dict[str, Any]:
        """A detached copy of the network's weights."""
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}


def loss_problem(value: float, first: float | None) -> str | None:
    """Why a step's loss must stop training, or ``None``: NaN or infinite, or exploded to
    more than :data:`DIVERGED` times its first value (at least 1)."""
    if not math.isfinite(value):
        return "became NaN or infinite"
    if first is not None and abs(value) > DIVERGED * max(abs(first), 1.0):
        return f"diverged ({value:.3g}; {first:.3g} at the first step)"
    return None
