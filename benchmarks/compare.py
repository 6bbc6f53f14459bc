"""CausCell vs its ablation, naive foils and peer models on the same tasks (issue #5).

For each dataset x setting (ID: random cell split; OOD: whole concept combinations held out
of training) x seed, every method is trained on the training cells within the same wall-clock
budget and scored by :mod:`napari_causcell.metrics` on cells it never saw:

- disentanglement: linear probes of each concept embedding for every label (own-label
  accuracy / macro-F1, leakage to the other labels, leakage of the shared latent ``u``),
  Ward-cluster NMI / ARI of each concept embedding against its own label;
- reconstruction: per-cell Pearson r and MSE, Ward-cluster NMI / ARI of real vs generated
  cells (8 clusters), top-50 Wilcoxon marker overlap per concept combination;
- counterfactuals (built-in tissue, exact truth from ``brain_aging_truth``): r of predicted vs
  true mean change per cell type, AUROC of the truly responsive (type, gene) pairs, energy
  distance of predicted vs true counterfactual cells.

All expression is compared in log1p(counts / total * 1e4) over the dataset's genes.
Peers run in their own venvs (:mod:`benchmarks.peers`) on the second core while CausCell
trains on the first.
"""

from __future__ import annotations

import concurrent.futures as cf_futures
import json
import os
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STARMAP = SHARED / "starmap_mpfc.h5ad"
MERFISH = SHARED / "merfish_brain_aging_sun2024.h5ad"
#: MERFISH OOD: seed s holds out the old cells of type s % 3; do(age=old) on its young cells
MERFISH_HELD = ("Oligodendrocyte", "Astrocyte", "Microglia")
#: known ageing genes checked on the MERFISH OOD counterfactual (type, gene): all up with age
MERFISH_MARKERS = (("Oligodendrocyte", "C4b"), ("Astrocyte", "Gfap"), ("Microglia", "B2m"),
                   ("Microglia", "H2-K1"))
CF_THRESHOLD = 0.25  # |true mean change| (log units) that makes a (type, gene) pair responsive
MIN_CELLS = 10


@dataclass
class Dataset:
    """One benchmark dataset: raw counts, concepts, the DAG and optional counterfactual truth."""

    name: str
    adata: Any
    concepts: list[str]
    dag: list[tuple[str, str]]
    cf_do: dict[str, str] | None = None  # intervention scored against truth
    cf_source: dict[str, str] | None = None  # cells it is applied to
    truth: Callable | None = None  # truth(adata_subset, do) -> counts AnnData
    type_key: str = "cell_type"
    ood_pair: tuple[str, str] = ("age", "cell_type")  # combos of these two are held out
    ood_value: str | None = "90wk"  # first concept's value held out (None: any)
    batch_key: str | None = None  # scIB batch (a concept the models condition on)
    held_types: tuple[str, ...] | None = None  # OOD: seed s holds out type s % len (with
    # ood_value) instead of two random combinations
    real_cf: bool = False  # OOD counterfactuals scored against the real held-out cells
    markers: tuple[tuple[str, str], ...] = ()  # (type, gene) whose predicted change is recorded
    settings: tuple[str, ...] = ("id", "ood")  # settings this dataset is run in
    match_key: str | None = None  # real OOD truth also scored within levels of this concept
    notes: list[str] = field(default_factory=list)


# -- data -------------------------------------------------------------------------------------
def _clean(adata, concepts):
    import anndata as ad
    from scipy import sparse

    x = adata.layers["counts"] if "counts" in adata.layers else adata.X
    x = sparse.csr_matrix(x, dtype=np.float32)
    obs = pd.DataFrame({c: pd.Categorical(adata.obs[c].astype(str)) for c in concepts},
                       index=adata.obs_names.astype(str))
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=adata.var_names.astype(str)))


def train_mask(sp: dict, n: int) -> np.ndarray:
    """Boolean mask of a split's training cells among ``n`` cells."""
    tr = np.zeros(n, bool)
    tr[sp["train"]] = True
    return tr


def base_name(name: str) -> str:
    """The dataset a name refers to, without a ``@<data seed>`` suffix."""
    return name.partition("@")[0]


