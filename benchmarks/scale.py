"""Scale benchmark: training cells/s and peak memory vs number of cells, 1 vs N processes.

Simulates count matrices (``--cells`` x ``--genes``, sparse CSR, two concepts: age ->
cell_type) written once to ``--workdir`` as ``.h5ad``, then for every size, data mode
(``backed``: the ``.h5ad`` opened with ``backed="r"``; ``memory``: read into memory as CSR)
and process count trains CausCell for ``--seconds`` in a fresh process (``torchrun`` on gloo
for more than one) and records training cells/s and the peak resident memory (``VmHWM``)
of each process. Writes ``benchmarks/results/scale-<date>-<cells>.json``.

    OMP_NUM_THREADS=1 python -m benchmarks.scale --threads 1 --cells 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ._results import write_result

N_TYPES, AGES = 6, ("4wk", "24wk", "90wk")


def simulate(path: Path, n_cells: int, n_genes: int, seed: int = 0, chunk: int = 50_000) -> None:
    """Write ``n_cells`` simulated cells to ``path`` chunk by chunk (never all densely)."""
    import anndata as ad
    import h5py
    import pandas as pd
    from anndata.io import sparse_dataset, write_elem
    from scipy import sparse

    rng = np.random.default_rng(seed)
    base = rng.normal(-1.6, 1.0, n_genes)
    type_fx = rng.normal(0.0, 0.8, (N_TYPES, n_genes))
    age_fx = np.zeros((len(AGES), n_genes))
    age_fx[:, : n_genes // 10] = np.linspace(0, 1.0, len(AGES))[:, None]
    age = rng.integers(0, len(AGES), n_cells)
    # age shifts the cell-type mix (the DAG age -> cell_type)
    logits = rng.normal(0, 1, (len(AGES), N_TYPES))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    u = rng.random(n_cells)
    cell_type = (u[:, None] > np.cumsum(p[age], 1)).sum(1).clip(max=N_TYPES - 1)
    obs = pd.DataFrame({
        "age": pd.Categorical(np.asarray(AGES)[age], categories=list(AGES)),
        "cell_type": pd.Categorical([f"type{t}" for t in cell_type]),
    }, index=[f"cell{i}" for i in range(n_cells)])
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    ad.AnnData(obs=obs, var=var).write_h5ad(path)
    with h5py.File(path, "a") as f:
        for i in range(0, n_cells, chunk):
            rows = slice(i, min(i + chunk, n_cells))
            size = rng.lognormal(0, 0.3, rows.stop - i)[:, None]
            rate = np.exp(base + type_fx[cell_type[rows]] + age_fx[age[rows]]) * size
            block = sparse.csr_matrix(rng.poisson(rate).astype(np.float32))
            if i == 0:
                write_elem(f, "X", block)
                x = sparse_dataset(f["X"])
            else:
                x.append(block)


def rss_mb() -> float:
    """Peak resident memory of this process in MB.

    ``VmHWM`` from ``/proc/self/status`` (Linux): unlike ``ru_maxrss`` it is reset by
    ``exec``, so it does not include the launching process's memory.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    """One training run (one process of it under torchrun); appends a JSON line to --report."""
    import torch

    torch.set_num_threads(args.threads)
    import anndata as ad
    import torch.distributed as dist

    from napari_causcell import CausCell

    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    rss0 = rss_mb()
    t0 = time.perf_counter()
    data = ad.read_h5ad(args.file, backed="r" if args.mode == "backed" else None)
    model = CausCell(data, ["age", "cell_type"], dag=[("age", "cell_type")], seed=0)
    model.train(max_epochs=1_000, max_time=args.seconds, validation_fraction=0.0,
                early_stopping=False, batch_size=args.batch_size)
    total = time.perf_counter() - t0
    h = model.history
    steps, train_s = h[-1]["step"], h[-1]["time"]
    row = {"rank": rank, "world": world, "rss_after_imports_mb": rss0, "peak_rss_mb": rss_mb(),
           "steps": steps, "train_s": train_s, "cells_per_s": steps * args.batch_size / train_s,
           "setup_s": total - train_s, "epochs": len(h)}
    with open(args.report, "a") as f:
        f.write(json.dumps(row) + "\n")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def run_one(file: Path, mode: str, processes: int, args: argparse.Namespace) -> dict:
    report = Path(args.workdir) / "report.jsonl"
    report.unlink(missing_ok=True)
    inner = ["-m", "benchmarks.scale", "--worker", "--file", str(file), "--mode", mode,
             "--seconds", str(args.seconds), "--threads", str(args.threads),
             "--batch-size", str(args.batch_size), "--report", str(report)]
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={processes}", *inner]
    else:
        cmd = [sys.executable, *inner]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    r0 = min(rows, key=lambda r: r["rank"])
    return {
        "mode": mode, "processes": processes, "wall_s": wall,
        "cells_per_s": r0["cells_per_s"], "steps": r0["steps"], "setup_s": r0["setup_s"],
        "peak_rss_mb_per_process": [r["peak_rss_mb"]
                                    for r in sorted(rows, key=lambda r: r["rank"])],
        "rss_after_imports_mb": r0["rss_after_imports_mb"],
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--genes", type=int, default=500)
    p.add_argument("--modes", nargs="+", choices=["backed", "memory"], default=["backed", "memory"])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=20.0, help="training time per run")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default="/tmp/causcell-scale", help="simulated .h5ad files")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--report", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return {}

    import torch

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    result = {
        "date": dt.date.today().isoformat(),
        "command": "python -m benchmarks.scale " + " ".join(argv or sys.argv[1:]),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads_per_process": args.threads},
        "genes": args.genes, "batch_size": args.batch_size, "seconds": args.seconds, "runs": [],
    }
    for n in args.cells:
        file = work / f"sim-{n}x{args.genes}.h5ad"
        if not file.exists():
            t0 = time.perf_counter()
            simulate(file, n, args.genes)
            print(f"simulated {n} cells in {time.perf_counter() - t0:.0f} s "
                  f"({file.stat().st_size / 2**20:.0f} MB)", flush=True)
        for mode in args.modes:
            for procs in args.processes:
                row = {"cells": n, "file_mb": file.stat().st_size / 2**20,
                       **run_one(file, mode, procs, args)}
                result["runs"].append(row)
                print(json.dumps(row), flush=True)
    write_result(args.out, f"scale-{result['date']}-{'-'.join(map(str, args.cells))}", result)
    return result


if __name__ == "__main__":
    main()
