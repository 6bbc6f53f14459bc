"""Data layer: concepts, DAG, AnnData/SpatialData adapters, preprocessing (no UI)."""

from .adapters import (
    add_table, annotating_table, coordinates, is_spatialdata, resolve_table, table_attrs,
)
from .concepts import ConceptError, ConceptSpace
from .dag import DAGError, adjacency, descendants, parse_dag, validate_dag
from .preprocess import DataError, check_counts, expression, log_normalize, select_genes, subset_genes
from .stream import ExpressionSource, is_backed

__all__ = [
    "ConceptError", "ConceptSpace", "DAGError", "DataError", "ExpressionSource", "add_table",
    "adjacency", "annotating_table", "check_counts", "coordinates", "descendants", "expression",
    "is_backed", "is_spatialdata",
    "log_normalize", "parse_dag", "resolve_table", "select_genes", "subset_genes",
    "table_attrs", "validate_dag",
]
