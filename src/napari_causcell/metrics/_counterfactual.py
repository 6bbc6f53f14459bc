"""Counterfactuals with a known truth: predicted against true changes.

:func:`group_mean_change`, :func:`change_correlation`, :func:`responsive_auroc`,
:func:`energy_distance`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ._utils import dense

__all__ = ["change_correlation", "energy_distance", "group_mean_change", "responsive_auroc"]

def group_mean_change(
    change, groups: Sequence, *, order: Sequence[str] | None = None, min_cells: int = 1,
) -> pd.DataFrame:
    """Mean per-cell change (cells x genes) per group -> ``groups x genes`` DataFrame.

    Groups with fewer than ``min_cells`` cells are dropped; ``order`` fixes the row order
    (groups absent from the data are dropped too).
    """
    x = dense(change)
    groups = np.asarray(groups).astype(str)
    if len(groups) != x.shape[0]:
        raise DataError(f"groups has {len(groups)} entries; change has {x.shape[0]} rows.")
    counts = pd.Series(groups).value_counts()
    names = [str(g) for g in (order if order is not None else sorted(counts.index))]
    names = [g for g in names if counts.get(g, 0) >= min_cells]
    return pd.DataFrame(np.vstack([x[groups == g].mean(0) for g in names]) if names
                        else np.zeros((0, x.shape[1])), index=names)


def change_correlation(predicted, true) -> float:
    """Pearson r of predicted vs true changes (e.g. two ``groups x genes`` matrices of
    :func:`group_mean_change`), flattened; ``0.0`` where undefined (a constant prediction
    such as the no-change foil)."""
    a, b = dense(np.asarray(predicted)).ravel(), dense(np.asarray(true)).ravel()
    if a.shape != b.shape:
        raise DataError(f"Shapes differ: {np.shape(predicted)} vs {np.shape(true)}.")
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b / den) if den > 0 else 0.0


def responsive_auroc(predicted, true, *, threshold: float = 0.25) -> float:
    """AUROC of ranking the truly responsive entries by the size of the predicted change.

    An entry (e.g. a cell type x gene pair of :func:`group_mean_change`) is responsive when
    ``|true| >= threshold``; the score is ``roc_auc_score(responsive, |predicted|)``
    (0.5 = no better than chance, 1 = every responsive gene ranked first). ``nan`` when all
    or none of the entries are responsive.
    """
    from sklearn.metrics import roc_auc_score

    p, t = np.abs(dense(np.asarray(predicted))).ravel(), dense(np.asarray(true)).ravel()
    if p.shape != t.shape:
        raise DataError(f"Shapes differ: {np.shape(predicted)} vs {np.shape(true)}.")
    hit = np.abs(t) >= threshold
    if hit.all() or not hit.any():
        return float("nan")
    return float(roc_auc_score(hit, p))


def energy_distance(
    x, y, *, n_pcs: int | None = 30, max_cells: int = 2000, seed: int = 0,
) -> float:
    """Energy distance between two cell populations, ``2E|X-Y| - E|X-X'| - E|Y-Y'|``.

    Zero for identical samples, never negative, and grows with any difference in mean or
    shape (Székely & Rizzo; V-statistic form).
    Both are projected on the first ``n_pcs`` principal components of ``y`` (e.g. the true
    counterfactual cells; ``None`` keeps genes) and subsampled to ``max_cells`` each (seeded).
    """
    from sklearn.decomposition import PCA
    from sklearn.metrics import pairwise_distances

    x, y = dense(x), dense(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise DataError(f"x and y must be cells x genes with the same genes, got {x.shape} "
                        f"and {y.shape}.")
    if len(x) < 2 or len(y) < 2:
        raise DataError("Each population needs at least two cells.")
    rng = np.random.default_rng(seed)
    x = x[rng.choice(len(x), max_cells, replace=False)] if len(x) > max_cells else x
    y = y[rng.choice(len(y), max_cells, replace=False)] if len(y) > max_cells else y
    if n_pcs is not None and n_pcs < x.shape[1]:
        pca = PCA(min(n_pcs, len(y) - 1), random_state=seed).fit(y)
        x, y = pca.transform(x), pca.transform(y)
    # V-statistics (self-pairs included): >= 0, and exactly 0 for identical samples
    xy = pairwise_distances(x, y).mean()
    return float(2 * xy - pairwise_distances(x).mean() - pairwise_distances(y).mean())
