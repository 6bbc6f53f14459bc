"""Calibration of :func:`napari_causcell.tl.change_intervals` (issue #26) on the benchmark tasks.

``python -m benchmarks.intervals train --tasks brain_aging:id merfish:ood ... --models 3``
trains ``--models`` CausCell models (weight seeds ``split seed + 100 k``) per task on the
split of :func:`benchmarks.compare.split` and saves them under ``--work``;
``python -m benchmarks.intervals score`` loads them and scores each interval method of
:data:`METHODS` against the truth (the simulator's counterfactual, or on real data the
held-out cells' observed change with its own sampling error): coverage of the 90 %
intervals, mean width against mean |true change|, Spearman(reliability, -|error|) and the
gain in r from keeping the more reliable half of the groups. One torch thread.
``report --parts TAG ...`` pools the (group, gene) pairs of score runs made in parallel.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import compare

WORK = Path("benchmarks/results/intervals-models")
#: name -> (number of models, change_intervals keyword arguments)
METHODS = {
    "ensemble only (uncalibrated)": (None, {"calibrate": False}),
    "one model, calibrated": (1, {}),
    "ensemble, calibrated": (None, {}),
}


def _task(name: str) -> tuple[compare.Dataset, str, dict]:
    dataset, _, setting = name.partition(":")
    ds = compare.load_dataset(dataset)
    sp = compare.split(ds, setting or "ood", seed=0)
    return ds, setting or "ood", sp


def train(tasks: list[str], n_models: int, epochs: int, work: Path, first: int = 0) -> None:
    """Train and save the models of every task (model k of every task before model k+1)."""
    for k in range(first, n_models):
        for name in tasks:
            path = work / f"{name.replace(':', '-')}-{k}"
            if path.exists():
                continue
            ds, _, sp = _task(name)
            model, speed = compare.train_causcell(
                ds, sp, 100 * k, 0.0, ds.dag, {}, {"max_epochs": epochs, "max_time": None})
            model.save(path)
            print(f"{name} model {k}: {speed['epochs']} epochs, "
                  f"{speed['train_seconds']:.0f} s -> {path}", flush=True)


def _groups(ds, sp) -> list[dict]:
    """Per counterfactual task: do, source rows, grouping column, truth per group
    ``(groups, genes)`` and its sampling standard error (0 for the simulator's truth)."""
    x_all = compare.lognorm(ds.adata)
    truth = compare.truth_for(ds, sp, x_all)
    out = []
    if "group_rows" not in truth:  # simulator: one task, groups = source cell types
        g = sp["cf_groups"][0]
        out.append({"do": g["do"], "rows": g["source"], "groupby": ds.type_key,
                    "labels": truth["types"], "true": truth["matrix"],
                    "se": np.zeros_like(truth["matrix"])})
        return out
    for g, true in zip(sp["cf_groups"], truth["matrix"]):
        xt, xs = x_all[g["target"]], x_all[g["source"]]
        se = np.sqrt(xt.var(0, ddof=1) / len(xt) + xs.var(0, ddof=1) / len(xs))
        out.append({"do": g["do"], "rows": g["source"], "groupby": ds.ood_pair[1],
                    "labels": [g["label"].split("|")[0]], "true": true[None],
                    "se": se[None]})
    return out



def score_task(name: str, work: Path, n_models: int, level: float = 0.9,
               methods: list[str] | None = None) -> list[dict]:
    """Every method's intervals for one task, one row per (method, group, gene)."""
    from napari_causcell import CausCell
    from napari_causcell.tl._intervals import change_intervals

    ds, setting, sp = _task(name)
    models = [CausCell.load(work / f"{name.replace(':', '-')}-{k}") for k in range(n_models)]
    rows_all = np.union1d(sp["train"], sp["cf"])
    data = ds.adata[rows_all]
    z = float(stats.norm.ppf(0.5 + level / 2))
    out = []
    for g in _groups(ds, sp):
        cells = np.isin(rows_all, g["rows"])
        for method, (m, kw) in METHODS.items():
            if methods and method not in methods:
                continue
            iv = change_intervals(models[:m] if m else models, data, g["do"], cells=cells,
                                  groupby=g["groupby"], level=level, **kw)
            iv = iv[iv["group"].isin(g["labels"])]
            gi = {lab: i for i, lab in enumerate(g["labels"])}
            gj = {gene: j for j, gene in enumerate(ds.adata.var_names)}
            r = iv["group"].map(gi).to_numpy(), iv["gene"].map(gj).to_numpy()
            true, se = g["true"][r], g["se"][r]
            half = (iv["upper"] - iv["lower"]).to_numpy() / 2
            err = iv["change"].to_numpy() - true
            cover = np.abs(err) <= z * np.sqrt((half / z) ** 2 + se**2)
            out.append(pd.DataFrame({
                "task": name, "setting": setting, "method": method,
                "group": iv["group"].to_numpy(), "gene": iv["gene"].to_numpy(),
                "change": iv["change"].to_numpy(), "true": true, "se_true": se,
                "half": half, "covered": cover, "reliability": iv["reliability"].to_numpy(),
                "extrapolated": iv["extrapolated"].to_numpy(),
                "c": iv.attrs["calibration"].get("c", np.nan)}))
        print(f"{name}: {g['do']} on {cells.sum()} cells scored", flush=True)
    return out


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (task, method): coverage, mean width vs mean |true change|, Spearman, r."""
    def one(d):
        return pd.Series({
            "pairs": len(d), "coverage": d["covered"].mean(),
            "mean width": (2 * d["half"]).mean(), "mean |true|": d["true"].abs().mean(),
            "spearman(rel, -|err|)": stats.spearmanr(
                d["reliability"], -(d["change"] - d["true"]).abs())[0],
            "r": np.corrcoef(d["change"], d["true"])[0, 1],
            "extrapolated share": d["extrapolated"].mean()})
    return df.groupby(["method", "task"], sort=False).apply(one)


def reliable_half(df: pd.DataFrame) -> pd.DataFrame:
    """Per method, pooled over tasks: r of all (group, gene) pairs and of the pairs of the
    more reliable half of the groups (a group's reliability: the mean over its genes), and
    the gain an oracle would get (the half of the groups with the smaller true errors)."""
    rows = []
    for method, d in df.groupby("method", sort=False):
        err = (d["change"] - d["true"]).abs()
        r_all = np.corrcoef(d["change"], d["true"])[0, 1]
        rho = stats.spearmanr(d["reliability"], -err)[0]
        r_top = _r_top_half(d, d["reliability"])
        rows.append({"method": method, "r all": r_all, "r reliable half": r_top,
                     "gain": r_top - r_all, "oracle gain": _r_top_half(d, -err) - r_all,
                     "spearman pooled": rho, "coverage pooled": d["covered"].mean()})
    return pd.DataFrame(rows)


def _r_top_half(d: pd.DataFrame, score: pd.Series) -> float:
    """r of the pairs of the half of the groups with the higher mean ``score`` (the oracle:
    ``score = -|error|``, the groups the truth says are best)."""
    per_group = score.groupby([d["task"], d["group"]]).transform("mean")
    top = per_group >= per_group.drop_duplicates().median()
    return float(np.corrcoef(d.loc[top, "change"], d.loc[top, "true"])[0, 1])


def prior_check(df: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Per task: the error scale that makes its intervals exact (oracle ``c``: mean excess
    squared error over the true change's own sampling variance, per unit of
    :func:`~napari_causcell.tl._interval_error.shape`), and the coverage and width of the
    interval ``z * sqrt(c0 * shape)`` with ``c0`` the median of the *other* tasks' oracle
    ``c`` (how a floor measured on the benchmark carries to a data set it has not seen)."""
    from napari_causcell.tl._interval_error import shape

    z = float(stats.norm.ppf(0.5 + level / 2))
    parts = {task: d.assign(shape=_shape_rows(d, shape))
             for task, d in df.groupby("task", sort=False)}
    oracle = {t: float(np.mean((d["change"] - d["true"]) ** 2 - d["se_true"] ** 2)
                       / d["shape"].mean()) for t, d in parts.items()}
    rows = []
    for task, d in parts.items():
        c0 = float(np.median([c for t, c in oracle.items() if t != task]))
        half = z * np.sqrt(c0 * d["shape"])
        err = (d["change"] - d["true"]).abs()
        rows.append({"task": task, "oracle c": oracle[task], "c0 (other tasks)": c0,
                     "coverage": float((err <= np.sqrt(half**2 + (z * d["se_true"]) ** 2))
                                       .mean()),
                     "mean width": float(2 * half.mean()),
                     "mean |true|": float(d["true"].abs().mean())})
    return pd.DataFrame(rows)


def _shape_rows(d: pd.DataFrame, shape) -> np.ndarray:
    """:func:`shape` of each row's change within its group."""
    out = np.empty(len(d))
    for _, idx in d.groupby("group").indices.items():
        out[idx] = shape(d["change"].to_numpy()[idx][None])[0]
    return out


def score_main(a) -> None:
    if a.phase == "report":  # pool the pairs of earlier score runs
        df = pd.concat([pd.read_csv(Path(a.work) / f"pairs-{t}.csv.gz") for t in a.parts])
    else:
        parts = []
        for t in a.tasks:  # each task's pairs are kept as soon as scored
            parts += score_task(t, a.work, a.models, methods=a.methods)
            df = pd.concat(parts)
            df.to_csv(Path(a.work) / f"pairs-{a.tag or dt.date.today()}.csv.gz", index=False)
    report(a, df)


def report(a, df: pd.DataFrame) -> None:
    """Print the summary and the pooled reliable-half table; record them with the machine."""
    from ._results import write_result
    from .compare import machine

    summ, half, prior = summary(df), reliable_half(df), prior_check(df)
    print(summ.round(3).to_markdown())
    print(half.round(3).to_markdown(index=False))
    print(prior.round(3).to_markdown(index=False))
    date = dt.date.today().isoformat()
    res = {"date": date, "machine": machine(a.threads), "args": {k: str(v) for k, v in
                                                                   vars(a).items()},
           "summary": json.loads(summ.reset_index().to_json(orient="records")),
           "reliable_half": half.to_dict(orient="records"),
           "prior_check": prior.to_dict(orient="records")}
    write_result(a.out, a.tag or f"intervals-{date}", res)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.intervals")
    p.add_argument("phase", choices=["train", "score", "report"])
    p.add_argument("--parts", nargs="+", default=[],
                   help="report: tags of score runs whose pairs to pool")
    p.add_argument("--tasks", nargs="+", default=[
        "brain_aging:id", "brain_aging@1:id", "brain_aging:ood", "brain_aging@1:ood",
        "starmap:ood", "merfish:ood"])
    p.add_argument("--models", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=None, choices=list(METHODS),
                   help="score: these methods only (default: all)")
    p.add_argument("--first-model", type=int, default=0)
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--work", type=Path, default=WORK)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--tag", default=None)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    if a.phase == "train":
        train(a.tasks, a.models, a.epochs, a.work, a.first_model)
        return
    score_main(a)


if __name__ == "__main__":
    main()
