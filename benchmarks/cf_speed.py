"""Counterfactual speed of this checkout against another commit, measured in one run.

    python -m benchmarks.cf_speed --ref d97e6b3 --cells 6000 --repeats 3

Trains one model (this checkout, a few epochs) and saves it; checks ``--ref`` out into a
temporary git worktree; then, one after the other in fresh processes (one torch thread,
``PYTHONPATH`` at each tree's ``src``), loads the model and times ``counterfactual`` on every
cell for each sampler (``mean``; ``ddim`` with 20 steps), old and new alternating. Reports
cells/s (CPU time of the call, less disturbed by other work on a shared machine, and wall
time) and the median ratio new/old. Writes ``benchmarks/results/cf-speed-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ._results import write_result

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = ("mean", "ddim")
CHILD = """
import sys, time, warnings, torch, anndata as ad
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
from napari_causcell import CausCell
adata = ad.read_h5ad(sys.argv[1])
m = CausCell.load(sys.argv[2])
for sampler in sys.argv[3].split(","):
    t, c = time.perf_counter(), time.process_time()
    m.counterfactual(adata, do={"age": "90wk"}, sampler=sampler, steps=20, seed=0)
    print(sampler, adata.n_obs / (time.perf_counter() - t), adata.n_obs / (time.process_time() - c))
"""


def _run(src: Path, data: Path, model: Path) -> dict[str, tuple[float, float]]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(data), str(model),
                           ",".join(SAMPLERS)], env=env, capture_output=True, text=True,
                          cwd=data.parent)
    if proc.returncode:
        raise SystemExit(f"counterfactual with {src} failed:\n{proc.stderr[-3000:]}")
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[:1]
            and line.split()[0] in SAMPLERS]
    return {r[0]: (float(r[1]), float(r[2])) for r in rows}


def _setup(tmp: Path, cells: int, epochs: int) -> tuple[Path, Path]:
    import torch

    from napari_causcell import CausCell, datasets

    torch.set_num_threads(1)
    data = tmp / "tissue.h5ad"
    adata = datasets.brain_aging(n_cells=cells, seed=0).tables["table"]
    adata.write_h5ad(data)
    model = CausCell(adata, ["age", "domain", "cell_type"],
                     dag=[("age", "cell_type"), ("domain", "cell_type")], seed=0)
    model.train(max_epochs=epochs, early_stopping=False)
    model.save(tmp / "model")
    return data, tmp / "model"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", default="d97e6b3", help="the commit to compare against")
    p.add_argument("--cells", type=int, default=6000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    runs: dict[str, list] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data, model = _setup(tmp, args.cells, args.epochs)
        old = tmp / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old),
                        args.ref], check=True, capture_output=True)
        try:
            for _ in range(args.repeats):
                runs["old"].append(_run(old / "src", data, model))
                runs["new"].append(_run(ROOT / "src", data, model))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False, capture_output=True)
    summary = {s: {"old_cells_per_cpu_s": float(np.median([r[s][1] for r in runs["old"]])),
                   "new_cells_per_cpu_s": float(np.median([r[s][1] for r in runs["new"]])),
                   "pair_ratio_cpu": float(np.median([n[s][1] / o[s][1] for o, n in
                                                      zip(runs["old"], runs["new"])])),
                   "pair_ratio_wall": float(np.median([n[s][0] / o[s][0] for o, n in
                                                       zip(runs["old"], runs["new"])]))}
               for s in SAMPLERS}
    result = {"date": dt.date.today().isoformat(), "machine": platform.processor() or
              platform.machine(), "cpus": os.cpu_count(), "threads": 1, "args": vars(args),
              "runs": runs, "columns": ["cells/s (wall)", "cells/s (CPU time)"],
              "summary": summary}
    print(json.dumps(summary, indent=1))
    write_result(ROOT / "benchmarks" / "results", f"cf-speed-{result['date']}", result)
    return result


if __name__ == "__main__":
    main()
