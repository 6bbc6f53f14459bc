"""Tools (scverse style): work on AnnData or SpatialData, say which keys they write."""

from ._counterfactual import counterfactual, mean_change, select_cells, top_changed_genes
from ._diagnostics import leakage
from ._domains import spatial_domains

__all__ = [
    "counterfactual", "leakage", "mean_change", "select_cells", "spatial_domains",
    "top_changed_genes",
]
