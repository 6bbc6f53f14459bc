"""Brain-aging trends from 2 mice per age: CausCell counterfactuals vs the direct test.

Simulates the built-in tissue with several mice per age, keeps 2 mice per age
(``tl.subsample_donors``, highest cell counts), trains CausCell on them with the demo's
settings, runs ``tl.age_trends`` 4wk -> 24wk / 90wk and ``tl.direct_trends`` (the same test on
the observed 90wk vs 4wk cells of the same 2+2 mice), and scores both at 90wk against the
planted truth (``datasets.PLANTED_AGE_EFFECTS`` and the simulator's broad ageing programme).
The direct test on all mice is reported as the "big data" reference. Writes
``benchmarks/results/trends-brain_aging-<date>.json``.

    OMP_NUM_THREADS=1 python -m benchmarks.trends --threads 1

Scoring, per cell type (marginal rows, domain == "all") at 90wk:
- planted: k of n planted (gene, cell type) effects called significant with the right sign;
- broad: genes of the broad ageing programme (``var['gene_class'] == 'age_broad'``) shift in
  every cell type, so calls on them are true discoveries; counted separately, not in k of n;
- false discoveries: significant calls on any other (gene, cell type), split by gene class
  (marker genes can move in a counterfactual when do(age) moves the cell-type token, which is
  how the true DAG age -> cell_type works, but no planted trend is there);
- wrong direction: significant calls on a true effect with the wrong sign.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time

import numpy as np
import pandas as pd

from ._results import write_result

TARGET = "90wk"
SWEEP = (0.05, 0.1, 0.2, 0.3, 0.5)


def truth_table(table) -> tuple[set, dict]:
    """Planted (gene, type) -> sign, and broad gene -> sign, from the simulator."""
    from napari_causcell.datasets import PLANTED_AGE_EFFECTS
    from napari_causcell.datasets._brain_aging import _draw_noise

    planted = {(r.gene, r.cell_type): (1 if r.direction == "up" else -1)
               for r in PLANTED_AGE_EFFECTS.itertuples()}
    p = table.uns["brain_aging"]
    noise = _draw_noise(p["n_cells"], p["n_genes"], p["n_mice_per_age"], p["seed"])
    broad = {g: int(np.sign(noise.age_eff[0, 0, j]))
             for j, g in enumerate(noise.genes) if noise.gene_class[j] == "age_broad"}
    return planted, broad


def score(result: pd.DataFrame, planted: dict, broad: dict, gene_class: dict,
          min_effect: float, alpha: float = 0.05) -> dict:
    """k of n planted, broad recovered, false discoveries at the cell-type level."""
    res = result[(result["target"] == TARGET) & (result["cell_type"] != "all")]
    if "domain" in res:
        res = res[res["domain"] == "all"]
    sig = (res["padj"] < alpha) & (res["mean_change"].abs() >= min_effect)
    sign = np.sign(res["mean_change"]).astype(int)
    out = {"min_effect": min_effect, "k": 0, "n": 0, "planted_missed": [],
           "planted_wrong_direction": 0, "broad_recovered": 0, "broad_n": 0,
           "broad_wrong_direction": 0, "false_discoveries": 0, "fd_by_class": {},
           "n_significant": int(sig.sum()), "n_tests": int(len(res))}
    tested = set(zip(res["gene"], res["cell_type"]))
    for (g, t), s in planted.items():
        if (g, t) not in tested:
            continue
        out["n"] += 1
        row = (res["gene"] == g) & (res["cell_type"] == t)
        hit = bool(sig[row].iloc[0])
        if hit and int(sign[row].iloc[0]) == s:
            out["k"] += 1
        else:
            out["planted_missed"].append(f"{g}/{t}")
            out["planted_wrong_direction"] += int(hit)
    for g, t, is_sig, sg in zip(res["gene"], res["cell_type"], sig, sign):
        if (g, t) in planted:
            continue
        if g in broad:
            out["broad_n"] += 1
            out["broad_recovered"] += int(is_sig and sg == broad[g])
            out["broad_wrong_direction"] += int(is_sig and sg != broad[g])
        elif is_sig:
            out["false_discoveries"] += 1
            c = gene_class.get(g, "?")
            out["fd_by_class"][c] = out["fd_by_class"].get(c, 0) + 1
    return out


def lilrb4a_by_domain(result: pd.DataFrame) -> dict:
    res = result[(result["target"] == TARGET) & (result["gene"] == "Lilrb4a")
                 & (result["cell_type"] == "Microglia")]
    return {str(d): {"mean_change": float(c), "padj": float(p), "n": int(n)}
            for d, c, p, n in zip(res["domain"], res["mean_change"], res["padj"],
                                  res["n_source"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-cells", type=int, default=12000)
    p.add_argument("--mice-per-age", type=int, default=4)
    p.add_argument("--per-age", type=int, default=2)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--max-time", type=float, default=150.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--test", default="t-test")
    p.add_argument("--model", default=None, help="load this saved model instead of training")
    p.add_argument("--save-model", default=None, help="save the trained model here")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from napari_causcell import CausCell, tl
    from napari_causcell._demo import DEMO_CONCEPTS, DEMO_DAG
    from napari_causcell.datasets import brain_aging
    from napari_causcell.tl._trends import DEFAULT_MIN_EFFECT

    sdata = brain_aging(args.n_cells, 200, n_mice_per_age=args.mice_per_age, seed=args.seed)
    full = sdata.tables["table"]
    small = tl.subsample_donors(full, per_age=args.per_age, by="cell count", which="highest")
    planted, broad = truth_table(full)
    gene_class = dict(zip(full.var_names, full.var["gene_class"]))

    t0 = time.perf_counter()
    if args.model:
        model = CausCell.load(args.model, data=small)
        train = {"loaded": args.model}
    else:
        model = CausCell(small, DEMO_CONCEPTS, DEMO_DAG, max_genes=2000, seed=args.seed)
        model.train(args.epochs, max_time=args.max_time)
        last = model.history[-1]
        train = {"time_s": time.perf_counter() - t0, "epochs": len(model.history),
                 "stop_reason": model.train_params.get("stop_reason"),
                 "val_acc": {c: float(last.get(f"val_acc_{c}", np.nan))
                             for c in model.concepts}}
        if args.save_model:
            model.save(args.save_model, overwrite=True)
    print(json.dumps({"training": train}), flush=True)

    kw = dict(concept="age", source="4wk", groupby=["cell_type", "domain"], test=args.test,
              genes=list(model.genes))
    t0 = time.perf_counter()
    cc = tl.age_trends(model, small, targets=["24wk", "90wk"], steps=args.steps,
                       seed=args.seed, store_counterfactuals=False, **kw)
    cf_s = time.perf_counter() - t0
    direct = tl.direct_trends(small, targets=["90wk"], **kw)
    direct_full = tl.direct_trends(full, targets=["90wk"], **kw)

    runs = {"causcell_2_per_age": cc, "direct_2_per_age": direct,
            f"direct_all_{args.mice_per_age}_per_age": direct_full}
    scores = {name: [score(r, planted, broad, gene_class, m) for m in SWEEP]
              for name, r in runs.items()}
    result = {
        "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "settings": {**{k: v for k, v in vars(args).items() if k not in ("out",)},
                     "n_genes": 200, "concepts": DEMO_CONCEPTS,
                     "dag": [f"{a}->{b}" for a, b in DEMO_DAG], "target": TARGET,
                     "default_min_effect": DEFAULT_MIN_EFFECT, "alpha": 0.05,
                     "donors": small.uns["causcell_subsample"]["donors"],
                     "n_cells_small": int(small.n_obs), "n_cells_full": int(full.n_obs)},
        "training": train,
        "counterfactual_time_s": cf_s,
        "scores": scores,
        "lilrb4a_microglia_by_domain": {n: lilrb4a_by_domain(r) for n, r in runs.items()},
        "planted_changes": {
            n: r[(r["target"] == TARGET) & (r["domain"] == "all")
                 & r[["gene", "cell_type"]].apply(tuple, axis=1).isin(planted)][
                ["gene", "cell_type", "mean_change", "padj"]].to_dict("records")
            for n, r in runs.items()},
    }
    for name, rows in scores.items():
        for s in rows:
            print(f"{name:<24} min_effect {s['min_effect']:<5} planted {s['k']:>2}/{s['n']}"
                  f"  broad {s['broad_recovered']}/{s['broad_n']}"
                  f"  false disc. {s['false_discoveries']:>3} {s['fd_by_class']}"
                  f"  wrong dir {s['planted_wrong_direction'] + s['broad_wrong_direction']}",
                  flush=True)
    write_result(args.out, f"trends-brain_aging-{result['date']}", result)


if __name__ == "__main__":
    main()
