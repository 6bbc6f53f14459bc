"""Quality metrics of disentanglement, reconstruction and counterfactuals.

Plain functions of arrays and label tables (no model, no AnnData required), as the CausCell
paper defines them, so any method's output can be scored the same way:

- **Disentanglement**: :func:`probe` (cross-validated logistic-regression accuracy and
  macro-F1 of every embedding for every label: own label and leakage to the others),
  :func:`leakage_summary`, :func:`cluster_consistency` (NMI / ARI of clusters of an
  embedding against labels).
- **Reconstruction**: :func:`per_cell_pearson`, :func:`per_cell_mse`,
  :func:`cluster_agreement` (NMI / ARI between Ward clusterings of real and generated cells),
  :func:`marker_overlap` (top-50 Wilcoxon markers per group, real vs generated).
- **Counterfactuals with known truth**: :func:`group_mean_change`,
  :func:`change_correlation`, :func:`responsive_auroc`, :func:`energy_distance`.

Expression matrices are cells x genes in the same (e.g. log-normalised) space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "change_correlation", "cluster_agreement", "cluster_consistency", "energy_distance",
    "group_mean_change", "leakage_summary", "marker_overlap", "per_cell_mse",
    "per_cell_pearson", "probe", "responsive_auroc",
]


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


def _pair(real, gen) -> tuple[np.ndarray, np.ndarray]:
    real, gen = _dense(real), _dense(gen)
    if real.shape != gen.shape or real.ndim != 2:
        raise ValueError(f"real and generated must be cells x genes of one shape, got "
                         f"{real.shape} and {gen.shape}")
    if real.shape[0] == 0:
        raise ValueError("No cells to compare.")
    return real, gen


# -- disentanglement -------------------------------------------------------------------------
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
        Cross-validation folds (each class needs at least this many cells).
    max_cells
        Seeded subsample above this many cells (probes are quadratic-ish in cost).

    Returns
    -------
    pandas.DataFrame
        Long form, one row per pair: ``embedding``, ``label``, ``accuracy``, ``macro_f1``,
        ``chance`` (majority-class rate), ``own`` (embedding named like the label) and
        ``above_chance`` = ``(accuracy - chance) / (1 - chance)`` (0 = chance, 1 = perfect).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not embeddings:
        raise ValueError("No embeddings given.")
    n = len(labels)
    for name, x in embeddings.items():
        if np.asarray(x).shape[0] != n:
            raise ValueError(f"Embedding {name!r} has {np.asarray(x).shape[0]} rows; labels "
                             f"have {n}.")
    idx = np.arange(n)
    if max_cells is not None and n > max_cells:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_cells, replace=False))
    rows = []
    for label in labels.columns:
        y = pd.Categorical(labels[label].astype(str).to_numpy()[idx]).codes
        counts = np.bincount(y)
        if (counts > 0).sum() < 2:
            raise ValueError(f"Label {label!r} has one class only: nothing to probe.")
        k = int(min(folds, counts[counts > 0].min()))
        if k < 2:
            raise ValueError(f"Label {label!r} has a class with one cell; need >= 2 per class.")
        cv = StratifiedKFold(k, shuffle=True, random_state=seed)
        chance = float(counts.max() / counts.sum())
        for name, x in embeddings.items():
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            s = cross_validate(model, np.asarray(x)[idx], y, cv=cv,
                               scoring=("accuracy", "f1_macro"))
            acc = float(s["test_accuracy"].mean())
            rows.append({"embedding": name, "label": label, "accuracy": acc,
                         "macro_f1": float(s["test_f1_macro"].mean()), "chance": chance,
                         "own": name == label,
                         "above_chance": (acc - chance) / (1 - chance) if chance < 1 else 0.0})
    return pd.DataFrame(rows)


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


def _ward(x: np.ndarray, n_clusters: int, n_pcs: int, seed: int, basis=None):
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
    x = _dense(embedding)
    if x.shape[0] != len(labels):
        raise ValueError(f"Embedding has {x.shape[0]} rows; labels have {len(labels)}.")
    k = n_clusters or len(np.unique(labels))
    clusters, _ = _ward(x, k, n_pcs, seed)
    return {"nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters))}


# -- reconstruction ------------------------------------------------------------------------
def per_cell_pearson(real, generated) -> np.ndarray:
    """Pearson r between each cell's real and generated expression (one value per cell;
    ``nan`` where either row is constant)."""
    real, gen = _pair(real, generated)
    a = real - real.mean(1, keepdims=True)
    b = gen - gen.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / den, np.nan)


def per_cell_mse(real, generated) -> np.ndarray:
    """Mean squared error over genes, per cell."""
    real, gen = _pair(real, generated)
    return ((real - gen) ** 2).mean(1)


def cluster_agreement(
    real, generated, *, n_clusters: int = 8, n_pcs: int = 30, seed: int = 0,
) -> dict[str, float]:
    """NMI and ARI between Ward clusterings of real cells and of their generated copies.

    Both are projected on the PCA of the real cells (``n_pcs``) and clustered with Ward
    agglomerative clustering into ``n_clusters`` (the paper's choice: 8); row ``i`` of both
    matrices is the same cell, so the two cluster labelings are compared directly.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    real, gen = _pair(real, generated)
    if real.shape[0] <= n_clusters:
        raise ValueError(f"Need more than {n_clusters} cells, got {real.shape[0]}.")
    a, basis = _ward(real, n_clusters, n_pcs, seed)
    b, _ = _ward(gen, n_clusters, n_pcs, seed, basis=basis)
    return {"nmi": float(normalized_mutual_info_score(a, b)),
            "ari": float(adjusted_rand_score(a, b))}


def marker_overlap(
    real, generated, groups: Sequence, *, genes: Sequence[str] | None = None,
    n_top: int = 50, min_cells: int = 10,
) -> dict[str, float]:
    """Overlap of the top Wilcoxon marker genes per group, real vs generated.

    For each group with at least ``min_cells`` cells (e.g. a concept combination), scanpy's
    ``rank_genes_groups`` (Wilcoxon, group vs rest) ranks genes in the real and in the
    generated cells; the score is ``|top_real ∩ top_generated| / n_top``.

    Returns
    -------
    dict
        ``{group: overlap}`` plus ``"mean"`` over the groups scored.
    """
    import anndata as ad
    import scanpy as sc

    real, gen = _pair(real, generated)
    groups = np.asarray(groups).astype(str)
    if len(groups) != real.shape[0]:
        raise ValueError(f"groups has {len(groups)} entries; there are {real.shape[0]} cells.")
    keep_groups = [g for g, c in pd.Series(groups).value_counts().items() if c >= min_cells]
    if len(keep_groups) < 2:
        raise ValueError(f"Need two or more groups with >= {min_cells} cells, got "
                         f"{len(keep_groups)}.")
    n_top = min(n_top, real.shape[1])
    var = pd.DataFrame(index=[str(g) for g in genes] if genes is not None
                       else [f"g{j}" for j in range(real.shape[1])])
    tops = []
    for x in (real, gen):  # log fold changes of negative values warn; only ranks matter
        a = ad.AnnData(x.astype(np.float32), var=var)
        a.obs["group"] = pd.Categorical(groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            sc.tl.rank_genes_groups(a, "group", groups=keep_groups, reference="rest",
                                    method="wilcoxon", n_genes=n_top)
        names = a.uns["rank_genes_groups"]["names"]
        tops.append({g: set(names[g][:n_top]) for g in keep_groups})
    out = {g: len(tops[0][g] & tops[1][g]) / n_top for g in keep_groups}
    out["mean"] = float(np.mean(list(out.values())))
    return out


# -- counterfactuals -------------------------------------------------------------------------
def group_mean_change(
    change, groups: Sequence, *, order: Sequence[str] | None = None, min_cells: int = 1,
) -> pd.DataFrame:
    """Mean per-cell change (cells x genes) per group -> ``groups x genes`` DataFrame.

    Groups with fewer than ``min_cells`` cells are dropped; ``order`` fixes the row order
    (groups absent from the data are dropped too).
    """
    x = _dense(change)
    groups = np.asarray(groups).astype(str)
    if len(groups) != x.shape[0]:
        raise ValueError(f"groups has {len(groups)} entries; change has {x.shape[0]} rows.")
    counts = pd.Series(groups).value_counts()
    names = [str(g) for g in (order if order is not None else sorted(counts.index))]
    names = [g for g in names if counts.get(g, 0) >= min_cells]
    return pd.DataFrame(np.vstack([x[groups == g].mean(0) for g in names]) if names
                        else np.zeros((0, x.shape[1])), index=names)


def change_correlation(predicted, true) -> float:
    """Pearson r of predicted vs true changes (e.g. two ``groups x genes`` matrices of
    :func:`group_mean_change`), flattened; ``0.0`` where undefined (a constant prediction
    such as the no-change foil)."""
    a, b = _dense(np.asarray(predicted)).ravel(), _dense(np.asarray(true)).ravel()
    if a.shape != b.shape:
        raise ValueError(f"Shapes differ: {np.shape(predicted)} vs {np.shape(true)}.")
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

    p, t = np.abs(_dense(np.asarray(predicted))).ravel(), _dense(np.asarray(true)).ravel()
    if p.shape != t.shape:
        raise ValueError(f"Shapes differ: {np.shape(predicted)} vs {np.shape(true)}.")
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

    x, y = _dense(x), _dense(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be cells x genes with the same genes, got {x.shape} "
                         f"and {y.shape}.")
    if len(x) < 2 or len(y) < 2:
        raise ValueError("Each population needs at least two cells.")
    rng = np.random.default_rng(seed)
    x = x[rng.choice(len(x), max_cells, replace=False)] if len(x) > max_cells else x
    y = y[rng.choice(len(y), max_cells, replace=False)] if len(y) > max_cells else y
    if n_pcs is not None and n_pcs < x.shape[1]:
        pca = PCA(min(n_pcs, len(y) - 1), random_state=seed).fit(y)
        x, y = pca.transform(x), pca.transform(y)
    # V-statistics (self-pairs included): >= 0, and exactly 0 for identical samples
    xy = pairwise_distances(x, y).mean()
    return float(2 * xy - pairwise_distances(x).mean() - pairwise_distances(y).mean())
