"""Plots (matplotlib): no viewer or notebook needed."""

from ._plots import concept_embeddings, counterfactual_overlay, loss, spatial_expression

__all__ = ["concept_embeddings", "counterfactual_overlay", "loss", "spatial_expression"]
