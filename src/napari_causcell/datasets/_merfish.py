"""MERFISH brain-aging data (Allen et al., Cell 2023) mapped to CausCell's concept schema.

Two sources, both read from a local path (nothing is downloaded):

- the CELLxGENE ``.h5ad`` of the atlas (:func:`read_merfish_h5ad`);
- Vizgen MERSCOPE output folders read with ``spatialdata-io`` (:func:`read_merscope`), which
  carry no age / donor / cell-type labels, so these come from a table the user gives.

Reading and mapping are separate: :func:`merfish_to_schema` and :func:`merscope_to_schema` work
on in-memory AnnData, so they can be checked on small tables.

The schema (what the brain-aging workflow and ``tl.age_trends`` expect):

=================  =================================================================
``obs['age']``     categorical, labels like ``"4wk"``, ``"24wk"``, ``"90wk"`` ordered by time
``obs['donor']``   the animal (CELLxGENE ``donor_id``)
``obs['slice']``   the tissue section (the donor when the source has none)
``obs['batch']``   ``donor`` or ``slice`` (``batch=``), for a batch concept if wanted
``obs['cell_type']``  harmonised short names (``Oligo``, ``Astro``, ``Microglia``, ``Endo``,
                   ``OPC``, ``ExN``, ``InN``, ``MSN``, ...); the source label is kept in
                   ``obs['cell_type_original']``
``obs['domain']``  spatial domain when the source has one (or ``derive_domains=n``)
``obsm['spatial']``  cell centres (``center_x``, ``center_y``)
``.X`` / ``layers['counts']``  raw integer counts (CSR float32), gene symbols as var names
``uns['causcell_schema']``  which source column each field came from
=================  =================================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.preprocess import DataError, check_counts

__all__ = [
    "PUBLISHED_AGE_TRENDS", "CELL_TYPE_ALIASES", "harmonize_cell_types", "age_labels",
    "merfish_to_schema", "merscope_to_schema", "read_merfish_h5ad", "read_merscope",
]

PUBLISHED_AGE_TRENDS: pd.DataFrame = pd.DataFrame(
    [
        ("C4b", "Oligo", "up", None, "Allen et al. 2023"),
        ("Xdh", "Endo", "up", None, "Allen et al. 2023"),
        ("Gpc5", "Astro", "down", None, "Allen et al. 2023"),
        ("Lilrb4a", "Microglia", "up", None, "Gao et al. 2025 (CausCell counterfactual)"),
        ("Lilrb4a", "Astro", "up", None, "Gao et al. 2025 (CausCell counterfactual)"),
        ("Lilrb4a", "Oligo", "up", None, "Gao et al. 2025 (CausCell counterfactual)"),
        ("Lilrb4a", "Microglia", "up", "Striatum", "Gao et al. 2025 (CausCell counterfactual)"),
    ],
    columns=["gene", "cell_type", "direction", "domain", "source"],
)
"""Published age trends of the mouse brain-aging MERFISH atlas (with age, 4wk -> 90wk).

