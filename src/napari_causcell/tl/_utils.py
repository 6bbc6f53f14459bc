"""What the tools share: checking their inputs before any work, and saying which keys they
wrote (squidpy's ``_save_data`` convention)."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import DataError, SettingError

logger = logging.getLogger(__package__)


def added(where: str) -> None:
    """Log (INFO, logger ``napari_causcell.tl``) a key a tool wrote into the user's data,
    e.g. ``added("obs['domain']")`` -> ``Added obs['domain']``."""
    logger.info("Added %s", where)


def check_data(data: Any, what: str = "data") -> None:
    """:class:`~napari_causcell.errors.DataError` unless ``data`` is an AnnData or a
    SpatialData (e.g. a bare array or a file name), before any work."""
    import anndata as ad

    from ..data import is_spatialdata

    if not (isinstance(data, ad.AnnData) or is_spatialdata(data)):
        raise DataError(f"{what} must be an AnnData or a SpatialData, got "
                        f"{type(data).__name__}.")


def check_anndata(adata: Any, what: str = "adata") -> None:
    """:class:`~napari_causcell.errors.DataError` unless ``adata`` is an AnnData."""
    import anndata as ad

    if not isinstance(adata, ad.AnnData):
        raise DataError(f"{what} must be an AnnData, got {type(adata).__name__}.")


def check_key_name(name: Any, what: str = "key_added") -> None:
    """:class:`~napari_causcell.errors.SettingError` unless ``name`` can name a result in
    SpatialData and AnnData alike (spatialdata's naming rules: letters, digits, ``_``,
    ``-`` and ``.``; not ``.``, ``..`` nor starting with ``__``), checked before any work."""
    if not isinstance(name, str) or not name:
        raise SettingError(f"{what} must be a non-empty string, got {name!r}.")
    if name in (".", "..") or name.startswith("__") or not all(
            c.isalnum() or c in "_-." for c in name):
        raise SettingError(f"{what} {name!r} is not a valid name: use letters, digits, '_', "
                           "'-' and '.' (not '.', '..' nor a leading '__').")
