"""napari-causcell: CausCell counterfactuals for single-cell and spatial omics."""

from ._model import CausCell, ModelFileError, TrainProgress
from ._version import __version__
from .data import ConceptError, DAGError, DataError

__all__ = [
    "CausCell", "ConceptError", "DAGError", "DataError", "ModelFileError", "TrainProgress",
    "__version__",
]


def __getattr__(name: str):
    # submodules loaded on first use so `import napari_causcell` stays light
    import importlib

    if name in {"tl", "pl", "datasets"}:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
