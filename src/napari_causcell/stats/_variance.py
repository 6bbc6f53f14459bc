"""Pooled within-group variance and the stratified delete-one jackknife."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def pooled_variance(samples: Iterable[np.ndarray], n_cols: int) -> tuple[np.ndarray, int]:
    """Within-sample variance per column, pooled over samples (rows: observations).

    ``sum_k sum_i (x_ki - mean_k)^2 / sum_k (n_k - 1)`` over the samples with two or more
    rows, and its degrees of freedom ``sum_k (n_k - 1)``; NaN and 0 without such a sample.
    """
    ss, dfree = np.zeros(n_cols), 0
    for m in samples:
        if len(m) >= 2:
            ss += ((m - m.mean(0)) ** 2).sum(0)
            dfree += len(m) - 1
    return (ss / dfree if dfree else np.full(n_cols, np.nan)), dfree


def jackknife_variance(per_model: np.ndarray, strata: np.ndarray) -> tuple[np.ndarray, float]:
    """Stratified delete-one jackknife variance per column, and its degrees of freedom.

    ``per_model`` holds one row per estimate; ``strata`` the stratum of the unit each row
    left out, ``None`` for estimates from all units (not used). Per stratum ``s`` with
    ``n_s >= 2`` rows: ``(n_s - 1) / n_s * sum_i (theta_(i) - mean_s)^2``, summed over strata
    (in sorted order), with ``sum_s (n_s - 1)`` degrees of freedom; NaN and 0 without.
    """
    var, dfree = np.zeros(per_model.shape[1]), 0.0
    for level in sorted({s_ for s_ in strata if s_ is not None}):
        th = per_model[strata == level]
        if len(th) >= 2:
            var += (len(th) - 1) / len(th) * ((th - th.mean(0)) ** 2).sum(0)
            dfree += len(th) - 1.0
    return (var if dfree > 0 else np.full(per_model.shape[1], np.nan)), dfree
