"""The cells of one training run: seeded split, streamed statistics, epoch minibatches.

Data loading stays ours (never densified whole): minibatches are read from the matrix as it
is (CSR, dense, backed ``.h5ad`` or dask) through :class:`~napari_causcell.data.stream.
ExpressionSource`; small in-memory data are held densely on the device for speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.stream import ExpressionSource
from ..errors import DataError

DENSE_CACHE_VALUES = 50_000_000  # in-memory data up to this size are held densely
#: ``reduce(values, op)``: sum or max of floats over the processes (identity for one)
Reduce = Callable[[list[float], str], list[float]]


def split(obs_names: Sequence[str], seed: int, fraction: float,
          saved: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(validation, training)`` row indices, sorted.

    The validation cells saved with a model (``saved``) stay validation cells where the data
    hold them; otherwise a seeded split holds out ``fraction`` of the cells (none under 20).
    """
    n = len(obs_names)
    if saved is not None and len(saved):
        mask = np.isin(np.asarray(obs_names, dtype=str), np.asarray(saved, dtype=str))
        if mask.any():
            return np.flatnonzero(mask), np.flatnonzero(~mask)
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fraction * n)) if n >= 20 else 0
    return np.sort(perm[:n_val]), np.sort(perm[n_val:])


@dataclass
class DataStats:
    """What one pass over the training cells finds: clipping bound and gene moments."""

    top: float
    mean: np.ndarray
    std: np.ndarray


class TrainData:
    """Training and validation cells of one :meth:`CausCell.train` call.

    Parameters
    ----------
    source
        The model's input, read and normalised per minibatch.
    codes
        Label codes ``(n_cells, n_concepts)``.
    val_idx, train_idx
        Row indices from :func:`split`.
    """

    def __init__(self, source: ExpressionSource, codes: np.ndarray, val_idx: np.ndarray,
                 train_idx: np.ndarray) -> None:
        if len(train_idx) == 0:
            raise DataError("No cells left for training.")
        self.source, self.codes = source, codes
        self.val_idx, self.train_idx = val_idx, train_idx
        self.device = torch.device("cpu")
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None

    def check_processes(self, world: int) -> None:
        if len(self.train_idx) < 2 * world:
            raise DataError(f"{len(self.train_idx)} training cells cannot be split over "
                            f"{world} processes.")

    def stats(self, rank: int, world: int, reduce: Reduce) -> DataStats:
        """One pass over this process's share: checks every value, finds the clipping bound
        and the genes' moments without holding the whole matrix."""
        top, s1, s2, n_seen = self.source.stats(self.train_idx[rank::world])
        if len(self.val_idx):
            self.source.max(self.val_idx[rank::world])  # validation cells are checked too
        if world > 1:
            top = reduce([float(top)], "max")[0]
            tot = reduce(list(s1) + list(s2) + [n_seen], "sum")
            g = len(s1)
            s1, s2, n_seen = np.asarray(tot[:g]), np.asarray(tot[g:2 * g]), tot[-1]
        mean = s1 / max(n_seen, 1)
        std = np.sqrt(np.maximum(s2 / max(n_seen, 1) - mean**2, 0.0))
        return DataStats(float(top), mean, std)

    def to_device(self, device: torch.device) -> None:
        """Labels on ``device``; small in-memory data also held densely there."""
        self.device = device
        self._y = torch.from_numpy(self.codes).to(device)
        src = self.source
        if src.backed or len(src) * len(src.genes) > DENSE_CACHE_VALUES:
            return
        self._x = torch.empty((len(src), len(src.genes)), dtype=torch.float32, device=device)
        for rows, block in src.chunks(check=False):
            self._x[torch.from_numpy(rows).to(device)] = torch.from_numpy(block).to(device)

    @property
    def cached(self) -> bool:
        return self._x is not None

    def batch(self, rows: np.ndarray, x: np.ndarray | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Expression and label codes of ``rows`` on the device."""
        r = torch.from_numpy(rows).to(self.device)
        if self._x is not None:
            return self._x[r], self._y[r]
        xb = torch.from_numpy(self.source.rows(rows, check=False) if x is None else x)
        pin = self.device.type == "cuda"
        if pin:  # page-locked host memory: asynchronous copy to the GPU
            xb = xb.pin_memory()
        return xb.to(self.device, non_blocking=pin), self._y[r]


class EpochBatches:
    """Minibatches of one epoch after another: this process's share of every global batch of
    ``batch_size`` cells, in an order drawn from ``seed + 1`` (the same in every process), so
    steps per epoch and optimisation match single-process training. Too small a last batch is
    skipped. Data not held densely are read one batch ahead in a thread."""

    def __init__(self, data: TrainData, batch_size: int, seed: int, rank: int = 0,
                 world: int = 1) -> None:
        self.data, self.batch_size, self.rank, self.world = data, batch_size, rank, world
        self.order_gen = np.random.default_rng(seed + 1)

    def _shares(self, order: np.ndarray) -> list[np.ndarray]:
        b, w = self.batch_size, self.world
        return [order[i : i + b][self.rank::w] for i in range(0, len(order), b)
                if len(order[i : i + b]) >= 2 * w]

    def __len__(self) -> int:
        return len(self._shares(self.data.train_idx))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        shares = self._shares(self.order_gen.permutation(self.data.train_idx))
        ahead = None if self.data.cached else _Prefetch(self.data.source, shares)
        try:
            for j, rows in enumerate(shares):
                yield self.data.batch(rows, None if ahead is None else ahead.get(j))
        finally:
            if ahead is not None:
                ahead.close()


class _Prefetch:
    """Reads minibatch ``j + 1`` in a background thread while minibatch ``j`` trains."""

    def __init__(self, source: ExpressionSource, batches: list[np.ndarray]) -> None:
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
