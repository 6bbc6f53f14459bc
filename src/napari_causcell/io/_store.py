"""Whole outputs written aside and switched into place, and the checks made before any write.

Built on :mod:`._atomic`: a SpatialData store (:func:`write_store`) or a file
(:func:`write_file`) is written whole under a hidden name next to its destination, then moved
onto it in one step, so a kill at any instant leaves the old output or the new one, readable.
:func:`check_store_target`, :func:`check_file_target` and :func:`check_input` refuse, before
any work, a destination that would lose something or an input that cannot be read (a FIFO,
a device: reading one blocks forever).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DataError
from ._atomic import (
    is_zarr_store,
    kill_point,
    remove,
    remove_leftovers,
    replace_dir,
    replace_file,
    temp_sibling,
)

__all__ = ["check_file_target", "check_input", "check_store_target", "is_same_file",
           "write_file", "write_store"]

#: metadata files of a zarr store (v2 and v3) that a reader opens first
_ZARR_META = ("zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata")


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

    The store is written whole under a hidden name next to ``dest`` (``sdata.path`` is left
    as it was), then swapped with the old one in one step (:func:`~._atomic.replace_dir`).
    Temporaries left by a killed earlier write are removed first.
    """
    from ._readers import quiet_zarr_warnings

    dest = Path(dest)
    check_store_target(dest)
    remove_leftovers(dest)
    tmp = temp_sibling(dest)
    try:
        with quiet_zarr_warnings():
            sdata.write(tmp, update_sdata_path=False)
        kill_point("store-written")
        replace_dir(tmp, dest)
    except BaseException:
        remove(tmp)
        raise


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


def _mode(path: Path) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def check_input(path: str | Path, what: str = "input", *, folder_files: tuple[str, ...] = ()
                ) -> Path:
    """Refuse, before any work, an input that is missing or neither a regular file nor a
    folder (a FIFO, a socket or a device would block or fail inside the reader).

    For a folder, ``folder_files`` (and, in a zarr store, the metadata files of every group)
    must be regular files where present. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    mode = _mode(path)
    if mode is None:
        raise FileNotFoundError(f"{path} does not exist")
    if stat.S_ISDIR(mode):
        names = set(folder_files)
        bad = [p for p in (path / n for n in names) if (m := _mode(p)) is not None
               and not stat.S_ISREG(m)]
        if not bad and is_zarr_store(path):
            bad = _odd_zarr_metadata(path)
        if bad:
            raise DataError(f"{what} {bad[0]} is not a regular file; refusing to read it")
        return path
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise DataError(f"{what} {path} is {kind}; give an .h5ad file or a .zarr folder")
    return path


def _odd_zarr_metadata(store: Path, limit: int = 100_000) -> list[Path]:
    """Metadata entries of ``store`` that are not regular files (at most ``limit`` looked at)."""
    seen = 0
    for root, dirs, files in os.walk(store):
        for name in files:
            if name in _ZARR_META:
                p = Path(root) / name
                if not stat.S_ISREG(_mode(p) or 0):
                    return [p]
        seen += len(files) + len(dirs)
        if seen > limit:
            break
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return []
