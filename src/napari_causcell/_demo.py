"""End-to-end demo on the simulated brain-aging tissue, then on the shipped real data.

:func:`run_demo` simulates :func:`~napari_causcell.datasets.brain_aging`, trains, intervenes,
scores against the exact counterfactual (:func:`napari_causcell.metrics.
counterfactual_accuracy`) and writes files; then it runs the real-data part
(:func:`~napari_causcell._demo_real.run_real_demo`). It is what ``napari-causcell demo`` runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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
    write_json,
)
from ._demo_real import format_real_summary, real_targets, run_real_demo
from .metrics import counterfactual_accuracy

DEMO_CONCEPTS = ["age", "domain", "cell_type"]
DEMO_DAG = [("age", "cell_type"), ("domain", "cell_type")]
DEMO_DO = {"age": "90wk"}
DEMO_SOURCE = {"age": "4wk"}
N_OVERLAYS = 3
STORE, MODEL, METRICS = "brain_aging.zarr", "model", "metrics.json"

__all__ = ["DEMO_CONCEPTS", "DEMO_DAG", "DEMO_DO", "DEMO_SOURCE", "format_summary", "run_demo"]


def run_demo(out: str | Path = "causcell_demo", *, n_cells: int = 6000, n_genes: int = 200,
             epochs: int = 300, max_time: float | None = 150.0, seed: int = 0, steps: int = 20,
             device: str | None = None, log: Callable[[str], Any] | None = print,
             real: bool = True, real_epochs: int = 300,
             real_max_time: float | None = 60.0) -> dict[str, Any]:
    """Simulate, train, intervene ``do(age=90wk)`` on the 4wk cells, score and save; then
    the same on the shipped real MERFISH data (:func:`~napari_causcell._demo_real.
    run_real_demo`).

    Every output is checked before anything is computed or written (an existing
    ``brain_aging.zarr`` must be a zarr store, ``model/`` a model folder, the figures and
    ``metrics.json`` files); each is then written aside and switched into place in one step,
    so a kill at any instant leaves every file old or new, readable.

    Parameters
    ----------
    out
        Output folder; existing demo files in it are overwritten.
    n_cells, n_genes, seed
        Passed to :func:`~napari_causcell.datasets.brain_aging` (the model uses all genes).
    epochs, max_time
        Training limits (epochs; wall-clock seconds, ``None`` for none).
    steps
        Sampler steps (used only with a DDIM sampler; the demo uses the default expected
        expression).
    device
        Torch device (default automatic).
    log
        Where progress lines go (``None``: silent).
    real, real_epochs, real_max_time
        Also run :func:`~napari_causcell._demo_real.run_real_demo` on the real MERFISH data
        after the simulated tissue, with these training limits.

    Returns
    -------
    dict
        What ``metrics.json`` holds: settings, ``training`` (time, epochs, stop reason,
        held-out concept accuracies), ``counterfactual`` (cells, time),
        ``accuracy`` (:func:`~napari_causcell.metrics.counterfactual_accuracy`), ``files``,
        ``real_data`` (:func:`~napari_causcell._demo_real.run_real_demo`, with ``real``) and
        ``total_time_s``.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")  # before pyplot is first imported
    say = log or (lambda _msg: None)
    check_positive(epochs=epochs, steps=steps, **({"real_epochs": real_epochs} if real else {}))
    out, t_all = out_folder(out), time.perf_counter()
    # before any work: a refusal after training would waste it, one after a write loses data
    check_targets(out, store=STORE, model=MODEL,
                  files=[*figure_names("", []), METRICS, *(real_targets() if real else [])])
    metrics = _run_simulated(out, n_cells, n_genes, epochs, max_time, seed, steps, device, say)
    metrics["simulated_time_s"] = time.perf_counter() - t_all
    if real:
        say("")
        metrics["real_data"] = run_real_demo(out, epochs=real_epochs, max_time=real_max_time,
                                             seed=seed, device=device, log=log)
    metrics["total_time_s"] = time.perf_counter() - t_all
    write_json(out / METRICS, metrics)
    return metrics


