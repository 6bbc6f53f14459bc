"""What the metrics share: dense float64 matrices and checked pairs of them."""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def dense(x) -> np.ndarray:
    """``x`` (array or sparse matrix) as a dense float64 array."""
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


def dense32(x) -> np.ndarray:
    """``x`` (array or sparse matrix) as a dense float32 array."""
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float32)


def pair(real, gen) -> tuple[np.ndarray, np.ndarray]:
    """Two cells x genes matrices of one shape (at least one cell), dense."""
    real, gen = dense(real), dense(gen)
    if real.shape != gen.shape or real.ndim != 2:
        raise DataError(f"real and generated must be cells x genes of one shape, got "
                        f"{real.shape} and {gen.shape}")
    if real.shape[0] == 0:
        raise DataError("No cells to compare.")
    return real, gen
