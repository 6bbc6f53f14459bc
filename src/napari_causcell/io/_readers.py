"""Reading the inputs of the command line: an ``.h5ad`` file or a SpatialData ``.zarr`` folder.

The heavy readers (anndata, spatialdata, zarr) are imported by the function that needs them.
"""

from __future__ import annotations

import contextlib
import os
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError, SettingError

__all__ = ["check_input", "quiet_zarr_warnings", "read_data", "read_zarr_table_lazily"]

#: metadata files of a zarr store (v2 and v3) that a reader opens first
_ZARR_META = ("zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata")


def read_data(path: str | Path, backed: bool = False, table_key: str | None = None) -> Any:
    """An ``.h5ad`` file (AnnData) or a SpatialData ``.zarr`` folder.

    With ``backed``, the expression matrix stays on disk: an ``.h5ad`` is opened with
    ``backed="r"``; for a ``.zarr`` only the table (``table_key``) is read, its matrix lazily
    (:func:`read_zarr_table_lazily`).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        The reader failed (a corrupt or foreign file), or ``path`` is neither a regular file
        nor a folder (a FIFO would block the reader forever).
    SettingError
        ``path`` is neither an ``.h5ad`` file nor a folder.
    """
    path = check_input(path, "input")
    try:
        if path.is_dir() and backed:
            return read_zarr_table_lazily(path, table_key)
        if path.is_dir():
            import spatialdata

            return spatialdata.read_zarr(path)
        if path.suffix == ".h5ad":
            import anndata

            with warnings.catch_warnings():  # duplicate genes get our own one-line error
                warnings.filterwarnings("ignore", message="Variable names are not unique")
                return anndata.read_h5ad(path, backed="r" if backed else None)
    except Exception as err:  # noqa: BLE001 - any reader failure is bad input
        raise DataError(f"cannot read {path}: {type(err).__name__}: {err}") from err
    raise SettingError(f"{path}: expected an .h5ad file or a SpatialData .zarr folder")


def read_zarr_table_lazily(path: str | Path, table_key: str | None = None) -> Any:
    """The table of a SpatialData ``.zarr`` as an AnnData whose ``X`` is a lazy dask array.

    ``table_key`` defaults to ``"table"``, or to the only table of the store.
    """
    import anndata
    import zarr
    from anndata.experimental import read_elem_lazy

    path = Path(path)
    tables = path / "tables"
    keys = sorted(p.name for p in tables.iterdir() if p.is_dir()) if tables.is_dir() else []
    if table_key is None:
        if "table" in keys or len(keys) == 1:
            table_key = "table" if "table" in keys else keys[0]
        else:
            raise DataError(f"{path} holds tables {keys}; pass --table-key")
    if table_key not in keys:
        raise DataError(f"Table {table_key!r} not found in {path}; tables are {keys}.")
    group = zarr.open_group(str(tables / table_key), mode="r")
    return anndata.AnnData(
        X=read_elem_lazy(group["X"]),
        obs=anndata.io.read_elem(group["obs"]),
        var=anndata.io.read_elem(group["var"]),
    )


@contextlib.contextmanager
def quiet_zarr_warnings() -> Iterator[None]:
    """Silence zarr's repeated format notices while writing a SpatialData."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*autosharding.*", category=UserWarning)
        yield


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
        if not bad and _is_zarr_store(path):
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


def _is_zarr_store(path: Path) -> bool:
    """A zarr store's root metadata is there (of whatever file type: a FIFO is caught)."""
    return _mode(path / "zarr.json") is not None or _mode(path / ".zgroup") is not None
