"""Built-in datasets."""

from ._brain_aging import PLANTED_AGE_EFFECTS, brain_aging, brain_aging_truth

__all__ = ["brain_aging", "brain_aging_truth", "PLANTED_AGE_EFFECTS"]
