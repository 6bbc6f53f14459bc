"""End-to-end demo on the simulated brain-aging tissue, and its accuracy against the truth.

:func:`counterfactual_accuracy` compares a counterfactual of :func:`~napari_causcell.
datasets.brain_aging` cells with the exact counterfactual :func:`~napari_causcell.datasets.
brain_aging_truth` computes; :func:`run_demo` trains, intervenes, scores and writes files
(it is what ``napari-causcell demo`` runs).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .data import expression, is_spatialdata, resolve_table
from .data.preprocess import DataError
from .metrics import change_correlation, group_mean_change

DEMO_CONCEPTS = ["age", "domain", "cell_type"]
DEMO_DAG = [("age", "cell_type"), ("domain", "cell_type")]
DEMO_DO = {"age": "90wk"}
DEMO_SOURCE = {"age": "4wk"}
DEMO_TABLE = "table"
N_OVERLAYS = 3

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

__all__ = [
    "DEMO_CONCEPTS", "DEMO_DAG", "DEMO_DO", "DEMO_SOURCE", "REAL_CONCEPTS", "REAL_DAG",
    "REAL_DO", "REAL_SOURCE", "counterfactual_accuracy", "format_real_summary",
    "format_summary", "marker_table", "pearson", "run_demo", "run_real_demo",
]


# -- accuracy ------------------------------------------------------------------------------
def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two flattened arrays; ``0.0`` where undefined (a constant)."""
    return change_correlation(a, b)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float32)


def _lognorm(adata: ad.AnnData, genes: list[str]) -> np.ndarray:
    """Counts of ``genes`` -> log-normalised over those genes only (the model's space)."""
    return expression(adata, genes).toarray()


def _group_means(x: np.ndarray, groups: np.ndarray, labels: list[str]) -> np.ndarray:
    return group_mean_change(x, groups, order=labels).to_numpy()