def load_dataset(name: str, quick: bool = False, h5ad: str | None = None,
                 concepts: list[str] | None = None, dag: list[str] | None = None,
                 n_cells: int | None = None) -> Dataset:
    """``brain_aging`` (built-in, with truth; ``brain_aging@S`` simulates it with data seed
    ``S``, default 0), ``starmap``, ``merfish`` (../shared/data) or ``h5ad``."""
    import anndata as ad

    if base_name(name) == "brain_aging":
        from napari_causcell.datasets import brain_aging, brain_aging_truth

        n = n_cells or (3000 if quick else 4000)
        data_seed = name.partition("@")[2] or "0"
        if not data_seed.isdigit():
            raise SystemExit(f"{name!r}: the data seed after '@' must be an integer")
        data_seed = int(data_seed)
        table = brain_aging(n, 200, n_mice_per_age=2, seed=data_seed).tables["table"]
        cs = ["age", "domain", "cell_type"]
        return Dataset(name, _clean(table, cs), cs,
                       [("age", "cell_type"), ("domain", "cell_type")],
                       cf_do={"age": "90wk"}, cf_source={"age": "4wk"},
                       truth=lambda sub, do, table=table: brain_aging_truth(
                           table, do, cells=table.obs_names.isin(sub.obs_names)))
    if name == "starmap":
        if not STARMAP.exists():
            raise FileNotFoundError(f"{STARMAP} not found")
        cs = ["slice", "domain", "celltype"]
        return Dataset("starmap", _clean(ad.read_h5ad(STARMAP), cs), cs,
                       [("slice", "celltype"), ("domain", "celltype")],
                       type_key="celltype", ood_pair=("domain", "celltype"), ood_value=None,
                       batch_key="slice", real_cf=True)
    if name == "merfish":
        if not MERFISH.exists():
            raise FileNotFoundError(f"{MERFISH} not found")
        cs = ["age_group", "region", "celltype"]
        return Dataset("merfish_aging", _clean(ad.read_h5ad(MERFISH), cs), cs,
                       [("age_group", "celltype"), ("region", "celltype")],
                       cf_do={"age_group": "old"}, cf_source={"age_group": "young"},
                       type_key="celltype", ood_pair=("age_group", "celltype"),
                       ood_value="old", held_types=MERFISH_HELD, real_cf=True,
                       markers=MERFISH_MARKERS, settings=("ood",), match_key="region")
    if name == "h5ad":
        if not h5ad or not concepts:
            raise SystemExit("--h5ad needs --concepts (and optionally --dag a:b ...)")
        edges = [tuple(e.split(":")) for e in (dag or [])]
        a = ad.read_h5ad(h5ad)
        missing = [c for c in concepts if c not in a.obs]
        if missing:
            raise SystemExit(f"{h5ad} has no obs column(s) {missing}")
        return Dataset(Path(h5ad).stem, _clean(a, concepts), list(concepts), edges,
                       type_key=concepts[-1], ood_pair=(concepts[0], concepts[-1]),
                       ood_value=None)
    raise SystemExit(f"unknown dataset {name!r}")


def lognorm(adata) -> np.ndarray:
    """log1p(counts / total * 1e4) over all genes of ``adata`` (dense float32)."""
    from napari_causcell.data import expression

    return expression(adata, list(adata.var_names)).toarray()


def split(ds: Dataset, setting: str, seed: int, test_fraction: float = 0.2) -> dict:
    """Train / test / counterfactual cells for one setting and seed.

    ID: a random ``test_fraction`` of cells is the test set (probes and reconstruction).
    OOD: two combinations of ``ds.ood_pair`` (chosen by the seed among those with enough
    cells) are removed from training; the test set is them plus a random ``test_fraction``
    of the rest (probes need every label), and reconstruction is scored on the held-out
    combinations only (``recon_pos``: their positions in the test set). Counterfactual cells
    are the source-labelled test cells (ID) or all source-labelled cells of the held-out
    types (OOD: the target combination was never seen, the source cells may have been).
    """
    obs = ds.adata.obs
    n = len(obs)
    rng = np.random.default_rng(seed)
    rest_test = rng.random(n) < test_fraction
    held = np.zeros(n, bool)
    combos: list[dict[str, str]] = []
    if setting == "ood":
        a, b = ds.ood_pair
        if ds.held_types is not None:  # one named type per seed, in turn
            combos = [{a: str(ds.ood_value), b: ds.held_types[seed % len(ds.held_types)]}]
        else:
            combos = _pick_combos(ds, obs, rng)
        for c in combos:
            held |= (obs[a].astype(str) == c[a]).to_numpy() & (
                obs[b].astype(str) == c[b]).to_numpy()
        test = held | rest_test  # probes need every label; reconstruction is scored on held
        train = ~held & ~rest_test
    else:
        test = rest_test
        train = ~rest_test
    groups = _cf_groups(ds, obs, setting, combos, held, rest_test)
    test_idx = np.flatnonzero(test)
    recon = held[test_idx] if setting == "ood" else np.ones(len(test_idx), bool)
    cf = np.concatenate([g["source"] for g in groups]) if groups else np.zeros(0, np.int64)
    return {"train": np.flatnonzero(train), "test": test_idx, "cf": cf, "cf_groups": groups,
            "recon_pos": np.flatnonzero(recon), "held_out": combos}


def _pick_combos(ds: Dataset, obs: pd.DataFrame, rng) -> list[dict[str, str]]:
    """Two (a, b) combinations with enough cells, chosen by the seed."""
    a, b = ds.ood_pair
    counts = obs.groupby([a, b], observed=True).size()
    ok = counts[counts >= 3 * MIN_CELLS]
    if ds.ood_value is not None:
        ok = ok[ok.index.get_level_values(0) == ds.ood_value]
    if ds.cf_source is not None:  # the held type needs source cells to intervene on
        src_counts = obs[obs[a] == ds.cf_source[a]].groupby(b, observed=True).size()
        ok = ok[[src_counts.get(t, 0) >= 3 * MIN_CELLS for _, t in ok.index]]
    if len(ok) < 2:
        raise SystemExit(f"{ds.name}: fewer than two ({a}, {b}) combinations to hold out")
    pick = rng.choice(len(ok), 2, replace=False)
    return [{a: str(ok.index[i][0]), b: str(ok.index[i][1])} for i in pick]


