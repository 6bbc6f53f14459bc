"""Minibatches of the model's input read straight from sparse, dense or on-disk matrices.

:class:`ExpressionSource` holds a reference to the expression matrix of an AnnData (in-memory
CSR or dense, a backed ``.h5ad`` opened with ``backed="r"``, or a dask array such as a lazily
read zarr table) and returns dense, log-normalised rows of the model's genes for any set of
cells. Only the requested rows are read, densified and normalised, so memory stays flat as the
number of cells grows.

The numbers are those of :func:`~napari_causcell.data.expression` on the whole matrix:
``log1p(counts / total * 1e4)`` with ``total`` the cell's counts over the model's genes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .preprocess import DataError, counts_layer_hint, gene_indexer, get_matrix

TARGET_SUM = 1e4


def normalize_rows(x: np.ndarray, target_sum: float = TARGET_SUM) -> np.ndarray:
    """Dense counts -> ``log1p(counts / total * target_sum)`` per row, in place (float32).

    Cells with no counts stay zero (as in scanpy's ``normalize_total``).
    """
    total = x.sum(1, dtype=np.float64, keepdims=True)
    total[total == 0] = target_sum
    np.divide(x, (total / target_sum).astype(np.float32), out=x)
    np.log1p(x, out=x)
    return x


def _check_block(x: np.ndarray, log_normalized: bool) -> None:
    if x.size == 0:
        return
    if not np.isfinite(x).all():
        what = "log-normalised data" if log_normalized else "counts"
        raise DataError(f"The {what} contain NaN or infinite values.")
    if x.min() < 0:
        what = "log-normalised data" if log_normalized else "counts"
        raise DataError(f"The {what} contain negative values (min {x.min():g}).")
    if not log_normalized and not np.array_equal(x, np.round(x)):
        raise DataError(
            "The counts are not integers; pass raw counts, or log-normalised data with "
            "log_normalized=True."
        )


def is_backed(adata: ad.AnnData) -> bool:
    """Whether ``adata``'s matrix stays on disk (backed ``.h5ad``) or is lazy (dask)."""
    return bool(adata.isbacked) or hasattr(adata.X, "compute")


class ExpressionSource:
    """Row access to the model's input (log-normalised expression of ``genes``).

    Parameters
    ----------
    adata
        AnnData with ``.X`` (or ``layer``) as scipy sparse, numpy, a backed ``.h5ad`` matrix
        (``anndata.read_h5ad(path, backed="r")``) or a dask array.
    genes
        The model's genes, in order; every one must be in ``adata.var_names``.
    layer, log_normalized
        As for :class:`~napari_causcell.CausCell`.
    """

    def __init__(
        self,
        adata: ad.AnnData,
        genes: Sequence[str],
        layer: str | None = None,
        log_normalized: bool = False,
    ) -> None:
        if adata.n_obs == 0:
            raise DataError("No cells selected (the data have 0 observations).")
        self.genes = list(genes)
        cols = gene_indexer(pd.Index(adata.var_names), self.genes)
        self.cols = None if np.array_equal(cols, np.arange(adata.n_vars)) else cols
        self.log_normalized = bool(log_normalized)
        self.backed = is_backed(adata)
        x = get_matrix(adata, layer)
        if sparse.issparse(x) and x.format != "csr":
            x = sparse.csr_matrix(x)  # row access needs CSR; done once
        fmt = getattr(x, "format", None)
        if self.backed and fmt == "csc":
            raise DataError(
                "The on-disk matrix is CSC: reading cells from it means reading the whole "
                "file. Rewrite it as CSR (adata.X = adata.X.tocsr(); write_h5ad) first."
            )
        self.matrix = x
        self._layers = (adata, layer)  # to name a layer of counts when the values are not
        self.n_obs = adata.n_obs
        self.n_genes = len(self.genes)

    def __len__(self) -> int:
        return self.n_obs

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """Raw values of sorted unique ``rows`` for the model's genes, dense float32."""
        x = self.matrix
        if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
            key = slice(int(rows[0]), int(rows[-1]) + 1)  # contiguous: one read
        else:
            key = rows
        block = x[key]
        if hasattr(block, "compute"):
            block = block.compute()
        if self.cols is not None:
            block = block[:, self.cols]
        if sparse.issparse(block):
            return block.toarray().astype(np.float32, copy=False)
        return np.array(block, dtype=np.float32)

    def rows(self, idx: Sequence[int] | np.ndarray, check: bool = True) -> np.ndarray:
        """Dense log-normalised expression ``(len(idx), n_genes)`` of cells ``idx`` (any order).

        ``check`` validates the raw values (finite, non-negative, integer counts).
        """
        idx = np.asarray(idx, dtype=np.int64)
        if idx.ndim != 1:
            raise ValueError("idx must be one-dimensional")
        if len(idx) == 0:
            return np.zeros((0, self.n_genes), np.float32)
        uniq, inverse = np.unique(idx, return_inverse=True)
        if uniq[0] < 0 or uniq[-1] >= self.n_obs:
            raise IndexError(f"cell index out of range for {self.n_obs} cells")
        block = self._read(uniq)
        if check:
            try:
                _check_block(block, self.log_normalized)
            except DataError as err:
                hint = "" if self.log_normalized else counts_layer_hint(*self._layers)
                raise DataError(f"{err}{hint}") from None
        if not self.log_normalized:
            normalize_rows(block)
        return block if len(uniq) == len(idx) and np.array_equal(uniq, idx) else block[inverse]

    def dense(self) -> np.ndarray:
        """Every cell's input, dense float32 (for outputs that are dense anyway)."""
        return np.concatenate([b for _, b in self.chunks(check=False)])

    def chunks(
        self, idx: np.ndarray | None = None, size: int = 8192, check: bool = True
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(cells, expression)`` for ``idx`` (default all cells) in chunks of ``size``."""
        idx = np.arange(self.n_obs) if idx is None else np.asarray(idx, dtype=np.int64)
        for i in range(0, len(idx), size):
            part = idx[i : i + size]
            yield part, self.rows(part, check=check)

    def stats(self, idx: np.ndarray | None = None, size: int = 8192
              ) -> tuple[float, np.ndarray, np.ndarray, int]:
        """Largest value, per-gene sum and sum of squares (float64) and the number of cells
        over ``idx``, checking every value on the way (one pass)."""
        top, n = 0.0, 0
        s1, s2 = np.zeros(self.n_genes), np.zeros(self.n_genes)
        for _, block in self.chunks(idx, size):
            if block.size:
                top = max(top, float(block.max()))
                b = block.astype(np.float64)
                s1 += b.sum(0)
                s2 += (b * b).sum(0)
                n += len(block)
        return top, s1, s2, n

    def max(self, idx: np.ndarray | None = None, size: int = 8192) -> float:
        """Largest value of the input over cells ``idx``, checking every value on the way."""
        return self.stats(idx, size)[0]