def counterfactual_accuracy(
    sdata: Any,
    cf: ad.AnnData,
    do: Mapping[str, str],
    source_mask: np.ndarray | None = None,
    *,
    min_cells: int = 10,
    return_matrices: bool = False,
) -> dict[str, Any]:
    """Score a counterfactual of ``brain_aging`` cells against the true counterfactual.

    The true counterfactual counts (:func:`~napari_causcell.datasets.brain_aging_truth`,
    same exogenous noise) are log-normalised over the counterfactual's genes, as the model
    does, and the true change is ``truth - factual`` per cell. The predicted change is
    ``cf.layers['delta']`` (averaged over samples of the same cell). Both are averaged per
    source cell type (the factual ``cell_type``), giving ``types x genes`` matrices.

    Two foils are scored beside the model: *no change* (all zeros; its correlation is
    undefined and reported as 0) and the observed *mean shift*, the mean log-normalised
    expression of each type among the cells carrying the ``do`` labels minus that among
    the source cells (e.g. 90wk minus 4wk cells of the type).

    Parameters
    ----------
    sdata
        The SpatialData from :func:`~napari_causcell.datasets.brain_aging` (its table
        ``"table"`` is used) or that table.
    cf
        Counterfactual AnnData (``layers['factual']``, ``layers['delta']``,
        ``obs['source_id']``), e.g. from :func:`napari_causcell.tl.counterfactual`.
    do
        The intervention the counterfactual was made with, e.g. ``{"age": "90wk"}``.
    source_mask
        Boolean mask over the table's cells that were intervened on; default: the cells
        named by ``cf.obs['source_id']``.
    min_cells
        Cell types with fewer source cells are left out of the matrices (noisy means).
    return_matrices
        Also return the matrices as DataFrames under ``"matrices"`` (not JSON-serialisable).

    Returns
    -------
    dict
        ``do``, ``n_cells``, ``n_genes``, ``cell_types``, ``n_per_type``, ``left_out_types``;
        ``pearson`` and ``mse`` each with ``causcell``, ``mean_shift`` and ``no_change``;
        when ``do`` sets ``age``: ``planted`` (one record per planted effect present:
        ``gene``, ``cell_type``, ``log2fc_90wk``, ``predicted``, ``true``, ``sign_agrees``),
        ``planted_sign_agreement`` (k), ``planted_n`` (n) and ``planted_slope`` (least-squares
        slope of predicted on true planted change; 1 when calibrated); ``switched``: the true
        share of cells whose cell type changes and, when the counterfactual recomputed labels
        (``obs['factual_cell_type']``), the predicted share.
    """
    from .datasets import PLANTED_AGE_EFFECTS, brain_aging_truth

    table = resolve_table(sdata, DEMO_TABLE)[0] if is_spatialdata(sdata) else sdata
    do = {str(k): str(v) for k, v in dict(do).items()}
    for key in ("factual", "delta"):
        if key not in cf.layers:
            raise DataError(f"The counterfactual has no layers[{key!r}].")
    if "source_id" not in cf.obs:
        raise DataError("The counterfactual has no obs['source_id'].")
    source_ids = cf.obs["source_id"].astype(str).to_numpy()
    if source_mask is None:
        source_mask = table.obs_names.isin(source_ids)
    source_mask = np.asarray(source_mask, dtype=bool)
    if source_mask.shape != (table.n_obs,):
        raise DataError(f"source_mask has shape {source_mask.shape}, expected ({table.n_obs},).")
    names = table.obs_names[source_mask]
    if set(names) != set(source_ids):
        raise DataError("The counterfactual's cells (obs['source_id']) differ from source_mask.")
    genes = [str(g) for g in cf.var_names]

    # per source cell: mean over samples of the predicted change, and the factual
    pred = pd.DataFrame(_dense(cf.layers["delta"])).groupby(source_ids).mean().reindex(names)
    fact = pd.DataFrame(_dense(cf.layers["factual"])).groupby(source_ids).mean().reindex(names)
    truth = brain_aging_truth(sdata, do, cells=source_mask)
    true_delta = _lognorm(truth, genes) - fact.to_numpy()
    pred_delta = pred.to_numpy()

    # group by the factual cell type; drop rare types
    src_type = truth.obs["source_cell_type"].astype(str).to_numpy()
    counts = pd.Series(src_type).value_counts()
    order = [str(c) for c in table.obs["cell_type"].astype("category").cat.categories]
    types = [t for t in order if counts.get(t, 0) >= min_cells]
    left_out = [t for t in order if 0 < counts.get(t, 0) < min_cells]
    if not types:
        raise DataError(f"No cell type has {min_cells} or more intervened cells.")
    pred_mat = _group_means(pred_delta, src_type, types)
    true_mat = _group_means(true_delta, src_type, types)

    # foil: the observed shift between cells with the do labels and the source cells
    all_x = _lognorm(table, genes)
    all_type = table.obs["cell_type"].astype(str).to_numpy()
    target = np.ones(table.n_obs, dtype=bool)
    for key, value in do.items():
        target &= table.obs[key].astype(str).to_numpy() == value
    shift = np.zeros_like(true_mat)
    for i, t in enumerate(types):
        tgt, src = target & (all_type == t), source_mask & (all_type == t)
        if tgt.any():  # no target cells of this type: no information, shift stays 0
            shift[i] = all_x[tgt].mean(0) - all_x[src].mean(0)
    zeros = np.zeros_like(true_mat)

    out: dict[str, Any] = {
        "do": do,
        "n_cells": int(source_mask.sum()),
        "n_genes": len(genes),
        "cell_types": types,
        "n_per_type": {t: int(counts[t]) for t in types},
        "left_out_types": left_out,
        "pearson": {"causcell": pearson(pred_mat, true_mat),
                    "mean_shift": pearson(shift, true_mat), "no_change": 0.0},
        "mse": {"causcell": _mse(pred_mat, true_mat), "mean_shift": _mse(shift, true_mat),
                "no_change": _mse(zeros, true_mat)},
    }
    if "age" in do:
        rows = []
        for rec in PLANTED_AGE_EFFECTS.itertuples(index=False):
            if rec.gene not in genes or rec.cell_type not in types:
                continue
            i, j = types.index(rec.cell_type), genes.index(rec.gene)
            p, t = float(pred_mat[i, j]), float(true_mat[i, j])
            rows.append({"gene": rec.gene, "cell_type": rec.cell_type,
                         "log2fc_90wk": float(rec.log2fc_90wk), "predicted": p, "true": t,
                         "sign_agrees": bool(np.sign(p) == np.sign(t))})
        out["planted"] = rows
        out["planted_sign_agreement"] = sum(r["sign_agrees"] for r in rows)
        out["planted_n"] = len(rows)
        if len(rows) >= 2:  # calibration: 1 when predicted effects have the true size
            out["planted_slope"] = float(np.polyfit([r["true"] for r in rows],
                                                    [r["predicted"] for r in rows], 1)[0])
    true_type = truth.obs["cell_type"].astype(str).to_numpy()
    out["switched"] = {"true": float(np.mean(true_type != src_type))}
    if "factual_cell_type" in cf.obs:
        cf_type = cf.obs["cell_type"].astype(str).to_numpy()
        out["switched"]["causcell"] = float(np.mean(
            cf_type != cf.obs["factual_cell_type"].astype(str).to_numpy()))
    if return_matrices:
        out["matrices"] = {
            name: pd.DataFrame(m, index=types, columns=genes)
            for name, m in (("predicted", pred_mat), ("true", true_mat), ("mean_shift", shift))
        }
    return out


