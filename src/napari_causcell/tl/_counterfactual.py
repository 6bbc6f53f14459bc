"""Counterfactuals written back into AnnData / SpatialData."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._keys import Key
from ..data import add_table, annotating_table, is_spatialdata, resolve_table
from ..errors import DataError, SettingError
from ._utils import added, check_anndata, check_data, check_key_name


def select_cells(adata: ad.AnnData, cells: Any = None) -> np.ndarray:
    """Boolean mask of the chosen cells.

    ``cells`` is ``None`` (all), a boolean mask, a sequence of obs names or integer positions,
    or ``{obs_column: label or [labels]}`` (cells matching every entry). An empty result
    raises :class:`~napari_causcell.DataError`.
    """
    check_anndata(adata)
    n = adata.n_obs
    if cells is None:
        mask = np.ones(n, dtype=bool)
    elif isinstance(cells, Mapping):
        mask = np.ones(n, dtype=bool)
        for col, want in cells.items():
            if col not in adata.obs:
                raise DataError(f"Column {col!r} is not in obs; columns: {list(adata.obs.columns)}.")
            wanted = [want] if isinstance(want, str) or not isinstance(want, Sequence) else want
            mask &= _label_mask(adata, col, [str(w) for w in wanted])
    else:
        arr = np.asarray(cells)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise DataError(f"Boolean cell mask has length {arr.size}, expected {n}.")
            mask = arr.copy()
        elif np.issubdtype(arr.dtype, np.integer):
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                bad = arr[(arr < 0) | (arr >= n)]
                raise DataError(f"Cell positions must be in 0..{n - 1}; got {bad[:3].tolist()} "
                                "(negative positions are refused, not counted from the end).")
            mask = np.zeros(n, dtype=bool)
            mask[arr] = True
        else:
            names = pd.Index(adata.obs_names)
            missing = [c for c in arr if c not in names]
            if missing:
                raise DataError(f"{len(missing)} cell ids not found, e.g. {missing[:3]}.")
            mask = names.isin(arr)
    if not mask.any():
        raise DataError("The cell selection is empty: no cell matches.")
    return mask


def _label_mask(adata: ad.AnnData, col: str, wanted: list[str]) -> np.ndarray:
    """Cells whose ``col`` is one of ``wanted``; a :class:`~napari_causcell.DataError`
    listing the column's labels when none of ``wanted`` is one of them."""
    values = adata.obs[col].astype(str)
    hit = values.isin(wanted).to_numpy()
    if not hit.any():
        labels = sorted(set(values))
        more = f" and {len(labels) - 30} more" if len(labels) > 30 else ""
        shown = wanted[0] if len(wanted) == 1 else wanted
        raise DataError(f"The cell selection is empty: no cell has {col}={shown!r}; the "
                        f"labels of {col!r} are "
                        f"{labels[:30]}{more}.")
    return hit


def counterfactual_table_name(do: Mapping[str, Any]) -> str:
    """The default name of a counterfactual's result: ``causcell_<concept>_<label>[_...]``.

    What :func:`counterfactual` writes under without ``key_added`` (a SpatialData table, or
    an ``adata.uns['causcell']`` entry): each ``concept_label`` pair of ``do`` joined with
    ``_``, every run of other characters than letters, digits and ``_`` replaced by ``_``.

    >>> counterfactual_table_name({"age": "90wk", "domain": "L2/3"})
    'causcell_age_90wk_domain_L2_3'
    """
    text = "_".join(f"{k}_{v}" for k, v in do.items())
    return Key.table.PREFIX + re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_")


def check_result_key(data: Any, name: str, table_key: str | None, overwrite: bool,
                     copy: bool = False) -> None:
    """Refuse a result key that is no valid name, that would replace the source table, or an
    existing result without ``overwrite``; with ``copy`` nothing is written, so only the name
    is checked."""
    check_key_name(name)
    if copy:
        return
    if is_spatialdata(data):
        if table_key is not None and name == table_key:
            raise DataError(f"{name!r} is the table the cells come from; it is never replaced. "
                            "Choose another key.")
        if name in data.tables:
            if not overwrite:
                raise DataError(f"Table {name!r} exists; pass overwrite=True (--overwrite) or "
                                "another key.")
        elif any(n == name for _, n, _ in data.gen_elements()):
            raise DataError(f"{name!r} is already the name of an element of the SpatialData; "
                            "choose another key.")
    elif name in (data.uns.get(Key.uns.CAUSCELL) or {}) and not overwrite:
        raise DataError(f"uns['causcell'][{name!r}] exists; pass overwrite=True or another "
                        "key_added.")


