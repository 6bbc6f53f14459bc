"""napari-causcell's error types: one base class, so front ends catch one type.

Every error a user can cause (bad data, concept, graph, model directory or setting) derives
from :class:`CausCellError`. The subclasses also derive from the built-in type they replaced
(``ValueError`` or ``RuntimeError``), so ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class CausCellError(Exception):
    """Base of every napari-causcell error caused by the input, a setting or a file."""


class DataError(CausCellError, ValueError):
    """The expression matrix, its genes, the cell selection or a setting is unusable."""


class ConceptError(CausCellError, ValueError):
    """A concept column or label is unusable."""


class DAGError(CausCellError, ValueError):
    """The causal graph over concepts is invalid."""


class SettingError(CausCellError, ValueError):
    """An argument that cannot work (``max_epochs=0``, ``lr=-1``, ``device="foo"``, ...)."""


class ModelFileError(CausCellError, RuntimeError):
    """A saved model directory is missing, corrupt, incomplete or inconsistent."""


class TrainingError(CausCellError, RuntimeError):
    """Training could not produce a usable model (e.g. the loss became NaN or infinite)."""


class NotTrainedError(CausCellError, RuntimeError):
    """The model must be trained (or a trained one loaded) first."""


__all__ = ["CausCellError", "ConceptError", "DAGError", "DataError", "ModelFileError",
           "NotTrainedError", "SettingError", "TrainingError"]