def _cf_groups(ds: Dataset, obs: pd.DataFrame, setting: str, combos: list[dict],
               held: np.ndarray, rest_test: np.ndarray) -> list[dict]:
    """Counterfactual tasks: ``do``, source cells and (real data) the real target cells.

    Simulated truth (``ds.truth``): one task, do(``cf_do``) on the source-labelled test cells
    (ID) or on all source-labelled cells of the held-out types (OOD: the target combination was
    never seen, the source cells may have been). Real data (``ds.real_cf``, OOD only): one task
    per held-out combination (a=va, b=vb): do(a=va) on the b=vb cells with the source label
    (``cf_source``, or any other value of a), scored against the held-out real cells.
    """
    col = {c: obs[c].astype(str).to_numpy() for c in obs.columns}
    if ds.truth is not None and ds.cf_do is not None:
        key, src = next(iter(ds.cf_source.items()))
        cf = col[key] == src
        if setting == "ood":
            cf &= np.isin(col[ds.ood_pair[1]], [c[ds.ood_pair[1]] for c in combos])
        else:
            cf &= rest_test
        return [{"do": dict(ds.cf_do), "source": np.flatnonzero(cf), "target": None,
                 "label": "all"}] if cf.any() else []
    if not (ds.real_cf and setting == "ood"):
        return []
    a, b = ds.ood_pair
    groups = []
    for c in combos:
        src = (col[b] == c[b]) & (col[a] != c[a])
        if ds.cf_source is not None:
            key, val = next(iter(ds.cf_source.items()))
            src &= col[key] == val
        tgt = held & (col[a] == c[a]) & (col[b] == c[b])
        if src.sum() >= MIN_CELLS and tgt.sum() >= MIN_CELLS:
            groups.append({"do": {a: c[a]}, "source": np.flatnonzero(src),
                           "target": np.flatnonzero(tgt), "label": f"{c[b]}|{c[a]}"})
    return groups


# -- methods ----------------------------------------------------------------------------------
@dataclass
class Output:
    """What a method produced for the scored cells (log-normalised space)."""

    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    recon: np.ndarray | None = None  # test cells, generated from their own labels
    cf: np.ndarray | None = None  # counterfactual cells
    cf_delta: np.ndarray | None = None  # paired predicted change per cf cell
    cf_labels: np.ndarray | None = None  # counterfactual label of the type concept per cf cell
    speed: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def time_to_quality(history: list[dict], share: float = 0.95) -> float:
    """Seconds until the validation loss that picks the kept weights (``train(select=...)``,
    default reconstruction) had made ``share`` of its total improvement."""
    from napari_causcell.train import validation_loss

    vals = [validation_loss(h, prefix="val_") for h in history]
    vals = [np.nan if v is None else v for v in vals]
    if not history or not np.isfinite(vals).all():
        return float("nan")
    target = vals[0] - share * (vals[0] - min(vals))
    return float(next(h["time"] for h, v in zip(history, vals) if v <= target))


def run_causcell(ds: Dataset, sp: dict, seed: int, budget: float, dag) -> tuple[Output, Any]:
    """Train CausCell (library defaults) on the training cells within ``budget`` seconds and
    produce its outputs."""
    model, speed = train_causcell(ds, sp, seed, budget, dag)
    out = causcell_outputs(model, ds, sp, seed)
    out.speed = speed
    return out, model


def train_causcell(ds: Dataset, sp: dict, seed: int, budget: float, dag,
                   model_kwargs: dict | None = None, train_kwargs: dict | None = None):
    """A CausCell model trained on the split's training cells, and its speed figures."""
    from napari_causcell import CausCell

    train = ds.adata[sp["train"]].copy()
    model = CausCell(train, ds.concepts, dag=dag, seed=seed, **(model_kwargs or {}))
    t0 = time.perf_counter()
    model.train(**{"max_epochs": 100_000, "max_time": budget, "validation_fraction": 0.1,
                   **(train_kwargs or {})})
    sec = time.perf_counter() - t0
    h = model.history
    return model, {
        "train_seconds": sec, "epochs": len(h),
        "cells_per_s": model.train_params["n_train"] * len(h) / h[-1]["time"],
        "time_to_95pct_s": time_to_quality(h),
    }