# -- the real data: known ageing markers ---------------------------------------------------
def _mean_or_none(x: np.ndarray) -> float | None:
    return float(x.mean()) if x.size else None


def marker_table(
    data: Any,
    cf: ad.AnnData,
    markers: pd.DataFrame,
    *,
    concept: str = "age",
    type_key: str = "cell_type",
    domain_key: str | None = "domain",
    table_key: str | None = None,
    min_cells: int = 10,
) -> dict[str, Any]:
    """Predicted counterfactual change of known markers beside the observed difference.

    For each marker (``gene``, ``cell_type``; optional ``programme``, ``direction``) of
    ``markers``: ``predicted`` is the mean over the intervened cells of that (factual) type
    of the paired change ``cf.layers['delta']`` (samples of a cell averaged first);
    ``observed`` is the mean log-normalised expression (over the counterfactual's genes, the
    model's space) of the type's cells carrying the intervention's labels minus that of the
    intervened cells (for ``do(age=old)`` on the young cells: old minus young). Markers whose
    gene is not in the counterfactual or whose type has fewer than ``min_cells`` intervened
    cells are listed in ``skipped``.

    With ``domain_key``, ``by_domain`` repeats both per domain (region): ``predicted`` for
    every domain with ``min_cells`` intervened cells of the type, ``observed`` only where the
    target cells of the type also number ``min_cells`` there (else ``None``); and each marker
    gets ``observed_region_matched``, those per-domain observed differences averaged with the
    intervened cells' counts as weights (the observed difference at the intervened cells'
    region mix, ``None`` where no domain has both), and ``region_matched_share``, the share of
    the intervened cells of the type in the domains it covers.

    Returns
    -------
    dict
        ``markers`` (records: ``gene``, ``cell_type``, ``programme``, ``expected``,
        ``n_source``, ``n_target``, ``predicted``, ``observed``, ``agrees_observed``,
        ``agrees_expected``, with domains also ``observed_region_matched`` and
        ``region_matched_share``), ``by_domain`` (records: ``gene``, ``cell_type``, ``domain``,
        ``n_source``, ``n_target``, ``predicted``, ``observed``), ``skipped``,
        ``n_agree_observed``, ``n_agree_expected``, ``n``.
    """
    table = resolve_table(data, table_key)[0] if is_spatialdata(data) else data
    do = {str(k): str(v) for k, v in cf.uns.get("causcell", {}).get("do", {}).items()}
    if concept not in do:
        raise DataError(f"The counterfactual does not set {concept!r} (do = {do}).")
    if "source_id" not in cf.obs or "delta" not in cf.layers:
        raise DataError("The counterfactual needs obs['source_id'] and layers['delta'].")
    genes = [str(g) for g in cf.var_names]
    ids = cf.obs["source_id"].astype(str).to_numpy()
    pred = pd.DataFrame(_dense(cf.layers["delta"]), columns=genes).groupby(ids).mean()
    names = pred.index
    pos = table.obs_names.get_indexer(names)
    if (pos < 0).any():
        raise DataError("Some counterfactual cells (obs['source_id']) are not in the data.")
    source = np.zeros(table.n_obs, dtype=bool)
    source[pos] = True
    target = np.ones(table.n_obs, dtype=bool)
    for key, value in do.items():
        target &= table.obs[key].astype(str).to_numpy() == value
    target &= ~source
    x = _lognorm(table, genes)
    ctype = table.obs[type_key].astype(str).to_numpy()
    dom = (table.obs[domain_key].astype(str).to_numpy()
           if domain_key and domain_key in table.obs else None)
    src_type, src_dom = ctype[pos], (dom[pos] if dom is not None else None)
    pred_x = pred.to_numpy()

    rows, by_domain, skipped = [], [], []
    for rec in markers.to_dict("records"):
        gene, t = str(rec["gene"]), str(rec["cell_type"])
        expected = str(rec.get("direction", "")) or None
        sel = src_type == t
        if gene not in genes or sel.sum() < min_cells:
            why = "gene not in the model" if gene not in genes else \
                f"{int(sel.sum())} intervened cells (< {min_cells})"
            skipped.append({"gene": gene, "cell_type": t, "reason": why})
            continue
        j = genes.index(gene)
        tgt = target & (ctype == t)
        p = float(pred_x[sel, j].mean())
        o = float(x[tgt, j].mean() - x[source & (ctype == t), j].mean()) if tgt.any() else None
        want = {"up": 1.0, "down": -1.0}.get(expected or "")
        rows.append({
            "gene": gene, "cell_type": t, "programme": rec.get("programme"),
            "expected": expected, "n_source": int(sel.sum()), "n_target": int(tgt.sum()),
            "predicted": p, "observed": o,
            "agrees_observed": None if o is None else bool(np.sign(p) == np.sign(o)),
            "agrees_expected": None if want is None else bool(np.sign(p) == want),
        })
        if dom is None:
            continue
        matched, weights = [], []
        for d in sorted(set(src_dom[sel])):
            ds = sel & (src_dom == d)
            if ds.sum() < min_cells:
                continue
            dt = tgt & (dom == d)
            ss = source & (ctype == t) & (dom == d)
            o_d = float(x[dt, j].mean() - x[ss, j].mean()) if dt.sum() >= min_cells else None
            by_domain.append({
                "gene": gene, "cell_type": t, "domain": d, "n_source": int(ds.sum()),
                "n_target": int(dt.sum()), "predicted": float(pred_x[ds, j].mean()),
                "observed": o_d,
            })
            if o_d is not None:
                matched.append(o_d)
                weights.append(int(ds.sum()))
        # the observed difference within regions, weighted by the intervened cells' regions
        # (a direct comparison with the counterfactual's composition, where both ages have cells)
        rows[-1]["observed_region_matched"] = (float(np.average(matched, weights=weights))
                                               if matched else None)
        rows[-1]["region_matched_share"] = float(sum(weights) / sel.sum())
    return {
        "markers": rows, "by_domain": by_domain, "skipped": skipped, "n": len(rows),
        "n_agree_observed": sum(bool(r["agrees_observed"]) for r in rows),
        "n_agree_expected": sum(bool(r["agrees_expected"]) for r in rows),
    }


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
    the observed old - young difference (:func:`marker_table`), and writes
    ``merfish_overlay_<gene>.png`` (factual / counterfactual / difference on the young
    section) and ``merfish_loss.png`` into ``out``.

    Returns
    -------
    dict
        ``data``, ``caveat``, ``settings``, ``training``, ``counterfactual``, ``markers``,
        ``by_domain``, ``skipped``, ``n_agree_observed``, ``n_agree_expected``, ``n``,
        ``files`` and ``time_s``.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    from matplotlib.figure import Figure

    from . import pl, tl
    from ._model import CausCell
    from .datasets import SUN2024_CREDIT, SUN2024_LITERATURE_MARKERS, merfish_brain_aging

    say = log or (lambda _msg: None)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    markers = SUN2024_LITERATURE_MARKERS if markers is None else markers
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder.")
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
    train_s, val_acc = _train_timed(model, epochs, max_time, say)

    source = tl.select_cells(table, REAL_SOURCE)
    say(f"Counterfactual do(age=old) on the {int(source.sum())} young cells ...")
    t0 = time.perf_counter()
    cf = tl.counterfactual(sdata, model, REAL_DO, cells=source, table_key=DEMO_TABLE,
                           seed=seed, copy=True)
    cf_s = time.perf_counter() - t0
    mt = marker_table(sdata, cf, markers)

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = _save_figures(
        out, "merfish_", model, cf, sdata, [g for g in REAL_OVERLAYS if g in cf.var_names],
        lambda: Figure(figsize=(7.5, 7.5), layout="constrained"),
        "Real MERFISH, young mouse: do(age=old), {gene}")
    return _jsonable({
        "data": SUN2024_CREDIT,
        "caveat": REAL_CAVEAT,
        "settings": {"epochs": epochs, "max_time": max_time, "seed": seed,
                     "device": str(model.device), "concepts": REAL_CONCEPTS,
                     "dag": [f"{a}->{b}" for a, b in REAL_DAG], "n_cells": table.n_obs,
                     "n_genes": len(model.genes)},
        "training": {"time_s": train_s, "epochs": len(model.history),
                     "stop_reason": model.train_params.get("stop_reason"),
                     "val_acc": val_acc},
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


# -- running the demo ------------------------------------------------------------------------
@contextlib.contextmanager
def stop_on_interrupt(model: Any) -> Iterator[None]:
    """While active, a first Ctrl-C asks ``model`` to stop training (keeping its best
    weights); a second one interrupts as usual. No-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        model.request_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nStopping training after this step (Ctrl-C again to abort)...", flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def quiet_zarr_warnings() -> Iterator[None]:
    """Silence zarr's repeated format notices while writing a SpatialData."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*autosharding.*", category=UserWarning)
        yield


def progress_printer(log: Callable[[str], Any], every_s: float = 10.0) -> Callable:
    """Training callback that logs one line at most every ``every_s`` seconds (and at the
    first epoch)."""
    from ._model import validation_loss

    last = [-math.inf]

    def callback(p) -> None:
        if p.elapsed - last[0] >= every_s or p.epoch == 1:
            last[0] = p.elapsed
            val = validation_loss(p.val_losses)
            val = math.nan if val is None else val
            log(f"  epoch {p.epoch:>4}/{p.max_epochs}  train loss {p.losses.get('total', 0):.4f}"
                f"  val recon {val:.4f}  {p.elapsed:6.1f} s")

    return callback


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    return obj if obj is None or isinstance(obj, str) else str(obj)


def _overlay_genes(metrics: dict[str, Any], genes: list[str], n: int) -> list[str]:
    """Planted age genes with the largest true change (first appearance per gene)."""
    ranked = sorted(metrics.get("planted", []), key=lambda r: -abs(r["true"]))
    out: list[str] = []
    for rec in ranked:
        if rec["gene"] not in out:
            out.append(rec["gene"])
    return out[:n] if out else genes[:n]


def _safe_name(gene: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", gene)


def _save_figures(out: Path, prefix: str, model: Any, cf: Any, sdata: Any,
                  genes: list[str], new_figure: Callable[[], Any],
                  title: str | None = None) -> dict[str, Any]:
    """``<prefix>overlay_<gene>.png`` per gene and ``<prefix>loss.png``; their paths."""
    from matplotlib.figure import Figure

    from . import pl

    files: dict[str, Any] = {"overlays": []}
    for gene in genes:
        fig = pl.counterfactual_overlay(cf, gene, background=sdata, fig=new_figure(),
                                        title=None if title is None else title.format(gene=gene))
        path = out / f"{prefix}overlay_{_safe_name(gene)}.png"
        fig.savefig(path, dpi=110)
        files["overlays"].append(str(path))
    ax = pl.loss(model, ax=Figure(figsize=(6, 4)).subplots())
    ax.figure.tight_layout()
    files["loss"] = str(out / f"{prefix}loss.png")
    ax.figure.savefig(files["loss"], dpi=110)
    return files


def _train_timed(model: Any, epochs: int, max_time: float | None,
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


def run_demo(
    out: str | Path = "causcell_demo",
    *,
    n_cells: int = 6000,
    n_genes: int = 200,
    epochs: int = 300,
    max_time: float | None = 150.0,
    seed: int = 0,
    steps: int = 20,
    device: str | None = None,
    log: Callable[[str], Any] | None = print,
    real: bool = True,
    real_epochs: int = 300,
    real_max_time: float | None = 60.0,
) -> dict[str, Any]:
    """Simulate, train, intervene ``do(age=90wk)`` on the 4wk cells, score and save; then
    the same on the shipped real MERFISH data (:func:`run_real_demo`).

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
        Also run :func:`run_real_demo` on the real MERFISH data after the simulated tissue,
        with these training limits.

    Returns
    -------
    dict
        What ``metrics.json`` holds: settings, ``training`` (time, epochs, stop reason,
        held-out concept accuracies), ``counterfactual`` (cells, time),
        ``accuracy`` (:func:`counterfactual_accuracy`), ``files``, ``real_data``
        (:func:`run_real_demo`, with ``real``) and ``total_time_s``.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")  # before pyplot is first imported
    from matplotlib.figure import Figure

    from . import pl, tl
    from ._model import CausCell
    from .datasets import brain_aging

    say = log or (lambda _msg: None)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if real and real_epochs < 1:
        raise ValueError(f"real_epochs must be >= 1, got {real_epochs}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder.")
    t_all = time.perf_counter()

    say(f"Simulating brain_aging(n_cells={n_cells}, n_genes={n_genes}, seed={seed}) ...")
    sdata = brain_aging(n_cells=n_cells, n_genes=n_genes, seed=seed)
    table = sdata.tables[DEMO_TABLE]
    model = CausCell(sdata, DEMO_CONCEPTS, DEMO_DAG, table_key=DEMO_TABLE,
                     max_genes=max(n_genes, 2000), seed=seed, device=device)
    say(f"{model}")
    limit = f", at most {max_time:g} s" if max_time else ""
    say(f"Training (at most {epochs} epochs{limit}) ...")
    train_s, val_acc = _train_timed(model, epochs, max_time, say)

    source = tl.select_cells(table, DEMO_SOURCE)
    say(f"Counterfactual do(age=90wk) on the {int(source.sum())} 4wk cells ...")
    t0 = time.perf_counter()
    tl.counterfactual(sdata, model, DEMO_DO, cells=source, table_key=DEMO_TABLE,
                      steps=steps, seed=seed)
    cf_s = time.perf_counter() - t0
    key = tl._counterfactual._table_name(DEMO_DO)
    cf = sdata.tables[key]
    acc = counterfactual_accuracy(sdata, cf, DEMO_DO, source)

    # write everything once all is computed
    out.mkdir(parents=True, exist_ok=True)
    zarr_path, model_path = out / "brain_aging.zarr", out / "model"
    with quiet_zarr_warnings():
        sdata.write(zarr_path, overwrite=True)
    model.save(model_path, overwrite=True)
    files = {"zarr": str(zarr_path), "model": str(model_path),
             **_save_figures(out, "", model, cf, sdata,
                             _overlay_genes(acc, list(cf.var_names), N_OVERLAYS),
                             lambda: Figure(figsize=(15, 4.2)))}
    files["metrics"] = str(out / "metrics.json")

    metrics = _jsonable({
        "settings": {"n_cells": n_cells, "n_genes": n_genes, "epochs": epochs,
                     "max_time": max_time, "seed": seed, "steps": steps,
                     "device": str(model.device), "concepts": DEMO_CONCEPTS,
                     "dag": [f"{a}->{b}" for a, b in DEMO_DAG]},
        "training": {"time_s": train_s, "epochs": len(model.history),
                     "stop_reason": model.train_params.get("stop_reason"),
                     "val_acc": val_acc},
        "counterfactual": {"do": DEMO_DO, "cells": DEMO_SOURCE, "table": key,
                           "n_cells": int(cf.n_obs), "time_s": cf_s},
        "accuracy": acc,
        "files": files,
    })
    metrics["simulated_time_s"] = time.perf_counter() - t_all
    if real:
        say("")
        metrics["real_data"] = run_real_demo(out, epochs=real_epochs, max_time=real_max_time,
                                             seed=seed, device=device, log=log)
    metrics["total_time_s"] = time.perf_counter() - t_all
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


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
