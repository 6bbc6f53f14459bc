"""Spatial domains from neighbourhood composition (squidpy neighbours + k-means)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._keys import Key
from ..data import coordinates, resolve_table
from ..data.preprocess import DataError


def spatial_domains(
    data: Any,
    n_domains: int = 6,
    *,
    cluster_key: str = "cell_type",
    n_neighs: int = 20,
    key_added: str = Key.obs.DOMAIN,
    table_key: str | None = None,
    library_key: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> pd.Series:
    """Derive spatial domains and write them to ``obs[key_added]``.

    Builds a k-nearest-neighbour graph on tissue coordinates with
    ``squidpy.gr.spatial_neighbors``, describes each cell by the composition of
    ``cluster_key`` labels among its neighbours, and clusters those profiles with k-means.

    Writes ``obs[key_added]`` (categorical ``D0..D{n-1}``, ordered by size) and the squidpy
    graph keys ``obsp['spatial_connectivities']`` / ``obsp['spatial_distances']``.
    """
    import squidpy as sq
    from sklearn.cluster import KMeans

    table, _ = resolve_table(data, table_key)
    if cluster_key not in table.obs:
        raise DataError(f"Column {cluster_key!r} is not in obs; columns: {list(table.obs.columns)}.")
    if key_added in table.obs and not overwrite:
        raise DataError(f"obs already has a column {key_added!r}; choose another key_added or "
                        "pass overwrite=True to replace it.")
    if table.n_obs < n_domains:
        raise DataError(f"{table.n_obs} cells cannot form {n_domains} domains.")
    if Key.obsm.SPATIAL not in table.obsm:
        table.obsm[Key.obsm.SPATIAL] = coordinates(data, table_key)
    sq.gr.spatial_neighbors(
        table, coord_type="generic", n_neighs=n_neighs, library_key=library_key,
        spatial_key=Key.obsm.SPATIAL,
    )
    conn = table.obsp["spatial_connectivities"]
    labels = pd.Categorical(table.obs[cluster_key].astype(str))
    onehot = np.eye(len(labels.categories), dtype=np.float32)[labels.codes]
    comp = np.asarray(conn @ onehot) + onehot  # include the cell itself
    comp /= comp.sum(1, keepdims=True)
    km = KMeans(n_clusters=n_domains, n_init=10, random_state=seed).fit(comp)
    sizes = np.bincount(km.labels_, minlength=n_domains)
    rank = np.empty(n_domains, dtype=int)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(n_domains)
    names = [f"D{i}" for i in range(n_domains)]
    result = pd.Categorical.from_codes(rank[km.labels_], categories=names)
    table.obs[key_added] = result
    return table.obs[key_added]
