"""What training callbacks receive, and the validation quantity that selects the weights."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

#: validation losses summed to select the kept weights (``train(select=...)``)
MONITOR = {"recon": ("recon",), "recon+concept": ("recon", "concept")}
#: how front ends name that quantity
SELECT_LABELS = {"recon": "validation recon", "recon+concept": "validation recon + concept"}


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


def validation_loss(losses: Mapping[str, float], select: str = "recon",
                    prefix: str = "") -> float | None:
    """The validation quantity that picks the kept weights (``train(select=...)``).

    ``losses`` is a :class:`TrainProgress`'s ``val_losses`` or, with ``prefix="val_"``, a
    ``history`` record. ``None`` when it has no validation losses.
    """
    keys = [prefix + k for k in MONITOR[select]]
    if not all(k in losses for k in keys):
        return None
    return float(sum(losses[k] for k in keys))
