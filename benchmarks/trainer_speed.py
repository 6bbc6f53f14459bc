"""Training speed of this checkout against another commit, measured in one run.

    python -m benchmarks.trainer_speed --ref 5a97aba --cells 6000 --epochs 8 --repeats 5 \
        --together

Checks ``--ref`` out into a temporary git worktree, then trains the same model on the same
built-in tissue with the old and the new code, in pairs (``--together``: both at once, one core
each, so a busy shared machine slows both alike; else one after the other) (each in a fresh process, one torch
thread, ``PYTHONPATH`` pointing at that tree's ``src``) and reports training cells/s (training
cells x epochs / wall time of ``train()``, set-up included, and the same per second of the
process's CPU time, which other work on a shared machine disturbs less), the median of each
and their ratios; and the steady rate from the end of
the first epoch to the end of the last (``history`` time stamps), which leaves out one-time
costs such as importing Lightning (several seconds on a loaded 2-core machine). The old and new runs also print their last validation loss: with equal seeds they
should agree (same algorithm). Writes ``benchmarks/results/trainer-speed-<date>.json``.
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
CHILD = """
import sys, time, warnings, torch, anndata as ad
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
from napari_causcell import CausCell
adata = ad.read_h5ad(sys.argv[1])
m = CausCell(adata, ["age", "domain", "cell_type"],
             dag=[("age", "cell_type"), ("domain", "cell_type")], seed=0)
t, c = time.perf_counter(), time.process_time()
h = m.train(max_epochs=int(sys.argv[2]), early_stopping=False)
dt, dc = time.perf_counter() - t, time.process_time() - c
n = m.train_params["n_train"] * len(h)
steady = m.train_params["n_train"] * (len(h) - 1) / (h[-1]["time"] - h[0]["time"])
print(n / dt, n / dc, steady, h[-1]["val_recon"])
"""


def _start(src: Path, data: Path, epochs: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(epochs)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=data.parent)


def _result(proc: subprocess.Popen, src: Path) -> tuple[float, ...]:
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"training with {src} failed:\n{err[-3000:]}")
    return tuple(float(v) for v in out.split()[-4:])


def _pair(old: Path, new: Path, data: Path, epochs: int, together: bool
          ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """One old and one new run: side by side (one core each) or one after the other."""
    if together:
        p_old, p_new = _start(old, data, epochs), _start(new, data, epochs)
        return _result(p_old, old), _result(p_new, new)
    r_old = _result(_start(old, data, epochs), old)
    return r_old, _result(_start(new, data, epochs), new)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", default="5a97aba", help="the commit to compare against")
    p.add_argument("--cells", type=int, default=6000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--together", action="store_true",
                   help="run each old/new pair at the same time, one core each, so both see "
                        "the same machine (needs 2 free cores)")
    args = p.parse_args(argv)
    from napari_causcell import datasets

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "tissue.h5ad"
        datasets.brain_aging(n_cells=args.cells, seed=0).tables["table"].write_h5ad(data)
        old = tmp / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old),
                        args.ref], check=True, capture_output=True)
        try:
            runs = {"old": [], "new": []}
            for _ in range(args.repeats):  # alternate, so load on the machine hits both
                r_old, r_new = _pair(old / "src", ROOT / "src", data, args.epochs,
                                     args.together)
                runs["old"].append(r_old)
                runs["new"].append(r_new)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False, capture_output=True)
    med = {k: float(np.median([r[0] for r in v])) for k, v in runs.items()}
    cpu = {k: float(np.median([r[1] for r in v])) for k, v in runs.items()}
    steady = {k: float(np.median([r[2] for r in v])) for k, v in runs.items()}
    result = {"date": dt.date.today().isoformat(), "machine": platform.processor() or
              platform.machine(), "cpus": os.cpu_count(), "threads": 1, "args": vars(args),
              "runs": runs, "columns": ["cells/s (wall)", "cells/s (CPU time)",
                                        "cells/s after the first epoch (wall)", "val recon"],
              "median_cells_per_s": med, "ratio_new_over_old": med["new"] / med["old"],
              "median_cells_per_cpu_s": cpu, "cpu_ratio_new_over_old": cpu["new"] / cpu["old"],
              "median_steady_cells_per_s": steady,
              "steady_ratio_new_over_old": steady["new"] / steady["old"],
              "median_pair_ratio_steady": float(np.median(
                  [n[2] / o[2] for o, n in zip(runs["old"], runs["new"])])),
              "median_pair_ratio_wall": float(np.median(
                  [n[0] / o[0] for o, n in zip(runs["old"], runs["new"])]))}
    print(json.dumps(result, indent=1))
    write_result(ROOT / "benchmarks" / "results", f"trainer-speed-{result['date']}", result)
    return result


if __name__ == "__main__":
    main()
