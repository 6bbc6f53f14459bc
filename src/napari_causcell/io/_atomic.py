"""Writes that never leave a half-written result where a reader can see it.

Everything is first written under a temporary (hidden) name next to its destination and then
moved into place with one ``rename``. Replacing an existing directory uses Linux's atomic
``renameat2(RENAME_EXCHANGE)``, so a reader sees either the old or the new directory at every
instant; where the system lacks it, the old directory is moved aside first (a short window in
which the destination is missing, never half-written).

``CAUSCELL_TEST_KILL_AT=<point>`` makes the process SIGKILL itself at a named point
(:func:`kill_point`); the tests use it to check that a store or model directory still reads
after a kill at every dangerous moment.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import signal
import uuid
import warnings
from pathlib import Path
from typing import Any

KILL_ENV = "CAUSCELL_TEST_KILL_AT"
TMP_TAG = ".causcell-"  # every temporary name starts with "." and holds this tag
#: what follows TMP_TAG in a temporary name: ``<what>-<pid>-<12 hex digits>`` (see token())
_TMP_TAIL = r"[a-z0-9_]+-[0-9]+-[0-9a-f]{12}"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100

__all__ = [
    "KILL_ENV", "TMP_TAG", "check_writable", "is_zarr_store", "kill_point", "remove",
    "remove_leftovers", "replace_dir", "replace_file", "temp_sibling", "token",
    "write_table_in_place",
]


def kill_point(name: str) -> None:
    """Test hook: SIGKILL this process here when ``CAUSCELL_TEST_KILL_AT == name``."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def token() -> str:
    """A unique tag holding this process's id, so that only a dead writer's files are removed."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _writer_alive(name: str) -> bool:
    """Whether the process that made the temporary ``name`` is still running (this host)."""
    parts = name.rsplit("-", 2)
    if len(parts) < 3 or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def temp_sibling(path: Path, what: str = "new") -> Path:
    """A hidden, unused name next to ``path`` (same file system, so ``rename`` works):
    ``.<name>.causcell-<what>-<pid>-<12 hex digits>``, a form only this package writes."""
    return path.parent / f".{path.name}{TMP_TAG}{what}-{token()}"


def is_own_temporary(name: str, prefix: str = "") -> bool:
    """Whether ``name`` is exactly a temporary this package makes (``prefix`` + TMP_TAG +
    ``<what>-<pid>-<hex>``): a user's ``notes.tmp`` or ``.x.causcell-notes`` never is."""
    return re.fullmatch(re.escape(prefix + TMP_TAG) + _TMP_TAIL, name) is not None


def remove(path: Path) -> None:
    """Remove a file, link or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def remove_leftovers(path: Path) -> None:
    """Delete temporaries a killed earlier write left next to ``path`` (not a running one's).

    Only names of :func:`temp_sibling`'s exact form are touched, never other files."""
    _remove_dead_temporaries(path.parent, f".{path.name}")


def _remove_dead_temporaries(folder: Path, prefix: str) -> None:
    """Remove ``folder``'s temporaries named ``prefix`` + TMP_TAG ... of dead writers."""
    if folder.is_dir():
        for p in list(folder.iterdir()):
            if is_own_temporary(p.name, prefix) and not _writer_alive(p.name):
                remove(p)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2``); ``False`` where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(new: Path, dest: Path) -> None:
    """Move the finished directory ``new`` onto ``dest`` (an existing one is replaced).

    Atomic where the system can swap two directories: at every instant ``dest`` is the old
    or the new directory, whole.
    """
    if not (dest.exists() or dest.is_symlink()):
        os.rename(new, dest)
        return
    if dest.is_dir() and not dest.is_symlink() and _exchange(new, dest):
        kill_point("dir-swapped")
        remove(new)  # now holds the old directory
        return
    old = temp_sibling(dest, "old")
    os.rename(dest, old)
    os.rename(new, dest)
    remove(old)


def replace_file(new: Path, dest: Path) -> None:
    """Move the finished file ``new`` onto ``dest`` with one atomic ``rename``."""
    if dest.is_dir() and not dest.is_symlink():
        raise IsADirectoryError(f"{dest} is a directory; refusing to replace it with a file")
    os.replace(new, dest)


