"""What the simulated and the real demo share: timed training, figures, JSON-ready values."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._console import progress_printer, stop_on_interrupt
from .errors import DataError, SettingError

#: the table of both demo datasets
DEMO_TABLE = "table"


def check_positive(**values: int) -> None:
    """``SettingError`` for the first value below 1, e.g. ``check_positive(epochs=0)``."""
    for name, value in values.items():
        if value < 1:
            raise SettingError(f"{name} must be >= 1, got {value}")


def out_folder(out: str | Path) -> Path:
    """``out`` as a path, refused when it exists and is not a folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder.")
    return out


def check_targets(out: Path, *, store: str | None = None, model: str | None = None,
                  files: list[str] | tuple[str, ...] = ()) -> None:
    """Refuse, before anything is written, an output that cannot be replaced without loss.

    ``out`` must be a folder that can be written; ``out/store`` missing or a zarr store,
    ``out/model`` missing, empty or a model folder (other files in it are never deleted),
    each of ``out/files`` missing or a regular file. Raises the same one-line errors as
    the command line's other outputs (``FileExistsError``, ``NotADirectoryError``, ...).
    """
    from .io import check_writable
    from .io._store import check_file_target, check_store_target

    check_writable(out, directory=True)
    if store is not None:
        check_store_target(out / store)
    if model is not None:
        from .io._model_dir import check_model_target

        check_model_target(out / model, True)
    for name in files:
        check_file_target(out / name)


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, written aside and renamed onto ``path``."""
    from .io._store import write_file

    text = json.dumps(obj, indent=1)
    write_file(path, lambda tmp: tmp.write_text(text))


def figure_names(prefix: str, genes: list[str]) -> list[str]:
    """The files :func:`save_figures` writes for ``genes``."""
    return [f"{prefix}overlay_{safe_name(g)}.png" for g in genes] + [f"{prefix}loss.png"]


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python ones, tuples as lists and other objects as text."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    return obj if obj is None or isinstance(obj, str) else str(obj)


def safe_name(gene: str) -> str:
    """``gene`` usable in a file name."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", gene)


def save_figures(out: Path, prefix: str, model: Any, cf: Any, sdata: Any,
                 genes: list[str], new_figure: Callable[[], Any],
                 title: str | None = None) -> dict[str, Any]:
    """``<prefix>overlay_<gene>.png`` per gene and ``<prefix>loss.png``; their paths. Each
    file is written aside and renamed into place (a kill never leaves half a PNG)."""
    from matplotlib.figure import Figure

    from . import pl
    from .io._store import write_file

    def savefig(fig: Any, path: Path) -> None:
        write_file(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))

    files: dict[str, Any] = {"overlays": []}
    for gene in genes:
        fig = pl.counterfactual_overlay(cf, gene, background=sdata, fig=new_figure(),
                                        title=None if title is None else title.format(gene=gene))
        path = out / f"{prefix}overlay_{safe_name(gene)}.png"
        savefig(fig, path)
        files["overlays"].append(str(path))
    ax = pl.loss(model, ax=Figure(figsize=(6, 4)).subplots())
    ax.figure.tight_layout()
    files["loss"] = str(out / f"{prefix}loss.png")
    savefig(ax.figure, Path(files["loss"]))
    return files


def train_timed(model: Any, epochs: int, max_time: float | None,
                say: Callable[[str], Any]) -> tuple[float, dict[str, float]]:
    """Train with progress lines (Ctrl-C keeps a usable model); seconds taken and the last
    epoch's held-out accuracy per concept."""
    t0 = time.perf_counter()
    with stop_on_interrupt(model):
        model.train(epochs, max_time=max_time, callbacks=[progress_printer(say)])
    train_s = time.perf_counter() - t0
    last = model.history[-1]
    return train_s, {c: float(last[f"val_acc_{c}"]) for c in model.concepts
                     if f"val_acc_{c}" in last}


def training_record(model: Any, train_s: float, val_acc: dict[str, float]) -> dict[str, Any]:
    """The ``training`` entry of the demo's metrics."""
    return {"time_s": train_s, "epochs": len(model.history),
            "stop_reason": model.train_params.get("stop_reason"), "val_acc": val_acc}