def _run_simulated(out: Path, n_cells: int, n_genes: int, epochs: int, max_time: float | None,
                   seed: int, steps: int, device: str | None,
                   say: Callable[[str], Any]) -> dict[str, Any]:
    """The simulated part of :func:`run_demo`; its metrics (without the times in total)."""
    from . import tl
    from ._model import CausCell
    from .datasets import brain_aging

    say(f"Simulating brain_aging(n_cells={n_cells}, n_genes={n_genes}, seed={seed}) ...")
    sdata = brain_aging(n_cells=n_cells, n_genes=n_genes, seed=seed)
    table = sdata.tables[DEMO_TABLE]
    model = CausCell(sdata, DEMO_CONCEPTS, DEMO_DAG, table_key=DEMO_TABLE,
                     max_genes=max(n_genes, 2000), seed=seed, device=device)
    say(f"{model}")
    limit = f", at most {max_time:g} s" if max_time else ""
    say(f"Training (at most {epochs} epochs{limit}) ...")
    train_s, val_acc = train_timed(model, epochs, max_time, say)

    source = tl.select_cells(table, DEMO_SOURCE)
    say(f"Counterfactual do(age=90wk) on the {int(source.sum())} 4wk cells ...")
    t0 = time.perf_counter()
    tl.counterfactual(sdata, model, DEMO_DO, cells=source, table_key=DEMO_TABLE,
                      steps=steps, seed=seed)
    cf_s = time.perf_counter() - t0
    key = tl.counterfactual_table_name(DEMO_DO)
    cf = sdata.tables[key]
    acc = counterfactual_accuracy(sdata, cf, DEMO_DO, source, return_matrices=True)
    acc["intervals"] = _interval_coverage(model, table, cf, source,
                                          acc.pop("matrices")["true"], steps, seed)
    files = _write_simulated(out, sdata, model, cf, acc)
    return jsonable({
        "settings": {"n_cells": n_cells, "n_genes": n_genes, "epochs": epochs,
                     "max_time": max_time, "seed": seed, "steps": steps,
                     "device": str(model.device), "concepts": DEMO_CONCEPTS,
                     "dag": [f"{a}->{b}" for a, b in DEMO_DAG]},
        "training": training_record(model, train_s, val_acc),
        "counterfactual": {"do": DEMO_DO, "cells": DEMO_SOURCE, "table": key,
                           "n_cells": int(cf.n_obs), "time_s": cf_s},
        "accuracy": acc,
        "files": files,
    })


def _write_simulated(out: Path, sdata: Any, model: Any, cf: Any,
                     acc: dict[str, Any]) -> dict[str, Any]:
    """Write the tissue (with the counterfactual table), the model and the figures, once all
    is computed and every target checked again; their paths. Each is written aside and
    switched into place in one step (the store with :func:`~napari_causcell.io._store.
    write_store`)."""
    from matplotlib.figure import Figure

    from .io._store import write_store

    genes = _overlay_genes(acc, list(cf.var_names), N_OVERLAYS)
    check_targets(out, store=STORE, model=MODEL, files=[*figure_names("", genes), METRICS])
    out.mkdir(parents=True, exist_ok=True)
    zarr_path, model_path = out / STORE, out / MODEL
    write_store(sdata, zarr_path)
    model.save(model_path, overwrite=True)
    files = {"zarr": str(zarr_path), "model": str(model_path),
             **save_figures(out, "", model, cf, sdata, genes,
                            lambda: Figure(figsize=(15, 4.2)))}
    files["metrics"] = str(out / METRICS)
    return files


def _interval_coverage(model: Any, table: Any, cf: Any, source: np.ndarray, true: Any,
                       steps: int, seed: int) -> dict[str, Any]:
    """How often the 90 % intervals of :func:`~napari_causcell.tl.change_intervals` (per
    cell type, reusing the counterfactual) hold the true change, and their mean width."""
    from . import tl

    iv = tl.change_intervals(model, table, DEMO_DO, cells=source, counterfactual=cf,
                             steps=steps, seed=seed)
    iv = iv[iv["group"].isin(true.index)]
    t = true.to_numpy()[true.index.get_indexer(iv["group"]), true.columns.get_indexer(iv["gene"])]
    return {"level": 0.9, "coverage": float(np.mean((iv["lower"] <= t) & (t <= iv["upper"]))),
            "mean_width": float((iv["upper"] - iv["lower"]).mean()),
            "mean_abs_true": float(np.abs(t).mean()), "pairs": int(len(iv))}