def check_writable(path: Path, *, directory: bool) -> None:
    """Fail now, not after hours of work, when ``path`` cannot be written.

    ``directory``: ``path`` will be a directory (else a file). The nearest existing ancestor
    must be a directory in which a file can be created (checked by creating one).
    """
    path = Path(path)
    if path.exists():
        if directory and not path.is_dir():
            raise NotADirectoryError(f"{path} exists and is not a directory")
        if not directory and path.is_dir():
            raise IsADirectoryError(f"{path} is a directory; refusing to replace it with a file")
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {parent} is not a directory")
    probe = parent / f".{path.name}{TMP_TAG}probe-{token()}"
    try:
        probe.write_bytes(b"")
    except OSError as err:
        raise PermissionError(f"cannot write {path}: {err.strerror or err}") from err
    finally:
        probe.unlink(missing_ok=True)


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is a zarr store (v3 ``zarr.json`` or v2 ``.zgroup`` at its root)."""
    return path.is_dir() and ((path / "zarr.json").is_file() or (path / ".zgroup").is_file())


def _zarr_v2(store: Path) -> bool:
    """Whether ``store`` is a zarr v2 store (SpatialData's v0.1 container format)."""
    return (store / ".zgroup").is_file() and not (store / "zarr.json").is_file()


def write_table_in_place(sdata: Any, key: str) -> None:
    """Write table ``key`` of the backed ``sdata`` into its own ``.zarr`` store, atomically.

    The table is written whole into a staging store next to the store, in the store's own
    format (zarr v3, or zarr v2 for SpatialData's v0.1 container and tables formats), moved
    under a hidden name (which ``spatialdata.read_zarr`` skips) inside the store's ``tables``
    group, then swapped with the old table of that name in one step; the old one is deleted
    afterwards and the consolidated metadata rewritten. A store without tables gets the
    whole ``tables`` group in one ``rename``. A kill at any moment leaves a store that reads,
    holding the old or the new table, and the next write removes what the killed one left.
    """
    from ._readers import quiet_zarr_warnings

    store = Path(sdata.path)
    tables = store / "tables"
    has_tables = (tables / "zarr.json").is_file() or (tables / ".zgroup").is_file()
    if has_tables:
        _remove_dead_temporaries(tables, "")  # left by a killed earlier write (hidden names)
    remove_leftovers(store)
    import spatialdata

    formats = None
    if _zarr_v2(store):  # write the table as the store holds its others: v0.1, zarr v2
        from spatialdata._io.format import SpatialDataContainerFormatV01, TablesFormatV01

        formats = [SpatialDataContainerFormatV01(), TablesFormatV01()]
    tag = token()
    staging = temp_sibling(store, "table")
    hidden = tables / f"{TMP_TAG}new-{tag}"
    try:
        with quiet_zarr_warnings(), warnings.catch_warnings():
            # the staging store holds the table alone, without the element it annotates
            warnings.filterwarnings("ignore", message=".*is annotating.*not present",
                                    category=UserWarning)
            spatialdata.SpatialData(tables={key: sdata.tables[key]}).write(
                staging, sdata_formats=formats, consolidate_metadata=False)
        if not has_tables:  # the whole tables group, holding only the new table, in one step
            os.rename(staging / "tables", tables)
        else:
            os.rename(staging / "tables" / key, hidden)
    finally:
        remove(staging)
    kill_point("table-written")
    if has_tables:  # else already in place
        _swap_in_table(hidden, tables / key, tables / f"{TMP_TAG}old-{tag}")
    kill_point("table-old-removed")
    if sdata.has_consolidated_metadata():
        with quiet_zarr_warnings():
            sdata.write_consolidated_metadata()


def _swap_in_table(hidden: Path, dest: Path, aside: Path) -> None:
    """Put the staged table ``hidden`` at ``dest``: swapped with the old table in one step
    where the file system can (the old one deleted afterwards), else the old one moved
    ``aside`` first (a short window without the table, never a half-written one)."""
    if not dest.exists():
        os.rename(hidden, dest)
        return
    if _exchange(hidden, dest):
        kill_point("table-swapped")
    else:
        os.rename(dest, aside)
        os.rename(hidden, dest)
        hidden = aside
    remove(hidden)  # the old table, under a hidden name
