"""Built-in datasets, and readers of the MERFISH brain-aging atlas (local files)."""

from ._brain_aging import PLANTED_AGE_EFFECTS, brain_aging, brain_aging_truth
from ._merfish import (
    PUBLISHED_AGE_TRENDS,
    age_labels,
    harmonize_cell_types,
    merfish_to_schema,
    merscope_to_schema,
    read_merfish_h5ad,
    read_merscope,
)

__all__ = [
    "brain_aging", "brain_aging_truth", "PLANTED_AGE_EFFECTS",
    # MERFISH brain-aging atlas (docs/brain_aging.md)
    "PUBLISHED_AGE_TRENDS", "age_labels", "harmonize_cell_types", "merfish_to_schema",
    "merscope_to_schema", "read_merfish_h5ad", "read_merscope",
]