def _overlay_genes(metrics: dict[str, Any], genes: list[str], n: int) -> list[str]:
    """Planted age genes with the largest true change (first appearance per gene)."""
    ranked = sorted(metrics.get("planted", []), key=lambda r: -abs(r["true"]))
    out: list[str] = []
    for rec in ranked:
        if rec["gene"] not in out:
            out.append(rec["gene"])
    return out[:n] if out else genes[:n]


def format_summary(metrics: dict[str, Any]) -> str:
    """Readable summary of :func:`run_demo`'s metrics."""
    s, tr, cf, acc = (metrics[k] for k in ("settings", "training", "counterfactual", "accuracy"))
    r, mse = acc["pearson"], acc["mse"]
    accs = ", ".join(f"{c} {v:.3f}" for c, v in tr["val_acc"].items())
    lines = [
        f"Data: simulated brain aging, {s['n_cells']} cells x {s['n_genes']} genes "
        f"(seed {s['seed']}); DAG {', '.join(s['dag'])}",
        f"Training: {tr['epochs']} epochs in {tr['time_s']:.1f} s "
        f"(stopped: {tr['stop_reason']}); held-out concept accuracy: {accs}",
        f"Counterfactual do(age=90wk) on {cf['n_cells']} 4wk cells: {cf['time_s']:.1f} s "
        f"(table {cf['table']!r})",
        f"Per-cell-type mean change ({len(acc['cell_types'])} types x {acc['n_genes']} genes) "
        "vs the true counterfactual:",
        f"  Pearson r  CausCell {r['causcell']:.3f} | observed mean shift "
        f"{r['mean_shift']:.3f} | no change 0 (undefined)",
        f"  MSE        CausCell {mse['causcell']:.5f} | observed mean shift "
        f"{mse['mean_shift']:.5f} | no change {mse['no_change']:.5f}",
    ]
    if "intervals" in acc:
        iv = acc["intervals"]
        lines.append(f"  90 % intervals (tl.change_intervals) cover {iv['coverage']:.0%} of the "
                     f"true changes; mean width {iv['mean_width']:.3f} vs mean |true change| "
                     f"{iv['mean_abs_true']:.3f}")
    if "switched" in acc:
        sw = acc["switched"]
        pred = f"{sw['causcell']:.1%}" if "causcell" in sw else "n/a (token propagation)"
        lines.append(f"  Cells whose type switched  CausCell {pred} | true {sw['true']:.1%}")
    if "planted" in acc:
        slope = acc.get("planted_slope")
        lines.append(f"Planted age effects: sign agrees for {acc['planted_sign_agreement']} "
                     f"of {acc['planted_n']}"
                     + (f"; slope of predicted vs true size {slope:.2f} (1 = calibrated)"
                        if slope is not None else ""))
        lines.append(f"  {'gene':<9}{'cell type':<11}{'log2fc':>7}{'predicted':>11}{'true':>9}")
        for p in acc["planted"]:
            mark = "" if p["sign_agrees"] else "  (sign differs)"
            lines.append(f"  {p['gene']:<9}{p['cell_type']:<11}{p['log2fc_90wk']:>7.1f}"
                         f"{p['predicted']:>11.3f}{p['true']:>9.3f}{mark}")
    if acc.get("left_out_types"):
        lines.append(f"  (types with too few cells left out: {', '.join(acc['left_out_types'])})")
    f = metrics["files"]
    out = Path(f["metrics"]).parent
    lines += [
        f"Files in {out}/: {Path(f['zarr']).name} (with table {cf['table']!r}), "
        f"{Path(f['model']).name}/, {', '.join(Path(p).name for p in f['overlays'])}, "
        "loss.png, metrics.json",
    ]
    if "real_data" in metrics:
        lines += ["", format_real_summary(metrics["real_data"]), ""]
    lines.append(f"Total time: {metrics['total_time_s']:.1f} s")
    return "\n".join(lines)
