"""Plots (matplotlib): no viewer or notebook needed."""

from ._dag import dag
from ._plots import (
    concept_embeddings,
    counterfactual_overlay,
    loss,
    spatial_expression,
    tissue_overlay,
)

__all__ = ["concept_embeddings", "counterfactual_overlay", "dag", "loss", "spatial_expression",
           "tissue_overlay"]
