"""Shared helpers of the peer adapters.

Runs INSIDE the peer venvs (which do not have napari-causcell): imports only numpy, scipy,
anndata and scanpy (plus torch when present, for seeding and the thread count). Each adapter
is called as ``python <peer>_adapter.py task.json``; see ``benchmarks/peers.py`` for the task
contract and the outputs.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

# One CPU thread everywhere (also for JAX/XLA, which pertpy and CPA's scvi-tools import).
for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_k, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

TARGET_SUM = 1e4
LOG_LAYER = "lognorm"


def log(*args) -> None:
    print("[adapter]", *args, flush=True)


def load_task(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: <peer>_adapter.py TASK_JSON")
    task = json.loads(Path(argv[0]).read_text())
    for key in ("train_h5ad", "query_h5ad", "concepts", "out_dir"):
        if key not in task:
            raise SystemExit(f"task.json lacks {key!r}")
    task.setdefault("counterfactuals", [])
    task.setdefault("seed", 0)
    task.setdefault("max_epochs", 100)
    task.setdefault("max_time", None)
    for cf in task["counterfactuals"]:
        if len(cf["do"]) != 1:
            raise SystemExit(f"counterfactual {cf['name']!r}: exactly one concept in 'do'")
        (c, _v), = cf["do"].items()
        if c not in task["concepts"]:
            raise SystemExit(f"counterfactual {cf['name']!r}: {c!r} is not a concept")
    Path(task["out_dir"]).mkdir(parents=True, exist_ok=True)
    return task


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def read_inputs(task: dict):
    """(train, query) AnnData with raw counts in .X (CSR float32), the concept columns as
    string categoricals whose categories are the union over train and query (same order in
    both), the log-normalised expression in ``layers["lognorm"]`` and counts in
    ``layers["counts"]``."""
    import anndata as ad
    import pandas as pd

    train = ad.read_h5ad(task["train_h5ad"])
    query = ad.read_h5ad(task["query_h5ad"])
    if list(train.var_names) != list(query.var_names):
        raise SystemExit("train and query have different genes")
    targets = {}
    for cf in task["counterfactuals"]:
        (c, v), = cf["do"].items()
        targets.setdefault(c, set()).add(str(v))
    for a in (train, query):
        a.obs_names_make_unique()
        a.X = sp.csr_matrix(a.X, dtype=np.float32)
    for c in task["concepts"]:
        tr = train.obs[c].astype(str)
        qu = query.obs[c].astype(str)
        train_cats = list(pd.unique(tr))
        extra = sorted((set(qu) | targets.get(c, set())) - set(train_cats))
        if extra:
            log(f"warning: {c} values {extra} never seen in training")
        cats = sorted(train_cats) + extra
        train.obs[c] = pd.Categorical(tr, categories=cats)
        query.obs[c] = pd.Categorical(qu, categories=cats)
    for a in (train, query):
        a.obs = a.obs[list(task["concepts"])].copy()
        a.layers["counts"] = a.X.copy()
        a.layers[LOG_LAYER] = lognorm(a.X)
    return train, query


def lognorm(X) -> np.ndarray:
    """log1p(normalize_total(X, target_sum=1e4)) of raw counts, dense float32."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    X = X.astype(np.float64)
    lib = X.sum(1, keepdims=True)
    lib[lib == 0] = 1.0
    return np.log1p(X / lib * TARGET_SUM).astype(np.float32)


def fractions_to_lognorm(F) -> np.ndarray:
    """Expression fractions (rows summing to ~1, e.g. scVI's normalized expression) to
    log1p(CP10k)."""
    F = np.asarray(F, dtype=np.float64)
    F = np.clip(F, 0, None)
    s = F.sum(1, keepdims=True)
    s[s == 0] = 1.0
    return np.log1p(F / s * TARGET_SUM).astype(np.float32)


def counts_to_lognorm(M) -> np.ndarray:
    """Expected counts (any scale) to log1p(CP10k)."""
    return fractions_to_lognorm(M)


def dense32(X) -> np.ndarray:
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    return np.ascontiguousarray(X, dtype=np.float32)


