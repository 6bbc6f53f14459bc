"""Why CausCell trails the peers in the side-by-side table: training budget and sampling.

On the built-in tissue (ID split, seed 0, same cells as ``python -m benchmarks run``),
trains CausCell for each budget and reports per-cell r of ONE generated sample per cell
(what the table scores), r of the MEAN of ``--samples`` samples per cell (what the peers'
decoders output: an expected expression, free of sampling noise), and counterfactual
accuracy against the truth. Writes ``benchmarks/results/budget-<date>.json``.

    python -m benchmarks.budget --threads 1 --budgets 60 300
"""

from __future__ import annotations

import argparse
import datetime as dt
import json

import numpy as np

from ._results import write_result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--budgets", type=float, nargs="+", default=[60.0, 300.0])
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--cells", type=int, default=4000)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from napari_causcell import metrics as M

    from . import compare

    ds = compare.load_dataset("brain_aging", n_cells=args.cells)
    sp = compare.split(ds, "id", 0)
    x_all = compare.lognorm(ds.adata)
    truth = compare.truth_for(ds, sp, x_all)
    real = x_all[sp["test"]]
    result = {"date": dt.date.today().isoformat(), "machine": compare.machine(args.threads),
              "cells": args.cells, "samples": args.samples, "runs": []}
    for budget in args.budgets:
        out, model = compare.run_causcell(ds, sp, 0, budget, ds.dag)
        s = compare.score(ds, sp, out, x_all, truth, 0)
        test = ds.adata[sp["test"]]
        gens = [model.reconstruct(test, steps=50, seed=k).X for k in range(args.samples)]
        mean_gen = np.mean(gens, axis=0)
        row = {"budget_s": budget, **out.speed,
               "per_cell_r_one_sample": s["per_cell_r"],
               "per_cell_r_mean_of_samples": float(np.nanmean(M.per_cell_pearson(real,
                                                                                 mean_gen))),
               "mse_one_sample": s["mse"],
               "mse_mean_of_samples": float(M.per_cell_mse(real, mean_gen).mean()),
               "cf_r": s["cf_r"], "cf_auroc": s["cf_auroc"], "leakage": s["leakage"]}
        result["runs"].append(row)
        print(json.dumps(row), flush=True)
    write_result(args.out, f"budget-{result['date']}", result)
    return result


if __name__ == "__main__":
    main()
