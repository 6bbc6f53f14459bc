"""Vizgen MERSCOPE output (read with ``spatialdata-io``) mapped to the concept schema of
:mod:`._merfish`. MERSCOPE carries no age / donor / cell-type labels: they come from a table
the user gives (``annotations``) or constants for a run that holds one animal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..data.preprocess import DataError, check_counts
from ._schema import _map_obs, _schema_anndata

__all__ = ["merscope_to_schema", "read_merscope"]


def _join_annotations(
    obs: pd.DataFrame, annotations: pd.DataFrame | None, cell_id_key: str | None,
    fields: Sequence[str | None],
) -> pd.DataFrame:
    """``obs`` left-joined with the per-cell annotations on the cell id. Annotation columns
    that obs already has are dropped, except the schema ``fields``, which replace obs's."""
    if annotations is None:
        return obs
    ann = annotations.copy()
    if cell_id_key is not None:
        if cell_id_key not in ann:
            raise DataError(f"Column {cell_id_key!r} not in the annotations "
                            f"({list(ann.columns)}).")
        ann = ann.set_index(cell_id_key)
    ann.index = ann.index.astype(str)
    if ann.index.duplicated().any():
        raise DataError("Cell ids repeat in the annotations.")
    ann = ann.drop(columns=[c for c in ann.columns if c in obs.columns and c not in fields])
    clash = [c for c in ann.columns if c in obs.columns]
    return obs.drop(columns=clash).join(ann, how="left")


def _labelled_cells(
    obs: pd.DataFrame, age: str | None, donor: str | None, age_key: str, donor_key: str,
    cell_type_key: str,
) -> np.ndarray:
    """Fill the ``age`` / ``donor`` constants into ``obs`` (in place) where it lacks the
    column; the mask of cells with age, donor and cell type (``DataError`` if none)."""
    if age is not None and age_key not in obs:
        obs[age_key] = age
    if donor is not None and donor_key not in obs:
        obs[donor_key] = donor
    missing = [c for c in (age_key, donor_key, cell_type_key) if c not in obs]
    if missing:
        raise DataError(f"MERSCOPE output has no {missing}: give them in annotations= "
                        "(per cell) or as age= / donor= (one animal per run).")
    labelled = obs[[age_key, donor_key, cell_type_key]].notna().all(axis=1).to_numpy()
    if not labelled.any():
        raise DataError("No cell of the table is annotated: do the annotation ids match the "
                        "table's cell ids (obs index, EntityID)?")
    return labelled


def _cell_centres(obs: pd.DataFrame, sub: ad.AnnData) -> np.ndarray:
    """``center_x``/``center_y`` of obs, else ``obsm['spatial']``."""
    if "center_x" in obs and "center_y" in obs:
        return obs[["center_x", "center_y"]].to_numpy(dtype=float)
    if "spatial" in sub.obsm:
        return np.asarray(sub.obsm["spatial"], dtype=float)[:, :2]
    raise DataError("No coordinates: no center_x/center_y in obs and no obsm['spatial'].")


def _merged_obs(obs: pd.DataFrame, mapped: pd.DataFrame, names: pd.Index) -> pd.DataFrame:
    """The table's own obs columns, then the schema's (which replace any of the same name)."""
    new_obs = obs.drop(columns=[c for c in mapped.columns if c in obs.columns])
    new_obs = pd.concat([new_obs, mapped.set_index(new_obs.index)], axis=1)
    new_obs.index = names
    return new_obs


