"""napari-causcell: CausCell counterfactuals for single-cell and spatial omics.

Heavy modules (torch, scanpy) load on first use, so ``import napari_causcell`` and the
command line's ``--help`` stay fast.
"""

from ._version import __version__

__all__ = [
    "CausCell", "CausCellError", "ConceptError", "DAGError", "DataError", "ModelFileError",
    "NotTrainedError", "SettingError", "TrainProgress", "TrainingError", "__version__",
    "datasets", "errors", "metrics", "pl", "tl",
]

_LAZY = {
    "CausCell": "._model", "TrainProgress": "._model",
    # one error hierarchy (napari_causcell.errors): CausCellError and its subclasses
    "CausCellError": ".errors", "ConceptError": ".errors", "DAGError": ".errors",
    "DataError": ".errors", "ModelFileError": ".errors", "SettingError": ".errors",
    "TrainingError": ".errors", "NotTrainedError": ".errors",
}


def __getattr__(name: str):
    import importlib

    if name in {"tl", "pl", "datasets", "metrics", "errors"}:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
