"""Spatial domains from neighbourhood composition (squidpy neighbours + k-means)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._keys import Key
from ..data import coordinates, resolve_table
from ..data.preprocess import DataError
from ._utils import added


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
    copy: bool = False,
) -> pd.Series | None:
    """Derive spatial domains and write them to ``obs[key_added]`` (scverse style: in place,
    returning ``None``, unless ``copy=True``).

    Builds a k-nearest-neighbour graph on tissue coordinates with
    ``squidpy.gr.spatial_neighbors``, describes each cell by the composition of
    ``cluster_key`` labels among its neighbours, and clusters those profiles with k-means.

    Parameters
    ----------
    data
        AnnData or SpatialData holding the cells.
    n_domains
        Number of domains (k-means clusters).
    cluster_key
        ``obs`` column of the labels whose neighbourhood composition defines the domains.
    n_neighs
        Neighbours per cell.
    key_added
        ``obs`` column to write.
    table_key
        Table of a SpatialData (default its only table).
    library_key
        ``obs`` column of the slice / sample: neighbours are found within each.
    seed
        Seed of k-means.
    overwrite
        Replace an existing ``obs[key_added]``; without it an existing column is an error
        (a column the user owns is never silently replaced). Ignored with ``copy=True``.
    copy
        Return the domains instead of writing anything; ``data`` is left untouched.

    Returns
    -------
    None or pandas.Series
        ``None`` by default (read ``obs[key_added]``). With ``copy=True`` the domains (as
        squidpy, the computed result, not a copy of ``data``): a categorical Series
        ``D0..D{n-1}`` (ordered by size) indexed by the obs names, named ``key_added``.

    Writes
    ------
    Unless ``copy=True``, in the table (each key is logged at INFO level, logger
    ``napari_causcell.tl``):

    - ``obs[key_added]``: categorical ``D0..D{n-1}``, ordered by size;
    - the squidpy graph ``obsp['spatial_connectivities']``, ``obsp['spatial_distances']``
      and ``uns['spatial_neighbors']``;
    - ``obsm['spatial']`` (the tissue coordinates) when it was missing.
    """
    import anndata as ad
    import squidpy as sq
    from sklearn.cluster import KMeans

    table, _ = resolve_table(data, table_key)
    for col in (cluster_key, library_key):
        if col is not None and col not in table.obs:
            raise DataError(f"Column {col!r} is not in obs; columns: {list(table.obs.columns)}.")
    if key_added in table.obs and not overwrite and not copy:
        raise DataError(f"obs already has a column {key_added!r}; choose another key_added or "
                        "pass overwrite=True to replace it.")
    if table.n_obs < n_domains:
        raise DataError(f"{table.n_obs} cells cannot form {n_domains} domains.")
    # the graph is built on a bare AnnData, so nothing is written before it is all computed
    xy = (np.asarray(table.obsm[Key.obsm.SPATIAL]) if Key.obsm.SPATIAL in table.obsm
          else coordinates(data, table_key))
    graph = ad.AnnData(obs=table.obs[[library_key]] if library_key else table.obs[[]],
                       obsm={Key.obsm.SPATIAL: xy})
    sq.gr.spatial_neighbors(
        graph, coord_type="generic", n_neighs=n_neighs, library_key=library_key,
        spatial_key=Key.obsm.SPATIAL,
    )
    conn = graph.obsp["spatial_connectivities"]
    labels = pd.Categorical(table.obs[cluster_key].astype(str))
    onehot = np.eye(len(labels.categories), dtype=np.float32)[labels.codes]
    comp = np.asarray(conn @ onehot) + onehot  # include the cell itself
    comp /= comp.sum(1, keepdims=True)
    km = KMeans(n_clusters=n_domains, n_init=10, random_state=seed).fit(comp)
    sizes = np.bincount(km.labels_, minlength=n_domains)
    rank = np.empty(n_domains, dtype=int)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(n_domains)
    names = [f"D{i}" for i in range(n_domains)]
    result = pd.Series(pd.Categorical.from_codes(rank[km.labels_], categories=names),
                       index=table.obs_names, name=key_added)
    if copy:
        return result
    if Key.obsm.SPATIAL not in table.obsm:
        table.obsm[Key.obsm.SPATIAL] = graph.obsm[Key.obsm.SPATIAL]
        added(f"obsm[{Key.obsm.SPATIAL!r}]")
    for key in ("spatial_connectivities", "spatial_distances"):
        table.obsp[key] = graph.obsp[key]
        added(f"obsp[{key!r}]")
    table.uns["spatial_neighbors"] = graph.uns["spatial_neighbors"]
    added("uns['spatial_neighbors']")
    table.obs[key_added] = result.array
    added(f"obs[{key_added!r}]")
    return None