def merscope_to_schema(
    table: ad.AnnData, annotations: pd.DataFrame | None = None, *, age: str | None = None,
    donor: str | None = None, cell_id_key: str | None = None, age_key: str = "age",
    donor_key: str = "donor", cell_type_key: str = "cell_type",
    domain_key: str | None = "domain", slice_key: str = "slide", batch: str = "donor",
    age_unit: str = "wk", harmonize: bool = True,
) -> ad.AnnData:
    """Map a MERSCOPE table (as ``spatialdata_io.merscope`` makes it) to our schema.

    MERSCOPE output has counts, cell centres (``center_x``/``center_y``), ``fov``, ``slide`` and
    ``region``, but no biology labels: they come from ``annotations`` (e.g. a cell-type
    classification exported from your analysis), joined on the cell id, plus ``age`` /
    ``donor`` constants for a run that holds one animal.

    Parameters
    ----------
    table
        The SpatialData table (obs indexed by cell id, ``EntityID``).
    annotations
        Per-cell labels, indexed by cell id or with a ``cell_id_key`` column; columns
        ``age_key``, ``donor_key``, ``cell_type_key`` and optionally ``domain_key``.
    age, donor
        Constants used when ``annotations`` lacks the column (one animal per run).
    cell_id_key
        Column of ``annotations`` holding the cell ids (default: its index).
    slice_key
        obs column naming the section (``slide``, set by spatialdata-io).
    batch, age_unit, harmonize
        As in :func:`merfish_to_schema`.

    Returns
    -------
    anndata.AnnData
        A copy of the table with the schema's obs columns added (the table's own columns,
        region and instance ids kept), blank-probe genes dropped, ``layers['counts']`` and
        ``uns['causcell_schema']``. Cells without annotation are dropped (the count is in
        ``uns['causcell_schema']['unannotated']``).
    """
    obs = table.obs.copy()
    obs.index = obs.index.astype(str)
    obs = _join_annotations(obs, annotations, cell_id_key,
                            (age_key, donor_key, cell_type_key, domain_key))
    labelled = _labelled_cells(obs, age, donor, age_key, donor_key, cell_type_key)
    keep_genes = ~table.var_names.str.lower().str.startswith("blank")
    sub = table[labelled][:, keep_genes]
    obs = obs.loc[labelled]
    xy = _cell_centres(obs, sub)
    check_counts(sub.X, "MERSCOPE counts")
    dom = domain_key if domain_key and domain_key in obs else None
    mapped, schema = _map_obs(obs, age=age_key, donor=donor_key, cell_type=cell_type_key,
                              slice_=slice_key if slice_key in obs else None, domain=dom,
                              batch=batch, age_unit=age_unit, harmonize=harmonize)
    schema.update(spatial="center_x/center_y", counts="X",
                  unannotated=int((~labelled).sum()))
    return _schema_anndata(sub.X, _merged_obs(obs, mapped, sub.obs_names), sub.var.copy(), xy,
                           schema, uns=dict(sub.uns))


def read_merscope(
    path: str | Path,
    annotations: pd.DataFrame | None = None,
    *,
    table_key: str = "table",
    reader_kwargs: Mapping[str, Any] | None = None,
    **schema_kwargs: Any,
):
    """Read a local MERSCOPE output folder with ``spatialdata-io`` and map it to our schema.

    ``spatialdata-io`` is optional (``pip install spatialdata-io``); it is imported here only.

    Parameters
    ----------
    path
        The MERSCOPE region folder (with ``cell_by_gene.csv``, ``cell_metadata.csv``, ...).
    annotations
        Per-cell labels (see :func:`merscope_to_schema`).
    table_key
        Name of the table in the returned SpatialData.
    reader_kwargs
        Passed to ``spatialdata_io.merscope`` (e.g. ``vpt_outputs``, ``z_layers``).
    **schema_kwargs
        Passed to :func:`merscope_to_schema` (``age=``, ``donor=``, column names).

    Returns
    -------
    spatialdata.SpatialData
        The reader's SpatialData; its table replaced by the mapped one (``table_key``).
        Annotating the same polygons by ``EntityID``, so napari-spatialdata shows it.
    """
    try:
        import spatialdata_io
    except ImportError as err:
        raise ImportError(
            "Reading MERSCOPE output needs spatialdata-io, which is not installed: "
            "pip install spatialdata-io"
        ) from err
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass the local MERSCOPE output folder.")
    sdata = spatialdata_io.merscope(path, **dict(reader_kwargs or {}))
    keys = list(sdata.tables.keys())
    if not keys:
        raise DataError("spatialdata-io returned no table.")
    table = sdata.tables[keys[0]]
    mapped = merscope_to_schema(table, annotations, **schema_kwargs)
    from spatialdata.models import TableModel

    attrs = table.uns.get("spatialdata_attrs", {})
    mapped.uns.pop("spatialdata_attrs", None)
    if attrs:
        mapped = TableModel.parse(mapped, region=attrs["region"], region_key=attrs["region_key"],
                                  instance_key=attrs["instance_key"])
    if keys[0] != table_key:
        del sdata.tables[keys[0]]
    sdata.tables[table_key] = mapped
    return sdata
