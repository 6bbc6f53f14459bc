"""Brain-aging trends from 2 mice per age: error control of tl.age_trends vs the direct test.

Simulates the built-in tissue with 4 mice per age, keeps 2 mice per age
(``tl.subsample_donors``, highest cell counts), trains an ensemble of CausCell models on them
(the demo's settings, one per seed), and runs on the same cells:

- ``tl.age_trends`` with the ensemble (units of replication: donors and model seeds; the
  default ``null="auto"``, i.e. the empirical null), with the same ensemble and the
  theoretical null, and with each single model (units: donors only);
- ``tl.direct_trends`` with donors as the units (pseudobulk; also with an empirical null), and
  with cells as the units (the pseudo-replicated test this package used to run);
- ``tl.direct_trends`` with donors on all 4 mice per age (the "big data" reference).

Scored at 90wk per cell type (4wk -> 90wk, ``groupby=["cell_type"]``) against the simulator's
truth: the 15 planted (gene, cell type) effects, the broad ageing programme (39 genes shifted
in every cell type; true effects, counted apart), and every other (gene, cell type) pair as a
null. Reported per method at BH q <= ``--alpha`` (default 0.1): planted recovered, broad
recovered, false discoveries and their proportion (FDP = false / all significant calls),
wrong-direction calls; and the calibration: the share of null pairs with p <= level and with
q <= level, for several nominal levels. Writes ``benchmarks/results/trends-brain_aging-<date>.json``
and, with ``--plot``, a calibration figure.

    OMP_NUM_THREADS=1 python -m benchmarks.trends --threads 1 --seeds 5 --max-time 140
    # or reuse saved models: --models DIR (DIR/seed0 ... DIR/seed4), --save-models DIR
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ._results import write_result

TARGET = "90wk"
LEVELS = (0.001, 0.01, 0.05, 0.1, 0.2)


def truth_table(table) -> tuple[dict, dict]:
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


def _rows(result: pd.DataFrame) -> pd.DataFrame:
    res = result[(result["target"] == TARGET) & (result["cell_type"] != "all")]
    if "domain" in res:
        res = res[res["domain"] == "all"]
    return res


def score(result: pd.DataFrame, planted: dict, broad: dict, gene_class: dict,
          min_effect: float, alpha: float = 0.1) -> dict:
    """Planted/broad recovered, false discoveries, FDP and wrong directions per cell type."""
    res = _rows(result)
    sig = (res["padj"].fillna(1.0) <= alpha) & (res["mean_change"].abs() >= min_effect)
    sign = np.sign(res["mean_change"]).astype(int)
    out = {"alpha": alpha, "min_effect": min_effect, "k": 0, "n": 0, "planted_missed": [],
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
    out["wrong_direction"] = out["planted_wrong_direction"] + out["broad_wrong_direction"]
    out["fdp"] = out["false_discoveries"] / max(out["n_significant"], 1)
    return out


def calibration(result: pd.DataFrame, planted: dict, broad: dict) -> dict:
    """Share of null (gene, cell type) pairs with p <= level and with q <= level."""
    res = _rows(result)
    null = np.array([(g, t) not in planted and g not in broad
                     for g, t in zip(res["gene"], res["cell_type"])])
    p = res["pvalue"].to_numpy(float)[null]
    q = res["padj"].to_numpy(float)[null]
    p, q = np.where(np.isfinite(p), p, 1.0), np.where(np.isfinite(q), q, 1.0)
    return {"n_null": int(null.sum()),
            "p_le": {str(a): float((p <= a).mean()) for a in LEVELS},
            "q_le": {str(a): float((q <= a).mean()) for a in LEVELS},
            "null_p_sorted": np.sort(p).round(6).tolist()}


def plot(cal: dict, path: Path, per_age: int = 2) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.2), layout="constrained")
    lim = 1e-4
    for name, c in cal.items():
        p = np.maximum(np.asarray(c["null_p_sorted"]), lim)
        expected = (np.arange(1, len(p) + 1) - 0.5) / len(p)
        ax.plot(-np.log10(expected), -np.log10(p), label=name, lw=1.2)
    top = -np.log10(lim)
    ax.plot([0, top], [0, top], color="grey", ls="--", lw=0.8)
    ax.set_xlabel("expected -log10 p (uniform)")
    ax.set_ylabel("observed -log10 p, null (gene, cell type) pairs")
    ax.set_title(f"Calibration on null pairs, 90wk vs 4wk, {per_age} mice/age", fontsize=9)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=130)
    print(f"wrote {path}")


def _jackknife_models(args, small) -> list:
    """One model per donor of ``small`` left out: loaded from ``--models DIR/without_<donor>``
    when there, else trained (``tl.train_ensemble(n_models=0, jackknife="mouse")``)."""
    from napari_causcell import CausCell, tl
    from napari_causcell._demo import DEMO_CONCEPTS, DEMO_DAG

    donors = [d for ds in small.uns["causcell_subsample"]["donors"].values() for d in ds]
    saved = [Path(args.models) / f"without_{d}" for d in donors] if args.models else []
    if saved and all(p.exists() for p in saved):
        return [CausCell.load(p, data=small) for p in saved]
    t0 = time.perf_counter()
    models = tl.train_ensemble(small, DEMO_CONCEPTS, DEMO_DAG, n_models=0, seed=0,
                               max_epochs=args.epochs, max_time=args.max_time,
                               jackknife="mouse", max_genes=2000)
    print(json.dumps({"jackknife_models": len(models),
                      "time_s": round(time.perf_counter() - t0)}), flush=True)
    if args.save_models:
        for m in models:
            m.save(Path(args.save_models) / f"without_{m.train_params['left_out']['donor']}",
                   overwrite=True)
    return models


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-cells", type=int, default=12000)
    p.add_argument("--mice-per-age", type=int, default=4)
    p.add_argument("--per-age", type=int, default=2)
    p.add_argument("--seeds", type=int, default=5, help="models in the ensemble")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--max-time", type=float, default=140.0, help="seconds per model")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--models", default=None, help="load DIR/seed<i> instead of training")
    p.add_argument("--save-models", default=None, help="save the trained models as DIR/seed<i>")
    p.add_argument("--plot", default=None, help="write the calibration figure here (PNG)")
    p.add_argument("--jackknife", action="store_true",
                   help="also train (or load DIR/without_<donor>) one model per donor left "
                        "out, and test with the donor jackknife")
    p.add_argument("--training-log", default=None,
                   help="with --models: JSON lines of the run that trained them (recorded)")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from napari_causcell import CausCell, tl
    from napari_causcell._demo import DEMO_CONCEPTS, DEMO_DAG
    from napari_causcell.datasets import brain_aging

    sdata = brain_aging(args.n_cells, 200, n_mice_per_age=args.mice_per_age,
                        seed=args.data_seed)
    full = sdata.tables["table"]
    small = tl.subsample_donors(full, per_age=args.per_age, by="cell count", which="highest")
    planted, broad = truth_table(full)
    gene_class = dict(zip(full.var_names, full.var["gene_class"]))

    models, training = [], []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        if args.models:
            model = CausCell.load(Path(args.models) / f"seed{seed}", data=small)
            training.append({"seed": seed, "loaded": str(Path(args.models) / f"seed{seed}")})
        else:
            model = CausCell(small, DEMO_CONCEPTS, DEMO_DAG, max_genes=2000, seed=seed)
            model.train(args.epochs, max_time=args.max_time)
            last = model.history[-1]
            training.append({"seed": seed, "time_s": time.perf_counter() - t0,
                             "epochs": len(model.history),
                             "val_acc": {c: float(last.get(f"val_acc_{c}", np.nan))
                                         for c in model.concepts}})
            if args.save_models:
                model.save(Path(args.save_models) / f"seed{seed}", overwrite=True)
        models.append(model)
        print(json.dumps(training[-1]), flush=True)

    jk_models = _jackknife_models(args, small) if args.jackknife else []
    genes = list(models[0].genes)
    kw = dict(concept="age", source="4wk", targets=[TARGET], groupby=["cell_type"],
              genes=genes, alpha=args.alpha)
    runs, timing = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one-donor notes of tiny groups
        t0 = time.perf_counter()
        tl.age_trends(small, models, store_counterfactuals=False, seed=0, **kw)  # in place
        runs[f"causcell_ensemble_{args.seeds}"] = small.uns["causcell_trends"]["results"]
        timing["ensemble_s"] = time.perf_counter() - t0
        if jk_models:
            t0 = time.perf_counter()
            runs[f"causcell_ensemble_{args.seeds}_jackknife"] = tl.age_trends(
                small, models + jk_models, seed=0, copy=True, **kw)
            timing["ensemble_jackknife_s"] = time.perf_counter() - t0
        runs[f"causcell_ensemble_{args.seeds}_theoretical_null"] = tl.age_trends(
            small, models, seed=0, copy=True, null="theoretical", **kw)
        for i, m in enumerate(models):
            runs[f"causcell_seed{i}"] = tl.age_trends(small, m, seed=0, copy=True, **kw)
        tl.direct_trends(small, unit="donors", **kw)  # in place
        runs[f"direct_donors_{args.per_age}_per_age"] = small.uns["causcell_direct_trends"][
            "results"]
        runs[f"direct_donors_{args.per_age}_per_age_empirical_null"] = tl.direct_trends(
            small, unit="donors", copy=True, null="empirical", **kw)
        runs[f"direct_cells_{args.per_age}_per_age"] = tl.direct_trends(small, unit="cells",
                                                                       copy=True, **kw)
        runs[f"direct_donors_all_{args.mice_per_age}_per_age"] = tl.direct_trends(
            full, unit="donors", copy=True, **kw)

    scores = {name: {str(me): score(r, planted, broad, gene_class, me, args.alpha)
                     for me in (0.0, 0.1)} for name, r in runs.items()}
    cal = {name: calibration(r, planted, broad) for name, r in runs.items()
           if not name.startswith("causcell_seed") or name == "causcell_seed0"}
    singles = [scores[f"causcell_seed{i}"]["0.1"] for i in range(args.seeds)]
    result = {
        "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "settings": {**{k: v for k, v in vars(args).items() if k not in ("out",)},
                     "n_genes": 200, "concepts": DEMO_CONCEPTS,
                     "dag": [f"{a}->{b}" for a, b in DEMO_DAG], "target": TARGET,
                     "groupby": ["cell_type"],
                     "donors": small.uns["causcell_subsample"]["donors"],
                     "n_cells_small": int(small.n_obs), "n_cells_full": int(full.n_obs),
                     "null": {k: v for k, v in small.uns["causcell_trends"]["params"].items()
                              if k.startswith("null")},
                     "prior_df": {
                         "ensemble": small.uns["causcell_trends"]["params"]["prior_df"],
                         "direct_donors": small.uns["causcell_direct_trends"]["params"][
                             "prior_df"]}},
        "training": training,
        "training_log": ([json.loads(line) for line in Path(args.training_log).read_text()
                          .splitlines() if line.startswith('{"')]
                         if args.training_log else None),
        "timing": timing,
        "scores": scores,
        "single_models_mean": {k: float(np.mean([s[k] for s in singles]))
                               for k in ("k", "false_discoveries", "fdp", "wrong_direction",
                                         "broad_recovered")},
        "calibration": {n: {k: v for k, v in c.items() if k != "null_p_sorted"}
                        for n, c in cal.items()},
        "planted_changes": {
            n: _rows(r)[_rows(r)[["gene", "cell_type"]].apply(tuple, axis=1).isin(planted)][
                ["gene", "cell_type", "mean_change", "ci_low", "ci_high", "padj", "unit"]
            ].to_dict("records")
            for n, r in runs.items() if not n.startswith("causcell_seed")},
    }
    for name, by_me in scores.items():
        s = by_me["0.1"]
        print(f"{name:<28} q<={args.alpha} |chg|>=0.1: planted {s['k']:>2}/{s['n']}"
              f"  broad {s['broad_recovered']}/{s['broad_n']}  false {s['false_discoveries']:>3}"
              f" of {s['n_significant']:>3} (FDP {s['fdp']:.2f})  wrong dir {s['wrong_direction']}",
              flush=True)
    for name, c in result["calibration"].items():
        print(f"{name:<28} null share p<=a {c['p_le']}  q<=a {c['q_le']}", flush=True)
    if args.plot:
        plot({n: c for n, c in cal.items()}, Path(args.plot), args.per_age)
    write_result(args.out, f"trends-brain_aging-{result['date']}", result)


if __name__ == "__main__":
    main()
