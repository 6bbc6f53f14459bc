"""Ablation of the counterfactual levers (issue #13): CausCell variants on the same splits.

``python -m benchmarks.ablation [--quick] [--variants a b ...] [--datasets ...]`` trains each
variant of :data:`VARIANTS` on every dataset x setting x seed of :mod:`benchmarks.compare`
(same splits, same wall-clock budget, one torch thread), scores the counterfactuals with
:func:`benchmarks.compare.score_cf` next to the foils, and writes
``benchmarks/results/ablation-<date>.json`` plus a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import numpy as np
import pandas as pd

#: name -> (constructor kwargs, train kwargs, counterfactual kwargs); each runs with today's
#: defaults (EMA 0.995, unseen="average") unless it sets them. Result files keep the names a
#: run used (e.g. "ema 0.995" in ablation-A.json, the default since)
OLD = {"select": "recon+concept"}
TOK_DDIM = {"propagate": "tokens", "sampler": "ddim"}
RAW = {"standardize": False}
KL1 = {"weights": {"kl": 1.0}}
VARIANTS: dict[str, tuple[dict, dict, dict]] = {
    "landed (kl 1e-3, raw, select recon+concept, ddim, tokens)": (RAW, OLD, TOK_DDIM),
    "kl 1e-3": ({}, {"weights": {"kl": 1e-3}}, {}),
    "kl 0.2": ({}, {"weights": {"kl": 0.2}}, {}),
    "kl 1 (default)": ({}, KL1, {}),
    "IND (no DAG)": ({"dag": []}, KL1, {}),
    "kl 1, hold type": ({}, KL1, {"hold": "type"}),  # hold=[the dataset's cell-type concept]
    "kl 1, tokens only": ({}, KL1, {"propagate": "tokens"}),
    "kl 1, ddim samples": ({}, KL1, {"sampler": "ddim"}),
    "kl 1, raw expression": (RAW, KL1, {}),
    "kl 1, select recon+concept": ({}, {**KL1, **OLD}, {}),
    "kl 1, anchor=False": ({"anchor": False}, KL1, {}),
    "kl 1, adversary 5": ({}, {"weights": {"kl": 1.0, "adversary": 5.0}}, {}),
    "kl 1, u_shuffle 0.5": ({"u_shuffle": 0.5}, KL1, {}),
    "kl 1, unseen=decoder": ({}, KL1, {"unseen": "decoder"}),
    "kl 1, unseen=blend": ({}, KL1, {"unseen": "blend"}),
    "no weight averaging (ema 0)": ({}, {**KL1, "ema": 0.0}, {}),
    "ema 0.999": ({}, {**KL1, "ema": 0.999}, {}),
    "t_power 0.25": ({"t_power": 0.25}, KL1, {}),
    "width 256": ({"width": 256}, KL1, {}),
    "depth 3": ({"depth": 3}, KL1, {}),
    "u_residual": ({"u_residual": True}, KL1, {}),  # 'u combo-free, u kl 0.1' in ablation-Y
    "patience 60, up to 200 epochs": ({}, {**KL1, "patience": 60, "max_epochs": 200}, {}),
}

SETS = {"brain_aging": ["id", "ood"], "merfish": ["ood"], "starmap": ["ood"]}


def run(variants: list[str], datasets: list[str], seeds: int, budget: float, cells: int | None,
        log=print, settings: list[str] | None = None, full: bool = False,
        model_seeds: int = 1, first_seed: int = 0) -> list[dict]:
    from . import compare

    rows = []
    for name in datasets:
        ds = compare.load_dataset(name, n_cells=cells)
        x_all = compare.lognorm(ds.adata)
        sets = SETS[compare.base_name(name)]
        for setting in [s for s in sets if settings is None or s in settings]:
            for seed in range(first_seed, seeds):
                sp = compare.split(ds, setting, seed)
                truth = compare.truth_for(ds, sp, x_all)
                if truth is None:
                    continue
                outs = {(m, None): o for m, o in compare.run_foils(ds, sp, x_all).items()}
                for k in range(model_seeds):  # weights seed + 100 k on the same split
                    m_seed = seed + 100 * k
                    trained: dict[str, tuple] = {}
                    for v in variants:
                        mk, tk, ck = VARIANTS[v]
                        key = json.dumps([mk, tk], sort_keys=True)
                        if key not in trained:
                            dag = mk.get("dag", ds.dag)  # "dag": [] is the IND ablation
                            kw = {k_: val for k_, val in mk.items() if k_ != "dag"}
                            trained[key] = compare.train_causcell(ds, sp, m_seed, budget, dag,
                                                                  kw, tk)
                        model, speed = trained[key]
                        out = compare.causcell_outputs(model, ds, sp, seed, ck, recon=full)
                        out.speed = speed
                        outs[(v, m_seed)] = out
                for (method, m_seed), out in outs.items():
                    sc = (compare.score(ds, sp, out, x_all, truth, seed) if full
                          and out.embeddings else compare.score_cf(truth, out, seed))
                    rows.append({"dataset": ds.name, "setting": setting, "seed": seed,
                                 "method": method, **sc,
                                 "epochs": out.speed.get("epochs", np.nan),
                                 **({"model_seed": m_seed} if model_seeds > 1 else {})})
                    log(f"{ds.name} {setting} {seed} {method}: "
                        + " ".join(f"{k}={v:.3f}" for k, v in sc.items()
                                   if isinstance(v, float)))
    return rows


def table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    keys = ["cf_r", "cf_mse", "cf_auroc", "planted_slope", "responsive_slope", "planted_signs",
            "cf_switched", "cf_r_matched", "latent_leakage", "per_cell_r"]
    keys = [k for k in keys if k in df]
    g = df.groupby(["dataset", "setting", "method"], sort=False)[keys]
    mean, sd = g.mean(), g.std()
    return mean.round(3).astype(str) + " ± " + sd.round(3).astype(str)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.ablation")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--datasets", nargs="+", default=["brain_aging", "merfish", "starmap"],
                   help="brain_aging@S: the simulated tissue with data seed S")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0,
                   help="start at this seed (seeds first_seed..seeds-1; runs are seeded, so "
                        "a run can be continued)")
    p.add_argument("--budget", type=float, default=60.0)
    p.add_argument("--epochs", type=int, default=None,
                   help="fixed epochs instead of the wall-clock budget (reproducible on a "
                        "loaded machine)")
    p.add_argument("--cells", type=int, default=None)
    p.add_argument("--settings", nargs="+", default=None, choices=["id", "ood"],
                   help="only these settings (default: every setting of each dataset)")
    p.add_argument("--full", action="store_true",
                   help="also score embeddings and reconstructions (u leakage, per-cell r)")
    p.add_argument("--model-seeds", type=int, default=1,
                   help="train each variant with this many weight seeds (seed + 100 k) per "
                        "split: MERFISH moves up to 0.2 r with the weight seed alone")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--tag", default=None, help="file name (default ablation-<date>)")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    if a.epochs:
        for mk, tk, ck in VARIANTS.values():
            tk.setdefault("max_epochs", a.epochs)  # a variant's own max_epochs is kept
            tk["max_time"] = None
    rows = run(a.variants, a.datasets, a.seeds, a.budget, a.cells, settings=a.settings,
               full=a.full, model_seeds=a.model_seeds, first_seed=a.first_seed)
    from ._results import write_result
    from .compare import machine

    date = dt.date.today().isoformat()
    res = {"date": date, "machine": machine(a.threads), "args": vars(a), "rows": rows}
    write_result(a.out, a.tag or f"ablation-{date}", res)
    print(table(rows).to_markdown())


if __name__ == "__main__":
    main()
