"""Tools (scverse style): work on AnnData or SpatialData, say which keys they write.

Those that write into the data do it in place and return ``None``, logging each key added
(logger ``napari_causcell.tl``); ``copy=True`` returns the result and writes nothing.
"""

from ._counterfactual import (
    counterfactual,
    counterfactual_table_name,
    mean_change,
    select_cells,
    top_changed_genes,
)
from ._diagnostics import leakage
from ._intervals import change_intervals
from ._domains import spatial_domains
from ._trends import (
    TrendComparison,
    age_trends,
    compare_trends,
    direct_trends,
    domains_per_slice,
    empirical_null,
    moderate_variances,
    subsample_donors,
    train_ensemble,
    trend_matrix,
    trend_statistics,
)
from ._suggest import DagSuggestion, compare_dags, suggest_dag, where_when
from ._switches import label_switches, switch_confounds, switch_summary

__all__ = [
    "DagSuggestion", "change_intervals", "compare_dags", "counterfactual",
    "counterfactual_table_name", "label_switches", "leakage", "mean_change", "select_cells",
    "spatial_domains", "suggest_dag", "switch_confounds", "switch_summary",
    "top_changed_genes", "where_when",
    # brain-aging trends (docs/brain_aging.md)
    "TrendComparison", "age_trends", "compare_trends", "direct_trends", "domains_per_slice",
    "subsample_donors", "trend_matrix", "trend_statistics", "moderate_variances",
    "empirical_null", "train_ensemble",
]
