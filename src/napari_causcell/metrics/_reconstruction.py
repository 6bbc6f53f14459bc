"""Reconstruction: generated cells against the real ones they were generated from.

:func:`per_cell_pearson`, :func:`per_cell_mse`, :func:`cluster_agreement` (NMI / ARI between
Ward clusterings of real and generated cells), :func:`marker_overlap` (top-50 Wilcoxon markers
per group, real vs generated).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ._disentanglement import ward
from ._utils import pair

__all__ = ["cluster_agreement", "marker_overlap", "per_cell_mse", "per_cell_pearson"]

def per_cell_pearson(real, generated) -> np.ndarray:
    """Pearson r between each cell's real and generated expression (one value per cell;
    ``nan`` where either row is constant)."""
    real, gen = pair(real, generated)
    a = real - real.mean(1, keepdims=True)
    b = gen - gen.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / den, np.nan)


def per_cell_mse(real, generated) -> np.ndarray:
    """Mean squared error over genes, per cell."""
    real, gen = pair(real, generated)
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

    real, gen = pair(real, generated)
    if real.shape[0] <= n_clusters:
        raise DataError(f"Need more than {n_clusters} cells, got {real.shape[0]}.")
    a, basis = ward(real, n_clusters, n_pcs, seed)
    b, _ = ward(gen, n_clusters, n_pcs, seed, basis=basis)
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

    real, gen = pair(real, generated)
    groups = np.asarray(groups).astype(str)
    if len(groups) != real.shape[0]:
        raise DataError(f"groups has {len(groups)} entries; there are {real.shape[0]} cells.")
    keep_groups = [g for g, c in pd.Series(groups).value_counts().items() if c >= min_cells]
    if len(keep_groups) < 2:
        raise DataError(f"Need two or more groups with >= {min_cells} cells, got "
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