def causcell_outputs(model, ds: Dataset, sp: dict, seed: int, cf_kwargs: dict | None = None,
                     recon: bool = True) -> Output:
    """Embeddings and reconstructions of the test cells, counterfactuals of every task."""
    out = Output()
    test = ds.adata[sp["test"]]
    kw = {"seed": seed, "steps": 50, **(cf_kwargs or {})}
    if kw.get("hold") == "type":  # the ablation's "hold type": this dataset's type concept
        kw["hold"] = [ds.type_key]
    if recon:
        emb = model.concept_embeddings(test, exogenous=True, use_labels=False, write=False)
        out.embeddings = {("latent" if k == "u" else k): v for k, v in emb.items()}
        out.recon = model.reconstruct(test, seed=seed, steps=kw["steps"],
                                      sampler=kw.get("sampler", "mean")).X
    cfs, deltas, labels = [], [], []
    for g in sp["cf_groups"]:
        res = model.counterfactual(ds.adata[g["source"]], do=g["do"], **kw)
        cfs.append(np.asarray(res.X))
        deltas.append(np.asarray(res.layers["delta"]))
        labels.append(res.obs[ds.type_key].astype(str).to_numpy())
    if cfs:
        out.cf, out.cf_delta = np.concatenate(cfs), np.concatenate(deltas)
        out.cf_labels = np.concatenate(labels)
    return out


def run_foils(ds: Dataset, sp: dict, x_all: np.ndarray) -> dict[str, Output]:
    """No change, and the per-type mean shift between target and source training cells
    (where a type has no target-labelled training cells: the shift pooled over the training
    cells of the other types, the honest OOD foil of issue 26; the held-out types' source
    cells would otherwise sit on one side of the pooled difference only)."""
    if not len(sp["cf"]):
        return {}
    if ds.real_cf:
        return _pooled_foils(ds, sp, x_all)
    obs = ds.adata.obs
    key, src = next(iter(ds.cf_source.items()))
    tgt = ds.cf_do[key]
    tr = train_mask(sp, len(obs))
    lab = obs[key].astype(str).to_numpy()
    typ = obs[ds.type_key].astype(str).to_numpy()
    lacking = [t for t in np.unique(typ[sp["cf"]])
               if min((tr & (lab == v) & (typ == t)).sum() for v in (src, tgt)) < MIN_CELLS]
    rest = tr & ~np.isin(typ, lacking)
    pooled = x_all[rest & (lab == tgt)].mean(0) - x_all[rest & (lab == src)].mean(0)
    shift = np.zeros((len(sp["cf"]), x_all.shape[1]), np.float32)
    n_pooled = 0
    for t in np.unique(typ[sp["cf"]]):
        a, b = tr & (lab == tgt) & (typ == t), tr & (lab == src) & (typ == t)
        rows = typ[sp["cf"]] == t
        if t not in lacking:
            shift[rows] = x_all[a].mean(0) - x_all[b].mean(0)
        else:
            shift[rows], n_pooled = pooled, n_pooled + 1
    fact = x_all[sp["cf"]]
    notes = [f"{n_pooled} type(s) had no {tgt} training cells: shift pooled over the other "
             "types used"] if n_pooled else []
    return {"no change": Output(cf=fact, cf_delta=np.zeros_like(fact)),
            "mean shift": Output(cf=fact + shift, cf_delta=shift, notes=notes)}


def _pooled_foils(ds: Dataset, sp: dict, x_all: np.ndarray) -> dict[str, Output]:
    """Real-data OOD foils: no change, and the pooled shift of the intervened concept (the
    mean of training cells with the target value minus that of training cells with the cell's
    own value), both over the training cells of the other types: the held-out type has no
    target-valued training cells, so its source cells would weigh on one side only."""
    obs = ds.adata.obs
    tr = train_mask(sp, len(obs))
    typ = obs[ds.type_key].astype(str).to_numpy()
    shifts = []
    for g in sp["cf_groups"]:
        (key, val), = g["do"].items()
        lab = obs[key].astype(str).to_numpy()
        rest = tr & ~np.isin(typ, np.unique(typ[g["source"]]))
        target_mean = x_all[rest & (lab == val)].mean(0)
        own = {v: x_all[rest & (lab == v)].mean(0) for v in np.unique(lab[g["source"]])}
        shifts.append(np.stack([target_mean - own[v] for v in lab[g["source"]]]))
    shift = np.concatenate(shifts).astype(np.float32)
    fact = x_all[sp["cf"]]
    out = {"no change": Output(cf=fact, cf_delta=np.zeros_like(fact)),
           "mean shift": Output(cf=fact + shift, cf_delta=shift,
                                notes=["shift pooled over the other types (the held-out "
                                       "type has no target cells)"])}
    if ds.match_key:
        within = _shift_within(ds, sp, x_all, tr, shift)
        out[f"{ds.match_key} shift"] = Output(cf=fact + within, cf_delta=within, notes=[
            f"pooled shift within the cell's {ds.match_key} (pooled where it has too few)"])
    return out


