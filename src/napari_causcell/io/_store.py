"""Whole outputs written aside and switched into place, and the checks made before any write.

Built on :mod:`._atomic`: a SpatialData store (:func:`write_store`) or a file
(:func:`write_file`) is written whole under a hidden name next to its destination, then moved
onto it in one step, so a kill at any instant leaves the old output or the new one, readable.
:func:`check_store_target` and :func:`check_file_target` refuse, before any work, a
destination that would lose something (inputs: :func:`._readers.check_input`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._atomic import (
    is_zarr_store,
    kill_point,
    remove,
    remove_leftovers,
    replace_dir,
    replace_file,
    temp_sibling,
)

__all__ = ["check_file_target", "check_store_target", "is_same_file", "write_file",
           "write_store"]


def check_store_target(path: Path) -> None:
    """Refuse to replace ``path`` with a store unless it is missing, empty or a zarr store."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a folder; refusing to replace it")
    if any(path.iterdir()) and not is_zarr_store(path):
        raise FileExistsError(f"{path} is a folder but not a .zarr store; refusing to replace it")


def check_file_target(path: Path) -> None:
    """Refuse to replace ``path`` with a file when it is a folder (or a FIFO, a device)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return  # a dangling link: replaced by the file, nothing behind it is lost
    if not path.exists():
        return
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; refusing to replace it with a file")
    if not path.is_file():
        raise FileExistsError(f"{path} exists and is not a regular file; refusing to replace it")


def write_store(sdata: Any, dest: Path) -> None:
    """Write the SpatialData ``sdata`` to ``dest`` (a ``.zarr`` folder), replacing an old one.

    The store is written whole (with consolidated metadata) under a hidden name next to
    ``dest`` (``sdata.path`` is left as it was), then swapped with the old one in one step (:func:`~._atomic.replace_dir`).
    Temporaries left by a killed earlier write are removed first.
    """
    from ._readers import quiet_zarr_warnings

    dest = Path(dest)
    check_store_target(dest)
    remove_leftovers(dest)
    tmp = temp_sibling(dest)
    previous = sdata.path
    try:
        with quiet_zarr_warnings():
            sdata.write(tmp)  # consolidated metadata too (it needs sdata.path = tmp)
        kill_point("store-written")
        replace_dir(tmp, dest)
    except BaseException:
        remove(tmp)
        raise
    finally:
        sdata.path = previous  # not the temporary name, which no longer exists


def write_file(dest: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` to a hidden name next to ``dest``, then rename it onto ``dest``.

    ``write`` gets a path without ``dest``'s suffix (give the format explicitly, e.g.
    ``savefig(tmp, format="png")``).
    """
    dest = Path(dest)
    check_file_target(dest)
    remove_leftovers(dest)
    tmp = temp_sibling(dest)
    try:
        write(tmp)
        kill_point("file-written")
        replace_file(tmp, dest)
    except BaseException:
        remove(tmp)
        raise


def is_same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are the same file: one path, a link to it, the same inode."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them missing
        return Path(os.path.abspath(a)) == Path(os.path.abspath(b))
