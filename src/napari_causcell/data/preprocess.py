"""Expression preprocessing: count checks, library-size normalisation, gene selection."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from scipy import sparse

from .._utils import warn_user
from ..errors import DataError  # re-exported here (the old import location)


def get_matrix(adata: ad.AnnData, layer: str | None = None):
    """Return ``adata.X`` or ``adata.layers[layer]`` with a clear error for a missing layer."""
    if layer is None:
        return adata.X
    if layer not in adata.layers:
        raise DataError(f"Layer {layer!r} not found; layers are {list(adata.layers.keys())}.")
    return adata.layers[layer]


def check_counts(x, what: str = "counts") -> None:
    """Raise :class:`DataError` on negative, NaN/inf or non-integer values."""
    values = x.data if sparse.issparse(x) else np.asarray(x)
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        raise DataError(f"The {what} contain NaN or infinite values.")
    if values.min() < 0:
        raise DataError(f"The {what} contain negative values (min {values.min():g}).")
    if not np.allclose(values, np.round(values)):
        raise DataError(
            f"The {what} are not integers; pass raw counts, or log-normalised data with "
            "log_normalized=True."
        )


def counts_layer_hint(adata: ad.AnnData, layer: str | None) -> str:
    """`` layers['counts'] holds whole numbers: pass layer='counts'.`` when a layer other than
    ``layer`` looks like counts (a sample of whole, non-negative values), else ``""``."""
    names = sorted(adata.layers.keys(), key=lambda n: (n != "counts", "count" not in n, n))
    for name in (n for n in names if n != layer):
        try:
            values = _sample_values(adata.layers[name])
        except Exception:  # noqa: BLE001 - an unusual matrix type: no hint
            continue
        if values.size and np.all(np.isfinite(values)) and values.min() >= 0 and np.all(
                values == np.round(values)):
            return f" layers[{name!r}] holds whole numbers: pass layer={name!r}."
    return ""


def _check_counts_of(adata: ad.AnnData, x, layer: str | None) -> None:
    """:func:`check_counts` of ``x`` (the matrix of ``layer``), its error naming a layer of
    ``adata`` that holds counts."""
    try:
        check_counts(x)
    except DataError as err:
        raise DataError(f"{err}{counts_layer_hint(adata, layer)}") from None


LOG_MAX = 15.0  # log1p(10,000 per cell) tops out near 9.2; larger values are counts


def _sample_values(x, n_rows: int = 2000) -> np.ndarray:
    """Non-zero values of the first ``n_rows`` rows (sparse, dense, backed or dask)."""
    block = x[: min(n_rows, x.shape[0])]
    if hasattr(block, "compute"):
        block = block.compute()
    if sparse.issparse(block):
        return np.asarray(block.data)
    if hasattr(block, "to_memory"):
        block = block.to_memory()
    values = np.asarray(block.toarray() if hasattr(block, "toarray") else block).ravel()
    return values[values != 0]


def warn_if_not_log_normalized(x) -> None:
    """Warn when data said to be log-normalised look like raw counts (a sample is checked)."""
    
    try:
        values = _sample_values(x)
    except Exception:  # noqa: BLE001 - an unusual matrix type: the full checks come later
        return
    values = values[np.isfinite(values)]
    if not values.size:
        return
    top = float(values.max())
    whole = bool(np.all(values == np.round(values)))
    if top > LOG_MAX or (whole and top > 1):
        why = (f"values up to {top:g}" if top > LOG_MAX else "every value is a whole number")
        warn_user(
            f"log_normalized=True, but the matrix does not look log-normalised ({why}; "
            f"log1p of 10,000-per-cell data stays below ~{LOG_MAX:g} and is rarely whole). "
            "Pass raw counts with log_normalized=False, or normalise first.",
            UserWarning,
        )


def check_log_normalized(x) -> None:
    values = x.data if sparse.issparse(x) else np.asarray(x)
    if values.size and not np.all(np.isfinite(values)):
        raise DataError("The log-normalised data contain NaN or infinite values.")
    if values.size and values.min() < 0:
        raise DataError("The log-normalised data contain negative values.")


def check_unique_genes(names: pd.Index | Sequence[str]) -> None:
    """Duplicate gene names make columns ambiguous: a :class:`DataError`."""
    names = pd.Index(names)
    if not names.is_unique:
        dup = list(dict.fromkeys(names[names.duplicated()].astype(str)))
        raise DataError(
            f"{len(dup)} gene names occur more than once (e.g. {dup[:5]}); make them unique "
            "first (adata.var_names_make_unique()) or drop the duplicates."
        )


def gene_indexer(present: pd.Index, genes: Sequence[str]) -> np.ndarray:
    """Positions of ``genes`` in ``present``; missing genes are a :class:`DataError`."""
    genes = list(genes)
    check_unique_genes(present)
    missing = [g for g in genes if g not in present]
    if missing:
        raise DataError(
            f"{len(missing)} of the model's {len(genes)} genes are missing from the data "
            f"(e.g. {missing[:5]}); the data must contain every gene the model was trained on."
        )
    return present.get_indexer(genes)


def subset_genes(adata: ad.AnnData, genes: Sequence[str]) -> ad.AnnData:
    """View of ``adata`` with exactly ``genes`` in that order; missing genes are an error."""
    genes = list(genes)
    present = pd.Index(adata.var_names)
    idx = gene_indexer(present, genes)
    if list(present) == genes:
        return adata
    return adata[:, idx]


def log_normalize(x, target_sum: float = 1e4) -> sparse.csr_matrix:
    """Counts -> ``log1p(counts / total * target_sum)`` with scanpy, as CSR float32."""
    tmp = ad.AnnData(sparse.csr_matrix(x, dtype=np.float32))
    sc.pp.normalize_total(tmp, target_sum=target_sum)
    sc.pp.log1p(tmp)
    return sparse.csr_matrix(tmp.X, dtype=np.float32)


def expression(
    adata: ad.AnnData,
    genes: Sequence[str],
    layer: str | None = None,
    log_normalized: bool = False,
) -> sparse.csr_matrix:
    """The model's input: log-normalised expression of ``genes`` (CSR float32).

    Counts are normalised over the model's genes only, so any dataset that holds those
    genes gives the same values for the same cells.
    """
    if adata.n_obs == 0:
        raise DataError("No cells selected (the data have 0 observations).")
    sub = subset_genes(adata, genes)
    x = get_matrix(sub, layer)
    if log_normalized:
        check_log_normalized(x)
        return sparse.csr_matrix(x, dtype=np.float32)
    _check_counts_of(sub, x, layer)
    return log_normalize(x)


def select_genes(
    adata: ad.AnnData,
    layer: str | None = None,
    log_normalized: bool = False,
    max_genes: int = 2000,
) -> list[str]:
    """All genes, or the ``max_genes`` most highly variable ones (scanpy, Seurat flavour)."""
    check_unique_genes(adata.var_names)
    if log_normalized:
        warn_if_not_log_normalized(get_matrix(adata, layer))
    if adata.n_vars <= max_genes:
        return list(map(str, adata.var_names))
    x = get_matrix(adata, layer)
    if adata.isbacked or hasattr(x, "compute"):
        raise DataError(
            f"The matrix is on disk and has {adata.n_vars} genes, more than max_genes="
            f"{max_genes}: choosing highly variable genes would read all of it. Select the "
            "genes first (e.g. on a subsample held in memory) and keep only those, or raise "
            "max_genes."
        )
    if not log_normalized:
        _check_counts_of(adata, x, layer)
        x = log_normalize(x)
    tmp = ad.AnnData(sparse.csr_matrix(x, dtype=np.float32), var=pd.DataFrame(index=adata.var_names))
    sc.pp.highly_variable_genes(tmp, n_top_genes=max_genes, flavor="seurat")
    # exactly max_genes, best normalised dispersion first, kept in the data's gene order
    disp = tmp.var["dispersions_norm"].fillna(-np.inf).to_numpy()
    top = np.sort(np.argsort(-disp, kind="stable")[:max_genes])
    return [str(g) for g in tmp.var_names[top]]