def _shift_within(ds: Dataset, sp: dict, x_all: np.ndarray, tr: np.ndarray,
                  pooled: np.ndarray) -> np.ndarray:
    """The pooled shift computed within each level of ``ds.match_key`` (the foil for the
    region-matched truth); the overall pooled shift where a level has too few cells."""
    obs = ds.adata.obs
    lev = obs[ds.match_key].astype(str).to_numpy()
    out, start = pooled.copy(), 0
    for g in sp["cf_groups"]:
        (key, val), = g["do"].items()
        lab = obs[key].astype(str).to_numpy()
        src = np.asarray(g["source"])
        for level in np.unique(lev[src]):
            a = tr & (lab == val) & (lev == level)
            for own in np.unique(lab[src]):
                b = tr & (lab == own) & (lev == level)
                rows = np.flatnonzero((lev[src] == level) & (lab[src] == own))
                if a.sum() >= MIN_CELLS and b.sum() >= MIN_CELLS:
                    out[start + rows] = x_all[a].mean(0) - x_all[b].mean(0)
        start += len(src)
    return out


def peer_task(ds: Dataset, sp: dict, seed: int, budget: float, work: Path) -> tuple[dict, dict]:
    """Write train / query .h5ad files once per split; the query is test cells then cf cells."""
    work.mkdir(parents=True, exist_ok=True)
    q_idx = np.r_[sp["test"], sp["cf"]]
    with warnings.catch_warnings():  # ID cf cells are test cells too: names repeat
        warnings.filterwarnings("ignore", message=".*names are not unique")
        query = ds.adata[q_idx].copy()
    query.obs_names_make_unique()
    ds.adata[sp["train"]].copy().write_h5ad(work / "train.h5ad")
    query.write_h5ad(work / "query.h5ad")  # obs: the concept columns only (see _clean)
    n_test = len(sp["test"])
    cfs, start = [], n_test
    for i, g in enumerate(sp["cf_groups"]):
        cfs.append({"name": f"cf{i}", "do": g["do"],
                    "cells": list(range(start, start + len(g["source"])))})
        start += len(g["source"])
    task = {"train_h5ad": str(work / "train.h5ad"), "query_h5ad": str(work / "query.h5ad"),
            "concepts": ds.concepts, "counterfactuals": cfs, "seed": seed, "max_epochs": 1000,
            "max_time": float(budget)}
    return task, {"n_test": n_test}


def run_peers(peers: list[str], task: dict, work: Path, n_test: int,
              log: Callable[[str], Any], stop: threading.Event | None = None,
              ) -> dict[str, Output]:
    from . import peers as peer_mod

    outs = {}
    for peer in peers:
        if stop is not None and stop.is_set():
            break
        d = work / peer
        t = dict(task, peer=peer, out_dir=str(d))
        try:
            res = peer_mod.run_peer(peer, t, d, timeout=task["max_time"] * 4 + 300)
        except Exception as err:  # a failing peer is reported, not fatal
            log(f"  {peer} failed: {str(err)[-400:]}")
            outs[peer] = Output(notes=[f"failed: {str(err)[-300:]}"])
            continue
        r = res["result"]
        emb = {k: np.asarray(v)[:n_test] for k, v in res["embeddings"].items()}
        o = Output(embeddings=emb, recon=np.asarray(_x(res["reconstruction"]))[:n_test],
                   speed={"train_seconds": r.get("train_seconds"), "epochs": r.get("epochs"),
                          "cells_per_s": r.get("cells_per_s")},
                   notes=list(r.get("notes", [])) + [f"version {r.get('package_version')}"])
        names = [c["name"] for c in task["counterfactuals"]]
        if names and all(n in res["counterfactuals"] for n in names):
            parts = [res["counterfactuals"][n] for n in names]
            o.cf = np.concatenate([_x(c) for c in parts])
            o.cf_delta = o.cf - np.concatenate([_x(c, "reconstructed") for c in parts])
        outs[peer] = o
        log(f"  {peer}: {r.get('epochs')} epochs in {r.get('train_seconds', 0):.0f} s")
    return outs


def _x(a, layer=None) -> np.ndarray:
    m = a.layers[layer] if layer else a.X
    return np.asarray(m.toarray() if hasattr(m, "toarray") else m, dtype=np.float32)


# -- scoring ---------------------------------------------------------------------------------
def score(ds: Dataset, sp: dict, out: Output, x_all: np.ndarray, truth: dict | None,
          seed: int) -> dict[str, float]:
    from napari_causcell import metrics as M

    s: dict[str, float] = {}
    obs = ds.adata.obs
    test_obs = obs.iloc[sp["test"]]
    labels = test_obs[ds.concepts].astype(str)
    if out.embeddings:
        # probes need >= 2 cells per class: drop test cells of labels rarer than that
        keep = np.ones(len(labels), bool)
        for c in labels:
            counts = labels[c].value_counts()
            keep &= labels[c].map(counts).to_numpy() >= 2
        emb = {k: np.asarray(v)[keep] for k, v in out.embeddings.items()}
        t = M.probe(emb, labels[keep], folds=5, seed=seed, max_cells=3000)
        if any(t["own"]):
            summ = M.leakage_summary(t[t["embedding"] != "latent"])
            s.update({"own_accuracy": summ["own_accuracy"], "own_f1": summ["own_f1"],
                      "leakage": summ["leakage"]})
            cc = [M.cluster_consistency(emb[c], labels[keep][c], seed=seed)
                  for c in ds.concepts if c in out.embeddings]
            s["emb_nmi"] = float(np.mean([c["nmi"] for c in cc]))
            s["emb_ari"] = float(np.mean([c["ari"] for c in cc]))
        if "latent" in out.embeddings:
            s["latent_leakage"] = float(t[t["embedding"] == "latent"]["above_chance"].mean())
    if out.recon is not None:
        pos = sp["recon_pos"]
        real, gen = x_all[sp["test"][pos]], np.asarray(out.recon)[pos]
        s["per_cell_r"] = float(np.nanmean(M.per_cell_pearson(real, gen)))
        s["mse"] = float(M.per_cell_mse(real, gen).mean())
        ca = M.cluster_agreement(real, gen, n_clusters=8, seed=seed)
        s["cluster_nmi"], s["cluster_ari"] = ca["nmi"], ca["ari"]
        groups = labels.iloc[pos].agg("|".join, axis=1).to_numpy()
        try:
            s["marker_overlap"] = M.marker_overlap(real, gen, groups, n_top=50,
                                                   min_cells=MIN_CELLS)["mean"]
        except ValueError:  # OOD test sets of two combinations may leave < 2 groups
            s["marker_overlap"] = float("nan")
    if truth is not None and out.cf_delta is not None:
        s.update(score_cf(truth, out, seed))
    return s


