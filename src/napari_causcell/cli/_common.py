"""What the subcommands share: the usage error, ``COLUMN=LABEL`` arguments, summaries."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import CausCellError, SettingError

PROG = "napari-causcell"
DEFAULT_THREADS = 1


class UsageError(SettingError):
    """A command-line value that cannot be used."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions reported as ``error: ...`` with exit code 2.

    Every :class:`~napari_causcell.errors.CausCellError` (bad data, concept, graph, model
    directory, setting), bad values and file-system refusals (missing, existing, not a
    directory, not writable).
    """
    return (CausCellError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, PermissionError)


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [s.strip() for s in text.split(",") if s.strip()]


def assignments(items: Sequence[str] | None, flag: str, multi: bool = False) -> dict[str, Any]:
    """``["age=90wk", ...]`` -> ``{"age": "90wk"}``; with ``multi``, ``a=x,y`` -> ``[x, y]``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UsageError(f"{flag} expects COLUMN=LABEL, got {item!r}")
        if key in out:
            hint = " (list several labels as COLUMN=A,B)" if multi else ""
            raise UsageError(f"{flag} gives {key!r} twice{hint}")
        labels = split_list(value) if multi else [value]
        out[key] = labels if multi and len(labels) > 1 else labels[0]
    return out


def describe_where(where: dict[str, Any]) -> str:
    """``{"age": "4wk", "domain": ["WM", "L1"]}`` -> ``"age=4wk and domain in ['WM', 'L1']"``."""
    return " and ".join(f"{k} in {v}" if isinstance(v, list) else f"{k}={v}"
                        for k, v in where.items())


def training_summary(model: Any) -> list[str]:
    """Indented lines on a model's training (epochs, stop reason, cells, accuracy, loss)."""
    if not model.history:
        return ["  not trained"]
    last, params = model.history[-1], model.train_params
    accs = ", ".join(f"{c} {last[f'val_acc_{c}']:.3f}" for c in model.concepts
                     if f"val_acc_{c}" in last)
    lines = [
        f"  epochs: {len(model.history)} ({params.get('steps', '?')} steps, "
        f"{last.get('time', float('nan')):.1f} s)",
        f"  stop reason: {params.get('stop_reason', '?')}",
        f"  cells: {params.get('n_train', '?')} training, {params.get('n_val', '?')} held out",
    ]
    if accs:
        lines.append(f"  held-out concept accuracy (last epoch): {accs}")
    if "best_val_loss" in params:
        lines.append(f"  best held-out loss: {params['best_val_loss']:.4f}")
    return lines


@contextlib.contextmanager
def cleanup_on_error(tmp: Path) -> Iterator[None]:
    """Remove the partly written ``tmp`` when writing it fails."""
    try:
        yield
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def check_data_input(path: str | Path) -> Path:
    """``DATA``: a regular file or a folder (a FIFO or device would block the reader with no
    message), checked before any work."""
    from ..io._readers import check_input

    return check_input(path, "DATA")


def check_model_input(path: str | Path) -> Path:
    """``MODEL``: a folder whose ``model.pt`` and ``causcell.json`` are regular files where
    present; anything else (a missing folder, a file) is left to the loader's own checks."""
    from ..io._model_dir import META_FILE, WEIGHTS_FILE
    from ..io._readers import check_input

    if not Path(path).exists():
        return Path(path)  # the loader says "... is not a model directory"
    return check_input(path, "MODEL", folder_files=(WEIGHTS_FILE, META_FILE))


def version() -> str:
    """The installed napari-causcell version."""
    from .._version import __version__

    return __version__
