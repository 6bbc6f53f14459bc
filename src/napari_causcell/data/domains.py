"""Spatial domains from neighbourhood composition (squidpy neighbours + k-means).

The core that :func:`napari_causcell.tl.spatial_domains` wraps and that the dataset readers
(``derive_domains=``) call directly, so ``datasets`` needs nothing from ``tl``: check the
inputs, build the neighbour graph, describe each cell by the labels around it, cluster, and
write the keys.
"""

from __future__ import annotations

from collections.abc import Callable

import anndata as ad
import numpy as np
import pandas as pd

from .._keys import Key
from .preprocess import DataError

__all__ = ["check_domain_inputs", "derive_domains", "write_domains", "add_domains"]

_GRAPH_KEYS = ("spatial_connectivities", "spatial_distances")


def check_domain_inputs(
    table: ad.AnnData, n_domains: int, cluster_key: str, library_key: str | None,
    refuse: str | None = None,
) -> None:
    """``DataError`` unless the label and library columns exist, ``obs[refuse]`` does not
    (when given: a column the user owns is never silently replaced) and there are at least
    ``n_domains`` cells."""
    for col in (cluster_key, library_key):
        if col is not None and col not in table.obs:
            raise DataError(f"Column {col!r} is not in obs; columns: {list(table.obs.columns)}.")
    if refuse is not None and refuse in table.obs:
        raise DataError(f"obs already has a column {refuse!r}; choose another key_added or "
                        "pass overwrite=True to replace it.")
    if table.n_obs < n_domains:
        raise DataError(f"{table.n_obs} cells cannot form {n_domains} domains.")


def _neighbour_graph(
    obs: pd.DataFrame, xy: np.ndarray, n_neighs: int, library_key: str | None
) -> ad.AnnData:
    """squidpy's kNN graph on a bare AnnData (nothing is written to the user's table)."""
    import squidpy as sq

    graph = ad.AnnData(obs=obs[[library_key]] if library_key else obs[[]],
                       obsm={Key.obsm.SPATIAL: xy})
    sq.gr.spatial_neighbors(
        graph, coord_type="generic", n_neighs=n_neighs, library_key=library_key,
        spatial_key=Key.obsm.SPATIAL,
    )
    return graph


def _composition(conn, labels: pd.Series) -> np.ndarray:
    """Share of each label among a cell's neighbours and the cell itself, per cell."""
    cats = pd.Categorical(labels.astype(str))
    onehot = np.eye(len(cats.categories), dtype=np.float32)[cats.codes]
    comp = np.asarray(conn @ onehot) + onehot  # include the cell itself
    comp /= comp.sum(1, keepdims=True)
    return comp


def _cluster(comp: np.ndarray, n_domains: int, seed: int) -> pd.Categorical:
    """k-means of the profiles; domains named ``D0..D{n-1}`` by decreasing size."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_domains, n_init=10, random_state=seed).fit(comp)
    sizes = np.bincount(km.labels_, minlength=n_domains)
    rank = np.empty(n_domains, dtype=int)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(n_domains)
    names = [f"D{i}" for i in range(n_domains)]
    return pd.Categorical.from_codes(rank[km.labels_], categories=names)


def derive_domains(
    table: ad.AnnData,
    xy: np.ndarray,
    n_domains: int,
    *,
    cluster_key: str = "cell_type",
    n_neighs: int = 20,
    library_key: str | None = None,
    seed: int = 0,
    name: str = Key.obs.DOMAIN,
) -> tuple[pd.Series, ad.AnnData]:
    """Domains of the table's cells, computed without writing anything.

    Returns the domains (a categorical Series ``D0..D{n-1}`` ordered by size, indexed by the
    obs names, named ``name``) and the bare AnnData holding squidpy's graph
    (``obsp['spatial_connectivities']``, ``obsp['spatial_distances']``,
    ``uns['spatial_neighbors']``, ``obsm['spatial']``) for :func:`write_domains`.
    """
    graph = _neighbour_graph(table.obs, xy, n_neighs, library_key)
    comp = _composition(graph.obsp["spatial_connectivities"], table.obs[cluster_key])
    result = pd.Series(_cluster(comp, n_domains, seed), index=table.obs_names, name=name)
    return result, graph


def write_domains(
    table: ad.AnnData, result: pd.Series, graph: ad.AnnData,
    log: Callable[[str], None] | None = None,
) -> None:
    """Write the domains to ``obs[result.name]`` and the graph's keys; ``log(key)`` each."""
    log = log or (lambda where: None)
    if Key.obsm.SPATIAL not in table.obsm:
        table.obsm[Key.obsm.SPATIAL] = graph.obsm[Key.obsm.SPATIAL]
        log(f"obsm[{Key.obsm.SPATIAL!r}]")
    for key in _GRAPH_KEYS:
        table.obsp[key] = graph.obsp[key]
        log(f"obsp[{key!r}]")
    table.uns["spatial_neighbors"] = graph.uns["spatial_neighbors"]
    log("uns['spatial_neighbors']")
    table.obs[result.name] = result.array
    log(f"obs[{result.name!r}]")


def add_domains(
    table: ad.AnnData, n_domains: int, *, cluster_key: str = "cell_type",
    library_key: str | None = None, n_neighs: int = 20, seed: int = 0,
    key_added: str = Key.obs.DOMAIN,
) -> None:
    """Derive domains of a table that has ``obsm['spatial']`` and write them in place: the
    same keys as :func:`napari_causcell.tl.spatial_domains` (without its logging); an
    existing ``obs[key_added]`` is an error."""
    check_domain_inputs(table, n_domains, cluster_key, library_key, refuse=key_added)
    xy = np.asarray(table.obsm[Key.obsm.SPATIAL])
    result, graph = derive_domains(table, xy, n_domains, cluster_key=cluster_key,
                                   n_neighs=n_neighs, library_key=library_key, seed=seed,
                                   name=key_added)
    write_domains(table, result, graph)