def score_cf(truth: dict, out: Output, seed: int) -> dict[str, float]:
    """Counterfactual accuracy: r / MSE / AUROC of the mean change per group (cell type for
    simulated truth, held-out combination for real data), and where known the planted
    effects' signs and slope, the share of cells whose type switched and the counterfactual
    composition's total-variation distance to the true one."""
    from napari_causcell import metrics as M

    s: dict[str, float] = {}
    if "group_rows" in truth:  # real data: one row per held-out combination
        pred = np.stack([out.cf_delta[r].mean(0) for r in truth["group_rows"]])
    else:
        pred = M.group_mean_change(out.cf_delta, truth["src_type"],
                                   order=truth["types"]).to_numpy()
    true = truth["matrix"]
    s["cf_r"] = M.change_correlation(pred, true)
    s["cf_mse"] = float(np.mean((pred - true) ** 2))
    s["cf_auroc"] = M.responsive_auroc(pred, true, threshold=CF_THRESHOLD)
    if "cells" in truth:
        s["cf_energy"] = M.energy_distance(out.cf, truth["cells"], seed=seed)
    if truth.get("planted"):
        rows, cols = map(list, zip(*truth["planted"]))
        p, t = pred[rows, cols], true[rows, cols]
        s["planted_signs"] = float(np.sum(np.sign(p) == np.sign(t)))
        s["planted_slope"] = float(np.polyfit(t, p, 1)[0])
        resp = np.abs(true) >= CF_THRESHOLD  # every responsive (type, gene), shared ones too
        s["responsive_slope"] = float(np.polyfit(true[resp], pred[resp], 1)[0])
    if "matched_rows" in truth:  # truth within regions (see _matched_truth)
        ok = [i for i, r in enumerate(truth["matched_rows"]) if len(r)]
        pm = np.stack([out.cf_delta[truth["matched_rows"][i]].mean(0) for i in ok])
        tm = truth["matrix_matched"][ok]
        s["cf_r_matched"] = M.change_correlation(pm, tm)
        s["cf_mse_matched"] = float(np.mean((pm - tm) ** 2))
    for name, (i, j) in truth.get("markers", {}).items():
        s[f"marker:{name}"] = float(pred[i, j])
    if out.cf_labels is not None and "src_type" in truth:
        s["cf_switched"] = float(np.mean(out.cf_labels != truth["src_type"]))
        if "cf_type" in truth:
            kinds = np.union1d(out.cf_labels, truth["cf_type"])
            pa = pd.Series(out.cf_labels).value_counts(normalize=True).reindex(kinds, fill_value=0)
            pb = pd.Series(truth["cf_type"]).value_counts(normalize=True).reindex(kinds,
                                                                                  fill_value=0)
            s["cf_composition_tv"] = float(0.5 * np.abs(pa - pb).sum())
    return s


def truth_for(ds: Dataset, sp: dict, x_all: np.ndarray) -> dict | None:
    """What the counterfactuals are scored against: the simulator's exact counterfactual
    cells (``ds.truth``), or on real data the held-out cells of each combination."""
    if not len(sp["cf"]):
        return None
    if ds.truth is None:
        return _real_truth(ds, sp, x_all)
    from napari_causcell import metrics as M

    sub = ds.adata[sp["cf"]]
    tr = ds.truth(sub, ds.cf_do)
    tr = tr[sub.obs_names]
    true_x = lognorm(tr)
    delta = true_x - x_all[sp["cf"]]
    src = sub.obs[ds.type_key].astype(str).to_numpy()
    counts = pd.Series(src).value_counts()
    order = [t for t in ds.adata.obs[ds.type_key].cat.categories if counts.get(t, 0) >= MIN_CELLS]
    mat = M.group_mean_change(delta, src, order=order)
    genes = list(ds.adata.var_names)
    planted = []
    if base_name(ds.name) == "brain_aging":
        from napari_causcell.datasets import PLANTED_AGE_EFFECTS

        planted = [(order.index(r.cell_type), genes.index(r.gene))
                   for r in PLANTED_AGE_EFFECTS.itertuples() if r.cell_type in order]
    return {"types": order, "src_type": src, "matrix": mat.to_numpy(), "cells": true_x,
            "cf_type": tr.obs[ds.type_key].astype(str).to_numpy(), "planted": planted,
            "switched": float(np.mean(tr.obs[ds.type_key].astype(str).to_numpy() != src)),
            "n_responsive": int((np.abs(mat.to_numpy()) >= CF_THRESHOLD).sum())}


