"""Built-in datasets, and readers of the MERFISH brain-aging atlas (local files)."""

from ._brain_aging import PLANTED_AGE_EFFECTS, brain_aging, brain_aging_truth
from ._merfish import PUBLISHED_AGE_TRENDS, merfish_to_schema, read_merfish_h5ad
from ._merscope import merscope_to_schema, read_merscope
from ._schema import age_labels, harmonize_cell_types
from ._sun2024 import (
    SUN2024_AGE_MARKERS,
    SUN2024_CELL_TYPES,
    SUN2024_CREDIT,
    SUN2024_LITERATURE_MARKERS,
    merfish_brain_aging,
    merfish_brain_aging_path,
)

__all__ = [
    "brain_aging", "brain_aging_truth", "PLANTED_AGE_EFFECTS",
    # MERFISH brain-aging atlas (docs/brain_aging.md)
    "PUBLISHED_AGE_TRENDS", "age_labels", "harmonize_cell_types", "merfish_to_schema",
    "merscope_to_schema", "read_merfish_h5ad", "read_merscope",
    # real MERFISH brain aging, shipped (Sun et al.; MIT)
    "merfish_brain_aging", "merfish_brain_aging_path", "SUN2024_AGE_MARKERS",
    "SUN2024_CELL_TYPES", "SUN2024_CREDIT", "SUN2024_LITERATURE_MARKERS",
]