Columns ``gene``, ``cell_type`` (our harmonised names), ``direction`` ("up"/"down"),
``domain`` (``None``: all domains) and ``source``. Only trends the CausCell paper names are
listed: C4b up in oligodendrocytes, Xdh up in endothelial cells and Gpc5 down in astrocytes
(Allen et al., Cell 2023; 3 of the 9 published trends, the other 6 are not named in the
paper's text), and the paper's own counterfactual finding that Lilrb4a rises with age in glia,
most specifically in striatal microglia. Use with :func:`napari_causcell.tl.compare_trends`.
"""

# (pattern on the lower-cased label, short name); first match wins, so specific first
CELL_TYPE_ALIASES: tuple[tuple[str, str], ...] = (
    (r"precursor|^opc", "OPC"),
    (r"oligodendro|^olig", "Oligo"),
    (r"astro", "Astro"),
    (r"microgli|^micro", "Microglia"),
    (r"macrophage", "Macrophage"),
    (r"endothel|^endo", "Endo"),
    (r"pericyte|^peri", "Peri"),
    (r"leptomening|^vlmc", "VLMC"),
    (r"ependym", "Ependymal"),
    (r"medium spiny|^msn", "MSN"),
    (r"inhibitory|gabaergic|interneuron|^inn?$|^inh", "InN"),
    (r"excitatory|glutamatergic|pyramidal|^exn?$|^exc", "ExN"),
)


def harmonize_cell_types(labels: Sequence[Any]) -> np.ndarray:
    """Short cell-type names (``Oligo``, ``Astro``, ...) for CELLxGENE / author labels.

    Rules: :data:`CELL_TYPE_ALIASES`, first match on the lower-cased label; other labels
    are kept as they are.
    """
    out = []
    for lab in map(str, labels):
        low = lab.lower().strip()
        out.append(next((short for pat, short in CELL_TYPE_ALIASES if re.search(pat, low)), lab))
    return np.asarray(out, dtype=object)


_UNITS = {"wk": 7.0, "week": 7.0, "weeks": 7.0, "w": 7.0, "mo": 30.4, "month": 30.4,
          "months": 30.4, "m": 30.4, "d": 1.0, "day": 1.0, "days": 1.0, "y": 365.0,
          "year": 365.0, "years": 365.0}
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-?\s*([a-z]*)")
_SHORT = {7.0: "wk", 30.4: "mo", 1.0: "d", 365.0: "y"}


def age_labels(values: Sequence[Any], unit: str = "wk") -> pd.Categorical:
    """Age values -> ordered categorical labels like ``"4wk"``.

    Accepts numbers (in ``unit``) and strings such as ``"4wk"``, ``"4 weeks"``,
    ``"90-week-old stage"`` (CELLxGENE ``development_stage``), ``"18mo"``, ``"30 days"``.
    Categories are ordered by time.

    Raises
    ------
    DataError
        A value that is not an age (e.g. ``"unknown"``) or missing.
    """
    if unit not in _UNITS:
        raise ValueError(f"unit must be one of {sorted(_UNITS)}, got {unit!r}")
    labels, days = [], {}
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            raise DataError("Missing age values: fill or drop those cells first.")
        if isinstance(v, (int, float, np.integer, np.floating)):
            num, u = float(v), unit
        else:
            m = _AGE_RE.match(str(v).lower())
            if not m:
                raise DataError(f"Cannot read an age from {v!r} (expected e.g. '4wk', "
                                "'24 weeks', '90-week-old stage' or a number).")
            num, u = float(m.group(1)), m.group(2) or unit
            if u not in _UNITS:
                raise DataError(f"Unknown age unit {u!r} in {v!r}; known: {sorted(_UNITS)}.")
        factor = _UNITS[u]
        text = f"{num:g}{_SHORT[factor]}"
        labels.append(text)
        days[text] = num * factor
    order = sorted(days, key=days.get)
    return pd.Categorical(labels, categories=order, ordered=True)


def _first(obs: pd.DataFrame, wanted: str | None, candidates: Sequence[str]) -> str | None:
    if wanted is not None:
        return wanted
    return next((c for c in candidates if c in obs.columns), None)


def _counts_matrix(adata: ad.AnnData, layer: str | None) -> tuple[Any, pd.Index, str]:
    """Raw counts and their gene index: ``layer``, else ``.raw.X``, else ``.X``."""
    if layer is not None:
        if layer not in adata.layers:
            raise DataError(f"Layer {layer!r} not found; layers are {list(adata.layers)}.")
        return adata.layers[layer], adata.var_names, f"layers[{layer!r}]"
    if adata.raw is not None:
        return adata.raw.X, adata.raw.var_names, "raw.X"
    return adata.X, adata.var_names, "X"


def _map_obs(
    obs: pd.DataFrame, *, age: str, donor: str, cell_type: str, slice_: str | None,
    domain: str | None, batch: str, age_unit: str, harmonize: bool,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Our schema's obs columns from source columns (already checked to exist)."""
    out = pd.DataFrame(index=obs.index)
    out["age"] = age_labels(obs[age].tolist(), unit=age_unit)
    out["donor"] = pd.Categorical(obs[donor].astype(str))
    out["slice"] = pd.Categorical(obs[slice_].astype(str)) if slice_ else out["donor"].copy()
    if batch not in ("donor", "slice"):
        raise ValueError(f"batch must be 'donor' or 'slice', got {batch!r}")
    out["batch"] = out[batch].copy()
    original = obs[cell_type].astype(str)
    if original.isin(["nan", "None", ""]).any():
        raise DataError(f"Column {cell_type!r} has missing cell types; fill or drop those cells.")
    names = harmonize_cell_types(original) if harmonize else original.to_numpy()
    out["cell_type"] = pd.Categorical(names)
    out["cell_type_original"] = pd.Categorical(original)
    if domain:
        out["domain"] = pd.Categorical(obs[domain].astype(str))
    schema = {"age": age, "donor": donor, "slice": slice_ or donor, "batch": batch,
              "cell_type": cell_type, "domain": domain or ""}
    return out, schema


def merfish_to_schema(
    adata: ad.AnnData,
    *,
    age_key: str | None = None,
    donor_key: str | None = None,
    cell_type_key: str | None = None,
    slice_key: str | None = None,
    domain_key: str | None = None,
    x_key: str = "center_x",
    y_key: str = "center_y",
    gene_symbols: str | None = "feature_name",
    layer: str | None = None,
    batch: str = "donor",
    age_unit: str = "wk",
    harmonize: bool = True,
    derive_domains: int | None = None,
) -> ad.AnnData:
    """Map a CELLxGENE-style MERFISH AnnData to our concept schema (see the module doc).

    Parameters
    ----------
    adata
        The atlas (or a subset) in memory.
    age_key, donor_key, cell_type_key, slice_key, domain_key
        Source columns; default the first present of ``age`` / ``development_stage``,
        ``donor_id`` / ``donor`` / ``mouse``, ``cell_type`` / ``cell_type_annot`` /
        ``celltype``, ``slice`` / ``slice_id`` / ``section``, ``domain`` / ``spatial_domain`` /
        ``brain_region`` (no domain: none is written unless ``derive_domains``).
    x_key, y_key
        Coordinate columns; if absent, ``obsm['spatial']`` or ``obsm['X_spatial']`` is used.
    gene_symbols
        ``var`` column with gene symbols (CELLxGENE ``feature_name``); var names otherwise.
    layer
        Layer with raw counts; default ``.raw.X`` when present, else ``.X``.
    batch
        ``"donor"`` or ``"slice"``: what ``obs['batch']`` holds.
    age_unit
        Unit of numeric ages.
    harmonize
        Map cell-type labels to short names (:func:`harmonize_cell_types`).
    derive_domains
        If an int and no domain column is given, derive that many domains with
        :func:`napari_causcell.tl.spatial_domains` (neighbours within each slice).

    Returns
    -------
    anndata.AnnData
        A new AnnData in the schema (counts in ``.X`` and ``layers['counts']``).

    Raises
    ------
    DataError
        Missing columns or coordinates, non-integer counts, unreadable ages.
    """
    obs = adata.obs
    age = _first(obs, age_key, ("age", "development_stage", "age_weeks"))
    donor = _first(obs, donor_key, ("donor_id", "donor", "mouse", "animal"))
    ctype = _first(obs, cell_type_key, ("cell_type", "cell_type_annot", "celltype", "cell_class"))
    slice_ = _first(obs, slice_key, ("slice", "slice_id", "section", "tissue_section"))
    domain = _first(obs, domain_key, ("domain", "spatial_domain", "brain_region"))
    need = {"age": age, "donor": donor, "cell type": ctype}
    missing = [k for k, v in need.items() if v is None]
    missing += [v for v in (age, donor, ctype, slice_key and slice_, domain_key and domain)
                if v is not None and v not in obs.columns]
    if missing:
        raise DataError(f"Missing obs column(s) for {missing}; obs has {list(obs.columns)}. "
                        "Pass age_key= / donor_key= / cell_type_key= / slice_key= / "
                        "domain_key=.")
    if x_key in obs and y_key in obs:
        xy = obs[[x_key, y_key]].to_numpy(dtype=float)
        where = f"obs[{x_key!r}, {y_key!r}]"
    elif "spatial" in adata.obsm or "X_spatial" in adata.obsm:
        k = "spatial" if "spatial" in adata.obsm else "X_spatial"
        xy = np.asarray(adata.obsm[k], dtype=float)[:, :2]
        where = f"obsm[{k!r}]"
    else:
        raise DataError(f"No coordinates: obs has no {x_key!r}/{y_key!r} and there is no "
                        "obsm['spatial'].")
    x, var_index, source = _counts_matrix(adata, layer)
    check_counts(x, f"counts in {source}")
    var = pd.DataFrame(index=pd.Index(var_index.astype(str)))
    if gene_symbols and adata.raw is not None and source == "raw.X":
        sym_src = adata.raw.var
    else:
        sym_src = adata.var if len(adata.var) == len(var) else pd.DataFrame(index=var.index)
    if gene_symbols and gene_symbols in sym_src:
        var["gene_id"] = var.index
        var.index = pd.Index(sym_src[gene_symbols].astype(str).to_numpy())
    out_obs, schema = _map_obs(obs, age=age, donor=donor, cell_type=ctype, slice_=slice_,
                               domain=domain, batch=batch, age_unit=age_unit,
                               harmonize=harmonize)
    out_obs.index = obs.index.astype(str)
    counts = sp.csr_matrix(x, dtype=np.float32)
    out = ad.AnnData(X=counts, obs=out_obs, var=var)
    out.var_names_make_unique()
    out.layers["counts"] = counts.copy()
    out.obsm["spatial"] = xy
    schema.update(spatial=where, counts=source)
    out.uns["causcell_schema"] = schema
    if domain is None and derive_domains:
        from ..tl import spatial_domains

        spatial_domains(out, int(derive_domains), cluster_key="cell_type", library_key="slice")
        out.uns["causcell_schema"]["domain"] = f"derived: tl.spatial_domains({derive_domains})"
    return out


def read_merfish_h5ad(path: str | Path, **kwargs: Any) -> ad.AnnData:
    """Read a local CELLxGENE ``.h5ad`` of the MERFISH brain-aging atlas into our schema.

    Download the file yourself (CELLxGENE, Allen et al. 2023, "Molecular and spatial signatures
    of mouse brain aging at single-cell resolution"); nothing is fetched here.

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    **kwargs
        Column names and options of :func:`merfish_to_schema`.

    Returns
    -------
    anndata.AnnData
        See :func:`merfish_to_schema`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: download the atlas's .h5ad from CELLxGENE "
                                "and pass its local path.")
    return merfish_to_schema(ad.read_h5ad(path), **kwargs)


# -- MERSCOPE ------------------------------------------------------------------------------
def merscope_to_schema(
    table: ad.AnnData,
    annotations: pd.DataFrame | None = None,
    *,
    age: str | None = None,
    donor: str | None = None,
    cell_id_key: str | None = None,
    age_key: str = "age",
    donor_key: str = "donor",
    cell_type_key: str = "cell_type",
    domain_key: str | None = "domain",
    slice_key: str = "slide",
    batch: str = "donor",
    age_unit: str = "wk",
    harmonize: bool = True,
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
    if annotations is not None:
        ann = annotations.copy()
        if cell_id_key is not None:
            if cell_id_key not in ann:
                raise DataError(f"Column {cell_id_key!r} not in the annotations "
                                f"({list(ann.columns)}).")
            ann = ann.set_index(cell_id_key)
        ann.index = ann.index.astype(str)
        if ann.index.duplicated().any():
            raise DataError("Cell ids repeat in the annotations.")
        ann = ann.drop(columns=[c for c in ann.columns if c in obs.columns and c not in
                                (age_key, donor_key, cell_type_key, domain_key)])
        clash = [c for c in ann.columns if c in obs.columns]
        obs = obs.drop(columns=clash).join(ann, how="left")
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
    keep_genes = ~table.var_names.str.lower().str.startswith("blank")
    sub = table[labelled][:, keep_genes]
    obs = obs.loc[labelled]
    if "center_x" in obs and "center_y" in obs:
        xy = obs[["center_x", "center_y"]].to_numpy(dtype=float)
    elif "spatial" in sub.obsm:
        xy = np.asarray(sub.obsm["spatial"], dtype=float)[:, :2]
    else:
        raise DataError("No coordinates: no center_x/center_y in obs and no obsm['spatial'].")
    check_counts(sub.X, "MERSCOPE counts")
    dom = domain_key if domain_key and domain_key in obs else None
    mapped, schema = _map_obs(obs, age=age_key, donor=donor_key, cell_type=cell_type_key,
                              slice_=slice_key if slice_key in obs else None, domain=dom,
                              batch=batch, age_unit=age_unit, harmonize=harmonize)
    new_obs = obs.drop(columns=[c for c in mapped.columns if c in obs.columns])
    new_obs = pd.concat([new_obs, mapped.set_index(new_obs.index)], axis=1)
    new_obs.index = sub.obs_names
    counts = sp.csr_matrix(sub.X, dtype=np.float32)
    out = ad.AnnData(X=counts, obs=new_obs, var=sub.var.copy(), uns=dict(sub.uns))
    out.layers["counts"] = counts.copy()
    out.obsm["spatial"] = xy
    schema.update(spatial="center_x/center_y", counts="X",
                  unannotated=int((~labelled).sum()))
    out.uns["causcell_schema"] = schema
    return out


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