def _real_truth(ds: Dataset, sp: dict, x_all: np.ndarray) -> dict | None:
    """Observed change per held-out combination: mean of its real cells minus the mean of the
    source cells the intervention is applied to."""
    rows, mats, start = [], [], 0
    for g in sp["cf_groups"]:
        rows.append(np.arange(start, start + len(g["source"])))
        start += len(g["source"])
        mats.append(x_all[g["target"]].mean(0) - x_all[g["source"]].mean(0))
    mat = np.stack(mats)
    labels = [g["label"] for g in sp["cf_groups"]]
    matched = _matched_truth(ds, sp, x_all) if ds.match_key else {}
    genes = list(ds.adata.var_names)
    markers = {}
    for typ, gene in ds.markers:
        hit = [i for i, g in enumerate(sp["cf_groups"]) if g["label"].split("|")[0] == typ]
        if hit and gene in genes:
            markers[f"{typ}:{gene}"] = (hit[0], genes.index(gene))
    return {"types": labels, "group_rows": rows, "matrix": mat, "markers": markers,
            "observed_markers": {k: float(mat[i, j]) for k, (i, j) in markers.items()},
            "n_responsive": int((np.abs(mat) >= CF_THRESHOLD).sum()), **matched}


def _matched_truth(ds: Dataset, sp: dict, x_all: np.ndarray) -> dict:
    """Observed change within levels of ``ds.match_key`` (e.g. region): per group, the
    source-count-weighted mean over levels with both source and target cells of (target mean
    - source mean) in that level, and the source rows in those levels. A counterfactual that
    holds the region fixed is compared with old and young cells of the same regions, so the
    two sections' different anatomy drops out of the truth."""
    lev = ds.adata.obs[ds.match_key].astype(str).to_numpy()
    rows, mats, start = [], [], 0
    for g in sp["cf_groups"]:
        src, tgt = np.asarray(g["source"]), np.asarray(g["target"])
        keep = np.zeros(len(src), bool)
        change = np.zeros(x_all.shape[1])
        for level in np.unique(lev[src]):
            s_in, t_in = lev[src] == level, tgt[lev[tgt] == level]
            if s_in.sum() >= MIN_CELLS and len(t_in) >= MIN_CELLS:
                keep |= s_in
                change += s_in.sum() * (x_all[t_in].mean(0) - x_all[src[s_in]].mean(0))
        rows.append(start + np.flatnonzero(keep))
        mats.append(change / max(keep.sum(), 1))
        start += len(src)
    return {"matched_rows": rows, "matrix_matched": np.stack(mats)}


def scib_scores(ds: Dataset, sp: dict, outputs: dict[str, Output], x_all: np.ndarray,
                work: Path, log: Callable[[str], Any]) -> dict[str, dict]:
    """scib-metrics on the test cells, run in the scverse peer venv (batch = ``ds.batch_key``,
    label = ``ds.type_key``). The embedding scored per method: CausCell's token of the label
    concept (its ``u`` is meant to carry no labels), the peers' shared latent."""
    import subprocess

    import anndata as ad

    from . import peers

    if ds.batch_key is None or not peers.is_ready("scverse"):
        return {}
    obs = ds.adata.obs.iloc[sp["test"]]
    a = ad.AnnData(x_all[sp["test"]], obs=pd.DataFrame(
        {"batch": obs[ds.batch_key].astype(str).to_numpy(),
         "label": obs[ds.type_key].astype(str).to_numpy()}))
    for name, out in outputs.items():
        key = ds.type_key if name.startswith("CausCell") else "latent"
        if key in out.embeddings:
            a.obsm[f"X_{name}"] = np.asarray(out.embeddings[key], dtype=np.float32)
    if not len(a.obsm):
        return {}
    src, dst = work / "scib.h5ad", work / "scib.json"
    a.write_h5ad(src)
    script = Path(__file__).resolve().parent / "adapters" / "scib_adapter.py"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    run = subprocess.run([str(peers.env_python("scverse")), str(script), str(src), str(dst)],
                         capture_output=True, text=True, env=env, timeout=1800)
    if run.returncode:
        log(f"  scib-metrics failed: {run.stderr[-400:]}")
        return {}
    res = json.loads(dst.read_text())
    log(f"  scib-metrics: {res.pop('_seconds', 0):.0f} s")
    return res


