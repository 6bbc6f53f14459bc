"""Moved to :mod:`napari_causcell.io._atomic`; kept until ``_model.py`` imports it from there."""
from .io._atomic import *  # noqa: F403
from .io._atomic import __all__  # noqa: F401
