"""AnnData / SpatialData adapters: find the table, the coordinates, write results back."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .preprocess import DataError

ATTRS_KEY = "spatialdata_attrs"


def is_spatialdata(data: Any) -> bool:
    return type(data).__name__ == "SpatialData" and hasattr(data, "tables")


def resolve_table(data: Any, table_key: str | None = None) -> tuple[ad.AnnData, str | None]:
    """Return the AnnData table of ``data`` and its key (``None`` for a plain AnnData).

    ``data`` is an AnnData or a SpatialData; for a SpatialData, ``table_key`` picks the table
    (needed only when it holds several).
    """
    if isinstance(data, ad.AnnData):
        return data, None
    if is_spatialdata(data):
        keys = list(data.tables.keys())
        if table_key is None:
            if "table" in keys:
                table_key = "table"
            elif len(keys) == 1:
                table_key = keys[0]
            elif not keys:
                raise DataError("The SpatialData object has no table.")
            else:
                raise DataError(f"The SpatialData holds several tables {keys}; pass table_key=.")
        if table_key not in keys:
            raise DataError(f"Table {table_key!r} not found; tables are {keys}.")
        return data.tables[table_key], table_key
    raise DataError(f"Expected AnnData or SpatialData, got {type(data).__name__}.")


def table_attrs(table: ad.AnnData) -> dict:
    """``region``, ``region_key`` and ``instance_key`` of a SpatialData table (or empty)."""
    attrs = table.uns.get(ATTRS_KEY, {})
    return {k: attrs[k] for k in ("region", "region_key", "instance_key") if k in attrs}


def coordinates(data: Any, table_key: str | None = None) -> np.ndarray:
    """Tissue coordinates ``(n_cells, 2)`` of the table's cells.

    ``obsm['spatial']`` when present; otherwise the centroids of the shapes or points
    element the table annotates, matched by instance id.
    """
    table, _ = resolve_table(data, table_key)
    if "spatial" in table.obsm:
        return np.asarray(table.obsm["spatial"])[:, :2].astype(float)
    if not is_spatialdata(data):
        raise DataError("No tissue coordinates: obsm['spatial'] is missing.")
    attrs = table_attrs(table)
    if not attrs:
        raise DataError("No tissue coordinates: no obsm['spatial'] and the table annotates nothing.")
    import spatialdata as sd

    regions = attrs["region"] if isinstance(attrs["region"], list) else [attrs["region"]]
    out = np.full((table.n_obs, 2), np.nan)
    region_col = table.obs[attrs["region_key"]].astype(str).to_numpy()
    ids = table.obs[attrs["instance_key"]].to_numpy()
    for region in regions:
        element = data[region]
        cent = sd.get_centroids(element).compute()
        pos = pd.DataFrame(cent[["x", "y"]].to_numpy(), index=cent.index)
        mask = region_col == region
        found = pos.reindex(ids[mask])
        if found.isna().any().any():
            raise DataError(f"Some instance ids of the table are not in element {region!r}.")
        out[mask] = found.to_numpy()
    return out


def annotating_table(table: ad.AnnData, source: ad.AnnData) -> ad.AnnData:
    """``table`` as a SpatialData table annotating the same element and instances as
    ``source`` (``table.obs`` must carry the source's region and instance columns)."""
    from spatialdata.models import TableModel

    attrs = table_attrs(source)
    table.uns.pop(ATTRS_KEY, None)
    if attrs:
        rk, ik = attrs["region_key"], attrs["instance_key"]
        table.obs[rk] = pd.Categorical(table.obs[rk].astype(str))
        regions = list(table.obs[rk].cat.categories)
        return TableModel.parse(
            table, region=regions if len(regions) > 1 else regions[0], region_key=rk, instance_key=ik
        )
    return TableModel.parse(table)


def add_table(
    sdata: Any,
    name: str,
    table: ad.AnnData,
    source: ad.AnnData,
    overwrite: bool = True,
) -> None:
    """Store ``table`` in ``sdata`` annotating the same element and instances as ``source``
    (see :func:`annotating_table`)."""
    table = annotating_table(table, source)
    if name in sdata.tables and not overwrite:
        raise DataError(f"Table {name!r} exists; pass overwrite=True or another key.")
    sdata.tables[name] = table
