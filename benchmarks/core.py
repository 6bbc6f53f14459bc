"""Core speed/quality benchmark on the STARmap mPFC data (or the built-in tissue).

Trains CausCell for fixed wall-clock budgets with a fixed torch thread count and reports,
on the held-out 20 % of cells: per-cell Pearson r of ONE generated sample per cell (no
averaging) and concept accuracy; generation time for 1,000 cells with DDIM-50 and the
full 1000-step DDPM; peak memory per epoch. Writes ``benchmarks/results/core-<date>.json``.

    python -m benchmarks.core --threads 1 --budgets 60 600
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from ._results import write_result

STARMAP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "starmap_mpfc.h5ad"


def per_cell_r(gen: np.ndarray, real: np.ndarray) -> float:
    from napari_causcell.metrics import per_cell_pearson

    return float(np.nanmean(per_cell_pearson(real, gen)))


def load(dataset: str):
    import anndata as ad

    if dataset == "starmap":
        if not STARMAP.exists():
            raise SystemExit(f"{STARMAP} not found; use --dataset brain_aging")
        return ad.read_h5ad(STARMAP), ["slice", "domain", "celltype"], [
            ("slice", "celltype"), ("domain", "celltype")]
    from napari_causcell.datasets import brain_aging

    table = brain_aging(6000, 200, seed=0).tables["table"]
    return table, ["age", "domain", "cell_type"], [("age", "cell_type"), ("domain", "cell_type")]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def evaluate(model, adata, concepts) -> dict:
    val = adata[model._val_index]
    rec = model.reconstruct(val, steps=50, seed=0)
    pred = model.predict_concepts(val)
    out = {"per_cell_r": per_cell_r(rec.X, rec.layers["factual"])}
    for c in concepts:
        out[f"acc_{c}"] = float((pred[c].astype(str).values == val.obs[c].astype(str).values).mean())
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--budgets", type=float, nargs="+", default=[60.0, 600.0])
    p.add_argument("--dataset", choices=["starmap", "brain_aging"], default="starmap")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from napari_causcell import CausCell

    adata, concepts, dag = load(args.dataset)
    result = {
        "date": dt.date.today().isoformat(), "dataset": args.dataset,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "n_cells": adata.n_obs, "n_genes": adata.n_vars, "runs": [],
    }
    model = None
    for budget in args.budgets:
        model = CausCell(adata, concepts, dag=dag, seed=args.seed)
        mem = []
        model.train(max_epochs=100_000, max_time=budget, validation_fraction=0.2,
                    early_stopping=False, callbacks=lambda pr: mem.append(rss_mb()))
        h = model.history
        run = {"budget_s": budget, "epochs": len(h), "steps": h[-1]["step"],
               "cells_per_s": model.train_params["n_train"] * len(h) / h[-1]["time"],
               "peak_rss_mb_first_last_epoch": [mem[0], mem[-1]],
               **evaluate(model, adata, concepts)}
        result["runs"].append(run)
        print(json.dumps(run), flush=True)
    # sampler speed and quality on 1,000 held-out cells (repeated when fewer)
    val = adata[model._val_index]
    idx = np.resize(np.arange(val.n_obs), 1000)
    cells = val[idx]
    for sampler, steps in (("ddim", 50), ("ddim", 20), ("ddpm", 1000)):
        t0 = time.perf_counter()
        rec = model.reconstruct(cells, sampler=sampler, steps=steps, seed=0)
        sec = time.perf_counter() - t0
        row = {"sampler": sampler, "steps": steps, "seconds_1000_cells": sec,
               "per_cell_r": per_cell_r(rec.X, rec.layers["factual"])}
        result.setdefault("samplers", []).append(row)
        print(json.dumps(row), flush=True)
    result["parameters"] = sum(p.numel() for p in model.module.parameters())
    write_result(args.out, f"core-{args.dataset}-{result['date']}", result)
    return result


if __name__ == "__main__":
    main()
