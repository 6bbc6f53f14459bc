"""Spatial domains from neighbourhood composition (squidpy neighbours + k-means); the
computation is :mod:`napari_causcell.data.domains`, this is the scverse-style tool around it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._keys import Key
from ..data import coordinates, resolve_table
from ..data.domains import check_domain_inputs, derive_domains, write_domains
from ._defaults import cluster_key as guess_cluster_key
from ._utils import added


def spatial_domains(
    data: Any, n_domains: int = 6, *, cluster_key: str | None = None, n_neighs: int = 20,
    key_added: str = Key.obs.DOMAIN, table_key: str | None = None,
    library_key: str | None = None, seed: int = 0, overwrite: bool = False, copy: bool = False,
) -> pd.Series | None:
    """Derive spatial domains into ``obs[key_added]`` (scverse style: in place unless ``copy``).

    Builds a kNN graph on tissue coordinates (``squidpy.gr.spatial_neighbors``), describes each
    cell by the composition of ``cluster_key`` labels among its neighbours, clusters with
    k-means (:mod:`napari_causcell.data.domains`).

    Parameters
    ----------
    data
        AnnData or SpatialData holding the cells.
    n_domains
        Number of domains (k-means clusters).
    cluster_key
        ``obs`` labels whose neighbourhood composition defines the domains. Default:
        ``cell_type``, else the only label column named like cell types (``celltype``,
        ``subclass``, ``leiden``...); none or several: ``SettingError`` listing the choices.
    n_neighs, seed
        Neighbours per cell; seed of k-means.
    key_added, table_key
        ``obs`` column to write; table of a SpatialData (default its only table).
    library_key
        ``obs`` column of the slice / sample: neighbours are found within each.
    overwrite
        Replace an existing ``obs[key_added]``; without it an existing column is an error
        (a column the user owns is never silently replaced). Ignored with ``copy=True``.
    copy
        Return the domains instead of writing anything (``data`` untouched).

    Returns
    -------
    None or pandas.Series
        ``None`` by default (read ``obs[key_added]``). With ``copy=True`` the domains (as
        squidpy, the computed result, not a copy of ``data``): a categorical Series
        ``D0..D{n-1}`` (ordered by size) indexed by the obs names, named ``key_added``.

    Writes
    ------
    Unless ``copy=True``, in the table (each key logged at INFO, logger ``napari_causcell.tl``):
    ``obs[key_added]`` (categorical ``D0..D{n-1}``, ordered by size), the squidpy graph
    (``obsp['spatial_connectivities']``, ``obsp['spatial_distances']``,
    ``uns['spatial_neighbors']``) and ``obsm['spatial']`` (the coordinates) when it was missing.
    """
    table, _ = resolve_table(data, table_key)
    cluster_key = guess_cluster_key(table.obs) if cluster_key is None else cluster_key
    check_domain_inputs(table, n_domains, cluster_key, library_key,
                        refuse=None if overwrite or copy else key_added)
    xy = (np.asarray(table.obsm[Key.obsm.SPATIAL]) if Key.obsm.SPATIAL in table.obsm
          else coordinates(data, table_key))
    result, graph = derive_domains(table, xy, n_domains, cluster_key=cluster_key, n_neighs=n_neighs,
                                   library_key=library_key, seed=seed, name=key_added)
    if copy:
        return result
    write_domains(table, result, graph, log=added)  # only now, once all is computed
    return None
