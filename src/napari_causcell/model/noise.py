"""Per-cell random streams: each row's numbers depend on the seed, the stream and the row's
key only, so a cell draws the same noise whatever other cells share its batch, and in
whatever order or batch size they come.

Counter-based: a number is a hash (splitmix64's finaliser) of ``(seed, stream, key, call,
column)``; nothing is stateful but the count of calls, which every batch replays alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = (np.uint64(s) for s in (30, 27, 31))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on ``uint64`` (wrapping arithmetic)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def _fold(*values: int) -> np.ndarray:
    """One ``uint64`` (as a 1-element array) from a tuple of non-negative integers."""
    h = np.zeros(1, np.uint64)
    for v in values:
        h = _mix(h + np.array([int(v) % 2**64], np.uint64) * _GOLDEN + _GOLDEN)
    return h


def cell_keys(names: Sequence[str] | pd.Index) -> np.ndarray:
    """``uint64`` keys of cells from their names (obs names): pandas' fixed-key SipHash, the
    same on every machine and run."""
    return pd.util.hash_array(np.asarray(names, dtype=object)).astype(np.uint64)


class CellNoise:
    """Random numbers per row (cell), from ``(seed, stream, row key)`` alone.

    Parameters
    ----------
    keys
        One ``uint64`` per row (:func:`cell_keys`).
    seed
        The run's seed.
    stream
        Integers naming what the numbers are for (so two uses never share numbers).

    Each call of :meth:`rand` or :meth:`randn` advances a counter; a subset of rows
    (:meth:`rows`) keeps the counter, so batches that make the same calls draw the same
    numbers for the same cells.
    """

    def __init__(self, keys: np.ndarray, seed: int, stream: Sequence[int] = ()) -> None:
        self.keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
        self.seed, self.stream = int(seed), tuple(int(s) for s in stream)
        self._base = _fold(self.seed, len(self.stream), *self.stream)
        self.calls = 0

    def __len__(self) -> int:
        return len(self.keys)

    def child(self, *stream: int) -> CellNoise:
        """The same rows, a new stream (counter at zero)."""
        return CellNoise(self.keys, self.seed, self.stream + tuple(stream))

    def rows(self, index) -> CellNoise:
        """The rows ``index`` (slice, integer array, boolean mask or tensor), same counter."""
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        out = CellNoise(self.keys[index], self.seed, self.stream)
        out.calls = self.calls
        return out

    def _bits(self, rows: int, cols: int) -> np.ndarray:
        """``(rows, cols)`` hashes of ``(seed, stream, key, call, column)``, as ``uint64``."""
        if rows != len(self.keys):
            raise ValueError(f"noise for {len(self.keys)} rows asked for {rows} rows")
        call = _fold(self.calls, 0x5EED)
        self.calls += 1
        row = _mix(self.keys ^ _mix(self._base ^ call))
        col = np.arange(1, cols + 1, dtype=np.uint64) * _GOLDEN
        return _mix(row[:, None] + col[None, :])

    def _unit(self, shape: Sequence[int]) -> tuple[torch.Tensor, tuple[int, int]]:
        """Pairs of floats in ``[1, 2)`` (23 random mantissa bits each) for ``shape``."""
        shape = tuple(int(s) for s in shape)
        rows = shape[0] if shape else 0
        cols = int(np.prod(shape[1:], dtype=np.int64))
        half = (cols + 1) // 2
        halves = self._bits(rows, half).view(np.uint32).reshape(rows, half, 2)
        f = ((halves >> np.uint32(9)) | np.uint32(0x3F800000)).view(np.float32)
        return torch.from_numpy(f), (rows, cols)

    def rand(self, shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        """Uniform numbers in ``(0, 1)``, ``float32``, rows first."""
        f, (rows, cols) = self._unit(shape)
        u = (f - (1.0 - 2.0**-24)).reshape(rows, -1)[:, :cols]
        return u.reshape(tuple(shape)).to(device)

    def randn(self, shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        """Standard normal numbers (Box-Muller, both branches), ``float32``, rows first."""
        f, (rows, cols) = self._unit(shape)
        radius = torch.sqrt(-2.0 * torch.log(2.0 - f[..., 0]))
        angle = (2.0 * np.pi) * (f[..., 1] - 1.0)
        z = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], 1)[:, :cols]
        return z.reshape(tuple(shape)).to(device)


def draw_randn(source, shape, device) -> torch.Tensor:
    """Normal noise of ``shape`` on ``device`` from a :class:`CellNoise`, a
    ``torch.Generator`` or ``None`` (torch's global generator)."""
    if isinstance(source, CellNoise):
        return source.randn(shape, device)
    dev = source.device if source is not None else device
    return torch.randn(shape, generator=source, device=dev).to(device)


def draw_rand(source, shape, device) -> torch.Tensor:
    """Uniform noise in ``[0, 1)``, like :func:`draw_randn`."""
    if isinstance(source, CellNoise):
        return source.rand(shape, device)
    dev = source.device if source is not None else device
    return torch.rand(shape, generator=source, device=dev).to(device)