# -- samplers ----------------------------------------------------------------------------------
def sampler_speed(model, ds: Dataset, sp: dict, n_cells: int, truth: dict | None,
                  seed: int) -> list[dict]:
    """Counterfactual (or reconstruction) time for ``n_cells`` cells with the expected
    expression (mean of 8 one-step draws), DDIM-50 and DDPM-1000, scaled to 1,000 cells, and
    the quality of each (token propagation only, so that only the sampler differs)."""
    from napari_causcell import metrics as M

    rows = []
    idx = sp["cf"] if len(sp["cf"]) else sp["test"]
    cells = ds.adata[np.resize(idx, n_cells)].copy()
    cells.obs_names_make_unique()
    from napari_causcell._constants import MEAN_DRAWS

    for sampler, steps in (("mean", MEAN_DRAWS), ("ddim", 50), ("ddpm", 1000)):
        t0 = time.perf_counter()
        if ds.truth is not None and len(sp["cf"]):
            res = model.counterfactual(cells, do=ds.cf_do, sampler=sampler, steps=steps,
                                       seed=seed, propagate="tokens")
        else:
            res = model.reconstruct(cells, sampler=sampler, steps=steps, seed=seed)
        sec = time.perf_counter() - t0
        row = {"sampler": f"{sampler.upper()}-{steps}", "cells": n_cells,
               "seconds_per_1000_cells": sec * 1000 / n_cells}
        if "delta" in res.layers and truth is not None:
            src = truth["src_type"][np.resize(np.arange(len(idx)), n_cells)]  # rows = cells
            pred = M.group_mean_change(np.asarray(res.layers["delta"]), src,
                                       order=truth["types"]).to_numpy()
            row["cf_r"] = M.change_correlation(pred, truth["matrix"])
        else:
            row["per_cell_r"] = float(np.nanmean(M.per_cell_pearson(res.layers["factual"],
                                                                    res.X)))
        rows.append(row)
    return rows


# -- one dataset x setting x seed ----------------------------------------------------------
def run_one(ds: Dataset, setting: str, seed: int, budget: float, peers: list[str],
            sampler_cells: int, log: Callable[[str], Any] = print, scib: bool = False) -> dict:
    sp = split(ds, setting, seed)
    log(f"{ds.name} {setting} seed {seed}: train {len(sp['train'])}, test {len(sp['test'])}, "
        f"cf {len(sp['cf'])}, held out {sp['held_out']}")
    x_all = lognorm(ds.adata)
    truth = truth_for(ds, sp, x_all)
    outputs: dict[str, Output] = {}
    with tempfile.TemporaryDirectory(prefix="causcell-bench-") as tmp:
        work = Path(tmp)
        future, stop = None, threading.Event()
        pool = cf_futures.ThreadPoolExecutor(1)
        try:
            if peers:  # peers train on the other core while CausCell trains here
                task, meta = peer_task(ds, sp, seed, budget, work)
                future = pool.submit(run_peers, peers, task, work, meta["n_test"], log, stop)
            outputs["CausCell"], model = run_causcell(ds, sp, seed, budget, ds.dag)
            log(f"  CausCell: {outputs['CausCell'].speed['epochs']} epochs")
            outputs["CausCell_IND"], _ = run_causcell(ds, sp, seed, budget, [])
            samplers = sampler_speed(model, ds, sp, sampler_cells, truth, seed) \
                if sampler_cells else []
            outputs.update(run_foils(ds, sp, x_all))
            if future is not None:
                outputs.update(future.result())
        finally:  # on an error, start no further peer
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        sci = scib_scores(ds, sp, outputs, x_all, work, log) if scib else {}
    scores = {}
    for name, out in outputs.items():
        extra = {f"scib_{k.lower().replace(' ', '_')}": v for k, v in sci.get(name, {}).items()
                 if k in ("Bio conservation", "Batch correction", "Total")}
        scores[name] = {**score(ds, sp, out, x_all, truth, seed), **extra, **out.speed}
        if out.notes:
            scores[name]["notes"] = out.notes
    return {"dataset": ds.name, "setting": setting, "seed": seed, "held_out": sp["held_out"],
            "n_train": int(len(sp["train"])), "n_test": int(len(sp["test"])),
            "n_cf": int(len(sp["cf"])),
            "n_responsive": truth["n_responsive"] if truth else None,
            "true_switched": truth.get("switched") if truth else None,
            "observed_markers": truth.get("observed_markers") if truth else None,
            "scores": scores, "samplers": samplers}


def summarise(runs: list[dict]) -> pd.DataFrame:
    """Long table: dataset, setting, method, metric, mean, sd, n (over seeds)."""
    rows = []
    for r in runs:
        for method, sc in r["scores"].items():
            for metric, v in sc.items():
                if isinstance(v, (int, float)) and v is not None and np.isfinite(v):
                    rows.append({"dataset": r["dataset"], "setting": r["setting"],
                                 "method": method, "metric": metric, "value": float(v)})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    g = df.groupby(["dataset", "setting", "method", "metric"], sort=False)["value"]
    return g.agg(mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                 n="size").reset_index()


def machine(threads: int) -> dict:
    """Machine facts recorded with every result."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": threads, "python": platform.python_version()}
