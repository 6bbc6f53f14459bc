"""Kill loop of issue 27, item 5: SIGKILL ``counterfactual ... --out v2.zarr --overwrite`` at
random instants while it writes its table into a SpatialData v0.1 store (zarr v2), then check
that the store reads and holds the old table or the new one, and that a retry succeeds.

    python scripts/kill_loop_zarr.py --kills 20

Each round copies a v0.1 store holding table ``cf`` (cells of age 4wk), starts the command
line writing ``cf`` for ages 24wk and 90wk, and once the table's staging store appears next to
the store, waits a random 0 to 1.5x the time an uninterrupted write took from that moment to
the exit, and kills it. Checks after a kill: ``spatialdata.read_zarr`` reads the store, the
source table is unchanged, ``cf`` has the old or the new number of cells and finite values,
the store is still zarr v2; then the same command, uninterrupted, succeeds, writes the new
table and leaves no temporaries. Prints one line of counts; exit code 1 when a check failed.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from kill_loops import _run_and_kill as run_and_kill  # the shared kill-at-a-moment runner

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
CONCEPTS = ["age", "domain", "cell_type"]
DAG = [("age", "cell_type"), ("domain", "cell_type")]


def _argv(model: Path, store: Path, where: str) -> list[str]:
    return [sys.executable, "-m", "napari_causcell", "counterfactual", str(model), str(store),
            "--out", str(store), "--do", "age=90wk", "--where", f"age={where}", "--key", "cf",
            "--steps", "2", "--overwrite"]


def _read(store: Path):
    import spatialdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return spatialdata.read_zarr(store)


def _digest(adata) -> str:
    import numpy as np

    x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def _staging(store: Path) -> bool:
    prefix = f".{store.name}.causcell-table-"
    return any(n.startswith(prefix) for n in os.listdir(store.parent))


def _temporaries(store: Path) -> list[str]:
    """Hidden names this package left beside the store or in its tables group."""
    beside = [n for n in os.listdir(store.parent) if n.startswith(f".{store.name}.causcell-")]
    inside = [n for n in os.listdir(store / "tables") if n.startswith(".causcell-")]
    return beside + inside


def _run(argv: list[str], store: Path, delay: float | None) -> tuple[bool, float]:
    """Run ``argv``; ``delay`` s after the staging store appears, SIGKILL it (``None``:
    never). Returns (killed, seconds from the staging store's appearance to exit or kill;
    0 when the write finished between two polls)."""
    killed, window, _ = run_and_kill(argv, lambda done=False: not done and _staging(store),
                                     delay)
    return killed, 0.0 if math.isnan(window) else window


def _setup(root: Path) -> tuple[Path, Path]:
    """A tiny model and a v0.1 (zarr v2) store whose table ``cf`` holds the 4wk cells."""
    import torch

    torch.set_num_threads(1)
    from spatialdata._io.format import SpatialDataContainerFormatV01

    from napari_causcell import CausCell
    from napari_causcell.datasets import brain_aging

    sdata = brain_aging(n_cells=300, n_genes=60, seed=0)
    model = CausCell(sdata, CONCEPTS, dag=DAG, seed=0, width=32, hidden=64, token_dim=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train(max_epochs=2, batch_size=64)
        model.save(root / "model")
        sdata.write(root / "base.zarr", sdata_formats=SpatialDataContainerFormatV01())
    subprocess.run(_argv(root / "model", root / "base.zarr", "4wk"), env=ENV, cwd=REPO,
                   check=True, capture_output=True)
    return root / "model", root / "base.zarr"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", help="work folder (default: a new temporary one, removed)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="kill_loop_zarr_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        model, base = _setup(root)
        old = _read(base)
        n_source, source_digest = old.tables["table"].n_obs, _digest(old.tables["table"])
        n_old = old.tables["cf"].n_obs
        n_new = int(old.tables["table"].obs["age"].isin(["24wk", "90wk"]).sum())
        assert n_old != n_new
        store = root / "v2.zarr"
        times = []
        for _ in range(2):  # the write time, uninterrupted
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(base, store)
            times.append(_run(_argv(model, store, "24wk,90wk"), store, None)[1])
        window = 1.5 * max(times)
        counts = dict(runs=0, kills=0, finished=0, old=0, new=0, bad=0, leftovers=0,
                      retry_ok=0, retry_bad=0)
        failures: list[str] = []
        while counts["kills"] < args.kills and counts["runs"] < 4 * args.kills:
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(base, store)
            counts["runs"] += 1
            delay = rng.uniform(0.0, window)
            killed, _ = _run(_argv(model, store, "24wk,90wk"), store, delay)
            counts["kills" if killed else "finished"] += 1
            try:
                sdata = _read(store)
                assert (store / ".zgroup").is_file() and not (store / "zarr.json").exists()
                table = sdata.tables["table"]
                assert table.n_obs == n_source and _digest(table) == source_digest
                n = sdata.tables["cf"].n_obs
                import numpy as np

                x = sdata.tables["cf"].X
                assert np.isfinite(x.toarray() if hasattr(x, "toarray") else x).all()
                assert n in (n_old, n_new), f"cf has {n} cells"
                assert killed or n == n_new
                counts["old" if n == n_old else "new"] += 1
            except Exception as err:  # noqa: BLE001 - count and report every failure
                counts["bad"] += 1
                failures.append(f"delay {delay:.3f}s: {type(err).__name__}: {err!r}")
                continue
            counts["leftovers"] += bool(_temporaries(store))
            print(f"round {counts['runs']}: delay {delay:.3f}s, "
                  f"{'killed' if killed else 'finished'}, cf has {n} cells", flush=True)
            try:
                _run(_argv(model, store, "24wk,90wk"), store, None)
                sdata = _read(store)
                assert sdata.tables["cf"].n_obs == n_new and not _temporaries(store)
                counts["retry_ok"] += 1
            except Exception as err:  # noqa: BLE001
                counts["retry_bad"] += 1
                failures.append(f"retry after delay {delay:.3f}s: {type(err).__name__}: {err}")
        print(f"kill_loop_zarr (v0.1 store, zarr v2): write window {window:.3f}s; "
              + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for line in failures:
            print("  FAILED", line)
        ok = not failures and counts["kills"] >= args.kills
        return 0 if ok else 1
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