def store_counterfactual(data: Any, name: str, cf: ad.AnnData, source: ad.AnnData) -> None:
    """Write ``cf`` into ``data`` under ``name`` (table ``sdata.tables[name]`` annotating what
    ``source`` annotates, or ``adata.uns['causcell'][name]``) and log the key."""
    if is_spatialdata(data):
        add_table(data, name, cf, source)
        added(f"table {name!r}")
    else:
        data.uns.setdefault(Key.uns.CAUSCELL, {})[name] = cf
        added(f"uns['causcell'][{name!r}]")


def stored_counterfactual(data: Any, name: str) -> ad.AnnData:
    """The counterfactual :func:`counterfactual` wrote under ``name``: ``sdata.tables[name]``
    or ``adata.uns['causcell'][name]``."""
    if is_spatialdata(data):
        if name not in data.tables:
            raise DataError(f"Table {name!r} is missing from the SpatialData.")
        return data.tables[name]
    found = (data.uns.get(Key.uns.CAUSCELL) or {}).get(name)
    if found is None:
        raise DataError(f"adata.uns['causcell'][{name!r}] is missing.")
    return found


def counterfactual(data: Any, model: Any, do: Mapping[str, Any], cells: Any = None, *,
                   table_key: str | None = None, key_added: str | None = None,
                   copy: bool = False, overwrite: bool = False,
                   **kwargs: Any) -> ad.AnnData | None:
    """Counterfactual expression for the chosen cells, written into the data (scverse style:
    in place, returning ``None``, unless ``copy=True``).

    Parameters
    ----------
    data
        AnnData or SpatialData holding the cells.
    model
        A trained :class:`~napari_causcell.CausCell`.
    do
        Intervention, e.g. ``{"age": "90wk"}``.
    cells
        Which cells (see :func:`select_cells`); default all.
    table_key
        Table of a SpatialData holding the cells (default its only table).
    key_added
        Name of the result (letters, digits, ``_``, ``-``, ``.``; default
        :func:`counterfactual_table_name`, ``causcell_<concept>_<value>``).
    copy
        Return the counterfactual instead of writing it; ``data`` is left untouched.
    overwrite
        Replace an existing result of that name (else an error, checked before any work); the
        table the cells come from is never replaced. Ignored with ``copy=True``.
    **kwargs
        Passed to :meth:`CausCell.counterfactual` (``donor``, ``hard``, ``hold`` (e.g.
        ``["cell_type"]``: each cell keeps its type), ``sampler``, ``steps``, ``seed``...).

    Returns
    -------
    None or anndata.AnnData
        ``None`` by default (read the result where it was written, below). With ``copy=True``
        the counterfactual AnnData (as squidpy, the computed result, not a copy of ``data``);
        for a SpatialData input it already annotates the source table's element and instances,
        so ``sdata.tables[key] = cf`` stores it.

    Writes
    ------
    Unless ``copy=True`` (each key is logged at INFO level, logger ``napari_causcell.tl``):
    **SpatialData**: table ``sdata.tables[key_added]``, annotating the same element and
    instance ids as the source table (so napari-spatialdata, squidpy and spatialdata-plot show
    it); **AnnData**: ``adata.uns['causcell'][key_added]``. The counterfactual's own
    ``uns['causcell']['key']`` holds ``key_added``.

    Raises
    ------
    DataError or SettingError
        Before any work: ``data`` is no AnnData or SpatialData, the cells or ``key_added`` are
        unusable, ``n_samples`` or ``steps`` < 1, ``n_samples > 1`` into a SpatialData table.
    """
    table, name = _checked_request(data, do, table_key, key_added, overwrite, copy, kwargs)
    cf = model.counterfactual(table[select_cells(table, cells)], do=do, **kwargs)
    cf.uns[Key.uns.CAUSCELL]["key"] = name
    if copy:
        return annotating_table(cf, table) if is_spatialdata(data) else cf
    store_counterfactual(data, name, cf, table)
    return None


