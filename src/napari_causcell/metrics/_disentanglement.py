"""Disentanglement: what each embedding knows of each label.

:func:`probe` (cross-validated logistic-regression accuracy and macro-F1 of every embedding
for every label: own label and leakage to the others), :func:`leakage_summary`,
:func:`cluster_consistency` (NMI / ARI of clusters of an embedding against labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ._utils import dense

__all__ = ["cluster_consistency", "leakage_summary", "probe"]

def probe(
    embeddings: Mapping[str, np.ndarray],
    labels: pd.DataFrame,
    *,
    folds: int = 5,
    seed: int = 0,
    max_cells: int | None = 5000,
) -> pd.DataFrame:
    """Linear-probe accuracy and macro-F1 of every embedding for every label.

    A standardised logistic regression is trained on ``folds - 1`` folds and scored on the
    held-out fold (stratified, seeded), for each embedding x label pair.

    Parameters
    ----------
    embeddings
        ``{name: (n_cells, d) array}``, e.g. one token per concept plus ``u``.
    labels
        One column per label, ``n_cells`` rows (same order as the embeddings).
    folds
        Cross-validation folds; a class with fewer cells is left out (see ``left_out``).
    max_cells
        Seeded subsample above this many cells (probes are quadratic-ish in cost).

    Returns
    -------
    pandas.DataFrame
        Long form, one row per pair: ``embedding``, ``label``, ``accuracy``, ``macro_f1``,
        ``chance`` (majority-class rate), ``own`` (embedding named like the label),
        ``above_chance`` = ``(accuracy - chance) / (1 - chance)`` (0 = chance, 1 = perfect)
        and ``left_out``: the classes with fewer cells than ``folds`` (e.g. 2 macrophages),
        whose cells that label's probe leaves out (stratified folds cannot split them;
        ``""`` when none).
    """
    idx = _probe_cells(embeddings, len(labels), seed, max_cells)
    codes = {label: _probe_codes(labels, label, idx, folds) for label in labels.columns}
    rows = []
    for label, (y, k, keep, left_out) in codes.items():  # every label checked before any fit
        part = _probe_label(embeddings, label, y, k, idx[keep], seed)
        rows += [{**r, "left_out": left_out} for r in part]
    return pd.DataFrame(rows)


def _probe_cells(embeddings: Mapping[str, np.ndarray], n: int, seed: int,
                 max_cells: int | None) -> np.ndarray:
    """The rows :func:`probe` uses (a seeded subsample above ``max_cells``), after checking
    that every embedding has ``n`` rows."""
    if not embeddings:
        raise DataError("No embeddings given.")
    for name, x in embeddings.items():
        if np.asarray(x).shape[0] != n:
            raise DataError(f"Embedding {name!r} has {np.asarray(x).shape[0]} rows; labels "
                            f"have {n}.")
    idx = np.arange(n)
    if max_cells is not None and n > max_cells:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_cells, replace=False))
    return idx


def _probe_codes(labels: pd.DataFrame, label: str, idx: np.ndarray,
                 folds: int) -> tuple[np.ndarray, int, np.ndarray, str]:
    """Class codes of ``label`` on the kept rows of ``idx``, the number of folds, the mask of
    kept rows and the classes left out (``"Macrophage (2 cells)"``; ``""`` for none).

    A class with fewer cells than ``folds`` cannot be split in stratified folds: its cells
    are left out of this label's probe (said in the result) rather than failing the probe.
    """
    values = labels[label].astype(str).to_numpy()[idx]
    names, counts = np.unique(values, return_counts=True)
    if len(names) < 2:
        raise DataError(f"Label {label!r} has one class only: nothing to probe.")
    small = counts < max(int(folds), 2)
    if (~small).sum() < 2:
        raise DataError(f"Label {label!r} has fewer than two classes with >= {max(folds, 2)} "
                        f"cells (counts {dict(zip(names.tolist(), counts.tolist()))}); use "
                        "more cells or fewer folds.")
    keep = ~np.isin(values, names[small])
    left_out = ", ".join(f"{n} ({c} cell{'s' if c > 1 else ''})"
                         for n, c in zip(names[small], counts[small]))
    y = pd.Categorical(values[keep]).codes
    return y, int(folds), keep, left_out


def _probe_label(embeddings: Mapping[str, np.ndarray], label: str, y: np.ndarray, k: int,
                 idx: np.ndarray, seed: int) -> list[dict]:
    """One :func:`probe` row per embedding for ``label`` (codes ``y``, ``k`` folds)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cv = StratifiedKFold(k, shuffle=True, random_state=seed)
    counts = np.bincount(y)
    chance = float(counts.max() / counts.sum())
    rows = []
    for name, x in embeddings.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        s = cross_validate(model, np.asarray(x)[idx], y, cv=cv,
                           scoring=("accuracy", "f1_macro"))
        acc = float(s["test_accuracy"].mean())
        rows.append({"embedding": name, "label": label, "accuracy": acc,
                     "macro_f1": float(s["test_f1_macro"].mean()), "chance": chance,
                     "own": name == label,
                     "above_chance": (acc - chance) / (1 - chance) if chance < 1 else 0.0})
    return rows


def leakage_summary(table: pd.DataFrame) -> dict[str, float]:
    """Summarise a :func:`probe` table in three numbers.

    Returns
    -------
    dict
        ``own_accuracy`` (mean accuracy of each concept embedding for its own label),
        ``own_f1`` (same, macro-F1) and ``leakage`` (mean ``above_chance`` of every embedding
        for every label it is not named after: 0 = knows nothing of them, 1 = everything).
    """
    own = table[table["own"]]
    other = table[~table["own"]]
    return {
        "own_accuracy": float(own["accuracy"].mean()) if len(own) else float("nan"),
        "own_f1": float(own["macro_f1"].mean()) if len(own) else float("nan"),
        "leakage": float(other["above_chance"].mean()) if len(other) else float("nan"),
    }


def ward(x: np.ndarray, n_clusters: int, n_pcs: int, seed: int, basis=None):
    """Ward clusters of ``x`` on its first ``n_pcs`` principal components (or on those of
    ``basis``, a fitted PCA); the clusters and the PCA used."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.decomposition import PCA

    if basis is None:
        k = int(min(n_pcs, x.shape[1], x.shape[0] - 1))
        basis = PCA(k, random_state=seed).fit(x) if k < x.shape[1] else None
    y = basis.transform(x) if basis is not None else x
    return AgglomerativeClustering(n_clusters=n_clusters, linkage="ward").fit_predict(y), basis


def cluster_consistency(
    embedding: np.ndarray, labels: Sequence, *, n_clusters: int | None = None,
    n_pcs: int = 30, seed: int = 0,
) -> dict[str, float]:
    """NMI and ARI between Ward clusters of an embedding and a label.

    ``n_clusters`` defaults to the number of distinct labels. Use it with *fine* labels on an
    embedding trained with coarse ones to see whether the embedding keeps finer structure.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels).astype(str)
    x = dense(embedding)
    if x.shape[0] != len(labels):
        raise DataError(f"Embedding has {x.shape[0]} rows; labels have {len(labels)}.")
    k = n_clusters or len(np.unique(labels))
    clusters, _ = ward(x, k, n_pcs, seed)
    return {"nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters))}


