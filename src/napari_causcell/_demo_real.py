"""The demo's real-data part: the shipped MERFISH brain-aging data and known ageing genes.

:func:`run_real_demo` trains on :func:`~napari_causcell.datasets.merfish_brain_aging`,
generates ``do(age=old)`` for the young cells and compares the predicted change of known
ageing genes with the observed old - young difference
(:func:`napari_causcell.metrics.marker_table`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ._demo_common import (
    DEMO_TABLE,
    check_positive,
    check_targets,
    figure_names,
    jsonable,
    out_folder,
    save_figures,
    train_timed,
    training_record,
)
from .metrics import marker_table

#: the real MERFISH data (``datasets.merfish_brain_aging``): the same concepts and DAG as the
#: simulated tissue (the benchmark's ``merfish`` set: age -> cell type <- region)
REAL_CONCEPTS = ["age", "domain", "cell_type"]
REAL_DAG = [("age", "cell_type"), ("domain", "cell_type")]
REAL_DO = {"age": "old"}
REAL_SOURCE = {"age": "young"}
REAL_OVERLAYS = ("C4b", "Gfap", "B2m")
REAL_CAVEAT = ("One mouse per age (YC1 young, OC1 old): mouse and age are confounded, so every "
               "'age' effect here is also a difference between two animals; the two sections "
               "cover different anatomy (striatum mostly young, cortex mostly old).")

__all__ = ["REAL_CONCEPTS", "REAL_DAG", "REAL_DO", "REAL_SOURCE", "format_real_summary",
           "real_targets", "run_real_demo"]


def real_targets() -> list[str]:
    """The files :func:`run_real_demo` may write into its folder (checked before any work)."""
    return figure_names("merfish_", list(REAL_OVERLAYS))


def run_real_demo(
    out: str | Path = "causcell_demo",
    *,
    epochs: int = 300,
    max_time: float | None = 60.0,
    seed: int = 0,
    device: str | None = None,
    log: Callable[[str], Any] | None = print,
    markers: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Train on the shipped real MERFISH brain-aging data, ``do(age=old)`` on the young cells.

    Uses :func:`~napari_causcell.datasets.merfish_brain_aging` (one mouse per age; see its
    caveats) with concepts age, domain (annotated region), cell_type and the DAG
    age -> cell_type <- domain; compares the predicted change of known ageing genes
    (``markers``, default :data:`~napari_causcell.datasets.SUN2024_LITERATURE_MARKERS`) with
    the observed old - young difference (:func:`~napari_causcell.metrics.marker_table`), and
    writes ``merfish_overlay_<gene>.png`` (factual / counterfactual / difference on the young
    section) and ``merfish_loss.png`` into ``out``.

    Returns
    -------
    dict
        ``data``, ``caveat``, ``settings``, ``training``, ``counterfactual``, ``markers``,
        ``by_domain``, ``skipped``, ``n_agree_observed``, ``n_agree_expected``, ``n``,
        ``files`` and ``time_s``.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    from .datasets import SUN2024_LITERATURE_MARKERS

    check_positive(epochs=epochs)
    markers = SUN2024_LITERATURE_MARKERS if markers is None else markers
    out = out_folder(out)
    check_targets(out, files=real_targets())  # before any work or write
    return _run_real(out, epochs, max_time, seed, device, log or (lambda _msg: None), markers)


def _run_real(out: Path, epochs: int, max_time: float | None, seed: int, device: str | None,
              say: Callable[[str], Any], markers: pd.DataFrame) -> dict[str, Any]:
    from matplotlib.figure import Figure

    from . import tl
    from ._model import CausCell
    from .datasets import SUN2024_CREDIT, merfish_brain_aging

    t_all = time.perf_counter()
    say(f"Real data: {SUN2024_CREDIT}")
    say(f"Note: {REAL_CAVEAT}")
    sdata = merfish_brain_aging()
    table = sdata.tables[DEMO_TABLE]
    model = CausCell(sdata, REAL_CONCEPTS, REAL_DAG, table_key=DEMO_TABLE, seed=seed,
                     device=device)
    limit = f", at most {max_time:g} s" if max_time else ""
    say(f"Training on {table.n_obs} real cells x {len(model.genes)} genes (at most {epochs} "
        f"epochs{limit}) ...")
    train_s, val_acc = train_timed(model, epochs, max_time, say)

    source = tl.select_cells(table, REAL_SOURCE)
    say(f"Counterfactual do(age=old) on the {int(source.sum())} young cells ...")
    t0 = time.perf_counter()
    cf = tl.counterfactual(sdata, model, REAL_DO, cells=source, table_key=DEMO_TABLE,
                           seed=seed, copy=True)
    cf_s = time.perf_counter() - t0
    mt = marker_table(sdata, cf, markers)

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = save_figures(
        out, "merfish_", model, cf, sdata, [g for g in REAL_OVERLAYS if g in cf.var_names],
        lambda: Figure(figsize=(7.5, 7.5), layout="constrained"),
        "Real MERFISH, young mouse: do(age=old), {gene}")
    return jsonable({
        "data": SUN2024_CREDIT,
        "caveat": REAL_CAVEAT,
        "settings": {"epochs": epochs, "max_time": max_time, "seed": seed,
                     "device": str(model.device), "concepts": REAL_CONCEPTS,
                     "dag": [f"{a}->{b}" for a, b in REAL_DAG], "n_cells": table.n_obs,
                     "n_genes": len(model.genes)},
        "training": training_record(model, train_s, val_acc),
        "counterfactual": {"do": REAL_DO, "cells": REAL_SOURCE, "n_cells": int(cf.n_obs),
                           "time_s": cf_s},
        **mt,
        "files": files,
        "time_s": time.perf_counter() - t_all,
    })


def format_real_summary(real: dict[str, Any]) -> str:
    """Readable summary of :func:`run_real_demo`'s result (the marker table)."""
    tr, cf = real["training"], real["counterfactual"]
    accs = ", ".join(f"{c} {v:.3f}" for c, v in tr["val_acc"].items())
    s = real["settings"]
    lines = [
        f"Real data: MERFISH mouse brain aging (Sun et al.), {s['n_cells']} cells x "
        f"{s['n_genes']} genes; DAG {', '.join(s['dag'])}",
        f"  Caution: {real['caveat']}",
        f"Training: {tr['epochs']} epochs in {tr['time_s']:.1f} s "
        f"(stopped: {tr['stop_reason']}); held-out concept accuracy: {accs}",
        f"Counterfactual do(age=old) on {cf['n_cells']} young cells: {cf['time_s']:.1f} s",
        f"Known ageing genes (log-normalised units): predicted change vs observed old - young; "
        f"sign agrees with observed for {real['n_agree_observed']} of {real['n']}, with the "
        f"literature for {real['n_agree_expected']} of {real['n']}",
        "  (region-matched: the observed difference within regions, weighted by the young "
        "cells' regions; coverage: the share of young cells in regions with both ages)",
        f"  {'gene':<8}{'cell type':<11}{'young':>6}{'old':>6}{'predicted':>11}{'observed':>10}"
        f"{'region-matched':>16}{'coverage':>10}  literature",
    ]

    def num(v: float | None, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    for r in real["markers"]:
        mark = "" if r["agrees_observed"] in (True, None) else "  (sign differs)"
        lines.append(f"  {r['gene']:<8}{r['cell_type']:<11}{r['n_source']:>6}{r['n_target']:>6}"
                     f"{r['predicted']:>+11.3f}{num(r['observed'], '+.3f'):>10}"
                     f"{num(r.get('observed_region_matched'), '+.3f'):>16}"
                     f"{num(r.get('region_matched_share'), '.0%'):>10}"
                     f"  {r['expected'] or ''}{mark}")
    for r in real.get("skipped", []):
        lines.append(f"  ({r['gene']} in {r['cell_type']} skipped: {r['reason']})")
    f = real["files"]
    lines.append(f"Files: {', '.join(Path(p).name for p in f['overlays'])}, "
                 f"{Path(f['loss']).name} (real data; numbers in metrics.json 'real_data')")
    return "\n".join(lines)