def _checked_request(data: Any, do: Mapping[str, Any], table_key: str | None,
                     key_added: str | None, overwrite: bool, copy: bool,
                     kwargs: Mapping[str, Any]) -> tuple[ad.AnnData, str]:
    """:func:`counterfactual`'s checks that need no model: the source table and the key."""
    from .._checks import count

    check_data(data)
    count("n_samples", kwargs.get("n_samples", 1), 1)
    if "steps" in kwargs:
        count("steps", kwargs["steps"], 1)
    table, table_key = resolve_table(data, table_key)
    if is_spatialdata(data) and kwargs.get("n_samples", 1) > 1:
        raise SettingError(
            "A SpatialData table annotates each instance once: use n_samples=1 here, or call "
            "model.counterfactual(...) for several samples per cell."
        )
    name = key_added or counterfactual_table_name(do)
    check_result_key(data, name, table_key, overwrite, copy)
    return table, name


def mean_change(cf: ad.AnnData, groupby: str | None = None,
                labels: str = "factual") -> pd.DataFrame:
    """Mean paired change (``layers['delta']``) per gene (rows: groups, or one row ``all``).

    Grouping by a descendant of the intervention (e.g. ``"cell_type"`` under do(age), whose
    label may have changed: :func:`label_switches`) groups by each cell's own label
    (``labels="factual"``, default: column ``factual_cell_type``) or by its counterfactual
    label (``labels="counterfactual"``).
    """
    check_anndata(cf, "cf")
    if labels not in ("factual", "counterfactual"):
        raise SettingError(f"labels must be 'factual' or 'counterfactual', got {labels!r}")
    delta = np.asarray(cf.layers["delta"])
    if groupby is None:
        return pd.DataFrame(delta.mean(0, keepdims=True), index=["all"], columns=cf.var_names)
    if labels == "factual" and Key.obs.factual(groupby) in cf.obs:
        groupby = Key.obs.factual(groupby)
    if groupby not in cf.obs:
        raise DataError(f"Column {groupby!r} is not in obs; columns: {list(cf.obs.columns)}.")
    groups = cf.obs[groupby].astype(str).to_numpy()
    labels = sorted(set(groups))
    rows = [delta[groups == g].mean(0) for g in labels]
    return pd.DataFrame(np.vstack(rows), index=labels, columns=cf.var_names)


def top_changed_genes(cf: ad.AnnData, n: int = 20, cells: Any = None,
                      intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Genes ranked by absolute mean change over the chosen cells of a counterfactual.

    Columns ``gene, mean_factual, mean_counterfactual, mean_change``; with ``intervals``
    (:func:`change_intervals` over the same cells, ``groupby=None``) also ``lower, upper``
    (the interval), ``spans_zero`` (it includes 0) and ``reliability``.
    """
    check_anndata(cf, "cf")
    mask = select_cells(cf, cells)
    delta = np.asarray(cf.layers["delta"])[mask]
    fact = np.asarray(cf.layers["factual"])[mask]
    df = pd.DataFrame({
        "gene": cf.var_names,
        "mean_factual": fact.mean(0),
        "mean_counterfactual": fact.mean(0) + delta.mean(0),
        "mean_change": delta.mean(0),
    })
    order = np.argsort(-np.abs(df["mean_change"].to_numpy()), kind="stable")
    top = df.iloc[order[:n]].reset_index(drop=True)
    return top if intervals is None or top.empty else _with_intervals(top, intervals)


def _with_intervals(top: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    if intervals["group"].nunique() != 1:
        raise DataError("intervals must have one group (change_intervals with groupby=None) "
                        f"to go with the top genes; got {intervals['group'].nunique()}")
    at = intervals.set_index("gene").reindex(top["gene"].astype(str))
    out = top.copy()
    out["lower"] = at["lower"].to_numpy(float)
    out["upper"] = at["upper"].to_numpy(float)
    out["spans_zero"] = (out["lower"] <= 0) & (out["upper"] >= 0)
    out["reliability"] = at["reliability"].to_numpy(float)
    return out
