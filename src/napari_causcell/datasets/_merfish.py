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

from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..data.domains import add_domains
from ..data.preprocess import DataError, check_counts
from ._merscope import merscope_to_schema, read_merscope
from ._schema import (
    CELL_TYPE_ALIASES,
    _counts_matrix,
    _first,
    _map_obs,
    _schema_anndata,
    age_labels,
    harmonize_cell_types,
)

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



def _source_columns(
    obs: pd.DataFrame, age_key: str | None, donor_key: str | None, cell_type_key: str | None,
    slice_key: str | None, domain_key: str | None,
) -> dict[str, str | None]:
    """The source column of each schema field: the one given, else the first present."""
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
    return {"age": age, "donor": donor, "cell_type": ctype, "slice_": slice_, "domain": domain}


def _coordinates(adata: ad.AnnData, x_key: str, y_key: str) -> tuple[np.ndarray, str]:
    """Cell centres ``(n, 2)`` and where they came from: obs columns, else obsm."""
    obs = adata.obs
    if x_key in obs and y_key in obs:
        return obs[[x_key, y_key]].to_numpy(dtype=float), f"obs[{x_key!r}, {y_key!r}]"
    if "spatial" in adata.obsm or "X_spatial" in adata.obsm:
        k = "spatial" if "spatial" in adata.obsm else "X_spatial"
        return np.asarray(adata.obsm[k], dtype=float)[:, :2], f"obsm[{k!r}]"
    raise DataError(f"No coordinates: obs has no {x_key!r}/{y_key!r} and there is no "
                    "obsm['spatial'].")


def _gene_var(
    adata: ad.AnnData, var_index: pd.Index, source: str, gene_symbols: str | None
) -> pd.DataFrame:
    """var indexed by gene symbol (the source id in ``gene_id``) when ``gene_symbols`` is a
    column of the counts' var; else indexed by the var names."""
    var = pd.DataFrame(index=pd.Index(var_index.astype(str)))
    if gene_symbols and adata.raw is not None and source == "raw.X":
        sym_src = adata.raw.var
    else:
        sym_src = adata.var if len(adata.var) == len(var) else pd.DataFrame(index=var.index)
    if gene_symbols and gene_symbols in sym_src:
        var["gene_id"] = var.index
        var.index = pd.Index(sym_src[gene_symbols].astype(str).to_numpy())
    return var


def merfish_to_schema(
    adata: ad.AnnData, *, age_key: str | None = None, donor_key: str | None = None,
    cell_type_key: str | None = None, slice_key: str | None = None,
    domain_key: str | None = None, x_key: str = "center_x", y_key: str = "center_y",
    gene_symbols: str | None = "feature_name", layer: str | None = None, batch: str = "donor",
    age_unit: str = "wk", harmonize: bool = True, derive_domains: int | None = None,
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
    cols = _source_columns(adata.obs, age_key, donor_key, cell_type_key, slice_key, domain_key)
    xy, where = _coordinates(adata, x_key, y_key)
    x, var_index, source = _counts_matrix(adata, layer)
    check_counts(x, f"counts in {source}")
    var = _gene_var(adata, var_index, source, gene_symbols)
    out_obs, schema = _map_obs(adata.obs, **cols, batch=batch, age_unit=age_unit,
                               harmonize=harmonize)
    out_obs.index = adata.obs.index.astype(str)
    schema.update(spatial=where, counts=source)
    out = _schema_anndata(x, out_obs, var, xy, schema, unique_var_names=True)
    if cols["domain"] is None and derive_domains:
        # neighbours within each slice, the same computation as tl.spatial_domains
        add_domains(out, int(derive_domains), cluster_key="cell_type", library_key="slice")
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


