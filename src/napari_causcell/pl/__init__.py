"""Plots (matplotlib): no viewer or notebook needed."""

from .._dagplot import dag
from ._intervals import change_intervals
from ._plots import (
    concept_embeddings,
    counterfactual_overlay,
    loss,
    overlay_grid,
    spatial_expression,
    tissue_overlay,
)
from ._trends import age_trends, spatial_trend, trend_heatmap

__all__ = ["change_intervals", "concept_embeddings", "counterfactual_overlay", "dag", "loss",
           "overlay_grid", "spatial_expression", "tissue_overlay",
           # brain-aging trends (docs/brain_aging.md)
           "age_trends", "spatial_trend", "trend_heatmap"]