def plan_epochs(max_epochs: int, max_time: float | None, sec_per_epoch: float,
                spent: float = 0.0) -> int:
    """How many more epochs fit in what is left of ``max_time`` (at least 0, at most the
    epochs left of ``max_epochs``)."""
    if not max_time:
        return int(max_epochs)
    left = max(0.0, float(max_time) - spent)
    return int(max(0, min(max_epochs, np.floor(left / max(sec_per_epoch, 1e-9)))))


def lightning_max_time(max_time: float | None) -> dict:
    """Trainer keyword arguments for a budget in seconds: ``{"max_time": {"seconds": s}}``
    (Lightning's form), or ``{}`` without a budget."""
    if not max_time:
        return {}
    return {"max_time": {"seconds": max(1, int(round(float(max_time))))}}


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def cf_obs(query, cf: dict):
    """obs of the counterfactual's query rows, with the intervened column set to the target."""
    import pandas as pd

    rows = np.asarray(cf["cells"], dtype=int)
    obs = query.obs.iloc[rows].copy()
    (c, v), = cf["do"].items()
    cats = list(obs[c].cat.categories)
    if str(v) not in cats:
        cats.append(str(v))
    obs[c] = pd.Categorical([str(v)] * len(obs), categories=cats)
    return obs


def write_outputs(task: dict, query, *, package_version: str, train_seconds: float,
                  epochs: int, n_train: int, notes: list[str], embeddings: dict,
                  reconstruction: np.ndarray, counterfactuals: dict, extra: dict | None = None):
    """Write result.json, embeddings.npz, reconstruction.h5ad and cf_<name>.h5ad.

    ``counterfactuals`` maps a counterfactual name to (predicted, reconstructed), both
    (len(cells), n_genes) in log-normalised space; a name missing from it is skipped (say why
    in ``notes``).
    """
    import anndata as ad
    import pandas as pd

    out = Path(task["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    n_q, n_g = query.n_obs, query.n_vars
    var = pd.DataFrame(index=query.var_names.copy())

    emb = {}
    for k, v in embeddings.items():
        v = np.asarray(v, dtype=np.float32)
        if v.ndim == 1:
            v = v[:, None]
        if v.shape[0] != n_q:
            raise ValueError(f"embedding {k!r} has {v.shape[0]} rows, query has {n_q}")
        emb[k] = v
    np.savez(out / "embeddings.npz", **emb)

    rec = dense32(reconstruction)
    if rec.shape != (n_q, n_g):
        raise ValueError(f"reconstruction shape {rec.shape} != {(n_q, n_g)}")
    ad.AnnData(X=rec, obs=query.obs.copy(), var=var.copy()).write_h5ad(
        out / "reconstruction.h5ad")

    for cf in task["counterfactuals"]:
        if cf["name"] not in counterfactuals:
            continue
        pred, recon = counterfactuals[cf["name"]]
        pred, recon = dense32(pred), dense32(recon)
        want = (len(cf["cells"]), n_g)
        if pred.shape != want or recon.shape != want:
            raise ValueError(f"counterfactual {cf['name']!r}: shapes {pred.shape}, "
                             f"{recon.shape} != {want}")
        a = ad.AnnData(X=pred, obs=cf_obs(query, cf), var=var.copy())
        a.obs_names = [str(x) for x in a.obs_names]
        a.layers["reconstructed"] = recon
        a.write_h5ad(out / f"cf_{cf['name']}.h5ad")

    result = {
        "peer": task.get("peer"),
        "package_version": package_version,
        "train_seconds": round(float(train_seconds), 3),
        "epochs": int(epochs),
        "n_train": int(n_train),
        "cells_per_s": (float(n_train) * epochs / train_seconds) if train_seconds > 0 else None,
        "sec_per_epoch": (float(train_seconds) / epochs) if epochs else None,
        "torch_threads": _torch_threads(),
        "notes": list(notes),
    }
    if extra:
        result.update(extra)
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote outputs to {out}: {result}")
    return result


def _torch_threads():
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()
