"""Kill loops of issue 27: SIGKILL the command line at random instants while it replaces an
output, then check that the old output or the new one is readable (and the input unchanged).

    python scripts/kill_loops.py --item 1 --kills 20   # demo --out over an earlier demo
    python scripts/kill_loops.py --item 3 --kills 20   # counterfactual --out other.h5ad
    python scripts/kill_loops.py --item all --kills 20

Item 1: ``napari-causcell demo --out dk`` (tiny, simulated only) over an earlier demo folder,
killed at a random instant after ``brain_aging.zarr`` (or its hidden temporary) starts
changing: every other kill within max(0.25 s, twice the store's replacement time in an
uninterrupted run), the others up to the demo's exit (model, figures, metrics); afterwards the store must read and hold the old or the new tissue with its
counterfactual table, the model must load, ``metrics.json`` parse and every PNG be whole.

Item 3: ``napari-causcell counterfactual model in.h5ad ... --out other.h5ad --overwrite``,
killed at a random instant of the replacement (from the hidden temporary's appearance to
twice the time it took in an uninterrupted run); ``other.h5ad`` must read with the old or the
new number of cells and ``in.h5ad`` never change. Then ``--out in.h5ad`` (the input, by path,
by symlink, by hard link) must be refused with exit code 2.

Prints one line of counts per item; exit code 1 when any check failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", MPLBACKEND="Agg")


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "napari_causcell", *map(str, args)]


def _run_and_kill(argv: list[str], changed, delay: float | None) -> tuple[bool, float, float]:
    """Run ``argv``; once ``changed()`` is true, wait ``delay`` s and SIGKILL it (``None``:
    never). Returns (killed, seconds from the change to the exit or kill, seconds from the
    change to ``changed(True)`` -- the end of the write -- or nan)."""
    proc = subprocess.Popen(argv, env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    t_change = t_done = None
    killed = False
    while proc.poll() is None:
        now = time.perf_counter()
        if t_change is None and changed():
            t_change = now
        if t_change is not None and t_done is None and changed(done=True):
            t_done = now
        if t_change is not None and delay is not None and now - t_change >= delay:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.001)
    proc.wait()
    err = proc.stderr.read() if proc.stderr else ""
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{err[-3000:]}")
    end = time.perf_counter()
    return (killed, end - t_change if t_change else float("nan"),
            (t_done - t_change) if (t_change and t_done) else float("nan"))


# -- item 1: the demo's store ------------------------------------------------------------------
def _demo_argv(out: Path, n_cells: int) -> list[str]:
    return _cli("demo", "--out", out, "--n-cells", n_cells, "--epochs", "1", "--steps", "2",
                "--no-real", "--quiet")


def _store_state(store: Path):
    hidden = sorted(p.name for p in store.parent.glob(f".{store.name}*"))
    try:
        st = (store / "zarr.json").stat()
        return hidden, (st.st_ino, st.st_mtime_ns)
    except OSError:
        return hidden, None


def _demo_outputs(out: Path) -> tuple[int | None, str]:
    """Cells of the demo folder's tissue, or ``None`` and why it is broken."""
    import spatialdata

    from napari_causcell import CausCell

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sd = spatialdata.read_zarr(out / "brain_aging.zarr")
        table, cf = sd.tables["table"], sd.tables["causcell_age_90wk"]
        if cf.n_obs != int((table.obs["age"] == "4wk").sum()):
            return None, f"counterfactual table of {cf.n_obs} cells for {table.n_obs}"
        n = int(table.n_obs)
    except Exception as err:  # noqa: BLE001 - any failure is a broken store
        return None, f"store: {type(err).__name__}: {err}"[:200]
    try:
        CausCell.load(out / "model", device="cpu")
        json.loads((out / "metrics.json").read_text())
        for png in out.glob("*.png"):
            data = png.read_bytes()
            if not (data.startswith(b"\x89PNG") and data[-8:-4] == b"IEND"):
                return None, f"{png.name} is not a whole PNG"
    except Exception as err:  # noqa: BLE001
        return None, f"{type(err).__name__}: {err}"[:200]
    return n, ""


def loop_demo(work: Path, kills: int, rng: random.Random, log=print) -> dict:
    out = work / "dk"
    store = out / "brain_aging.zarr"
    sizes = (300, 330)

    def changed(done: bool = False) -> bool:
        hidden, meta = _store_state(store)
        fresh = set(hidden) - set(before[0])  # not the temporaries a killed run left
        if done:  # the new store in place, the old one removed
            return not fresh and meta != before[1]
        return bool(fresh) or meta != before[1]

    before = _store_state(store)
    _run_and_kill(_demo_argv(out, sizes[0]), changed, None)
    before = _store_state(store)
    _, window, store_window = _run_and_kill(_demo_argv(out, sizes[1]), changed, None)
    if store_window != store_window:
        store_window = 0.25
    log(f"item 1: an uninterrupted demo takes {store_window:.2f} s from the store's first "
        f"change to the old store's removal, {window:.2f} s to its exit")
    counts = {"runs": 0, "kills": 0, "old": 0, "new": 0, "broken": 0, "finished": 0}
    held, _ = _demo_outputs(out)
    for i in range(kills * 3):
        if counts["kills"] >= kills:
            break
        new = sizes[0] if held == sizes[1] else sizes[1]
        # every other kill inside the store's replacement, the others up to the exit
        delay = rng.uniform(0, max(0.25, 2 * store_window) if i % 2 == 0 else window)
        before = _store_state(store)
        killed, _, _ = _run_and_kill(_demo_argv(out, new), changed, delay)
        counts["runs"] += 1
        got, why = _demo_outputs(out)
        counts["kills" if killed else "finished"] += 1
        if got == held:
            counts["old"] += 1
        elif got == new:
            counts["new"] += 1
        else:
            counts["broken"] += 1
            log(f"  run {i}: killed {delay:.3f} s after the change: BROKEN ({why})")
            # start the next run from a fresh demo folder
            _run_and_kill(_demo_argv(out, new), lambda done=False: False, None)
            got, _ = _demo_outputs(out)
        held = got
    _run_and_kill(_demo_argv(out, sizes[0]), lambda done=False: False, None)
    counts["leftovers_after_clean_run"] = len([p for p in out.iterdir()
                                               if p.name.startswith(".")])
    return counts


# -- item 3: counterfactual --out other.h5ad over an earlier output --------------------------
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_inputs(work: Path) -> tuple[Path, Path]:
    """A tiny ``in.h5ad`` (raw counts, 300 cells) and a tiny model trained on it."""
    from napari_causcell import CausCell
    from napari_causcell.datasets import brain_aging

    sd = brain_aging(n_cells=300, n_genes=60, seed=0)
    data, model_dir = work / "in.h5ad", work / "model"
    sd.tables["table"].write_h5ad(data)
    model = CausCell(sd, ["age", "domain", "cell_type"],
                     dag=[("age", "cell_type"), ("domain", "cell_type")], seed=0, width=32,
                     hidden=64, token_dim=8)
    model.train(max_epochs=1, batch_size=64)
    model.save(model_dir)
    return data, model_dir


def loop_counterfactual(work: Path, kills: int, rng: random.Random, log=print) -> dict:
    import anndata as ad

    data, model_dir = make_inputs(work)
    sha_in = _sha(data)
    out = work / "other.h5ad"
    wheres = ("age=4wk", "age=24wk,90wk")

    def argv(where: str) -> list[str]:
        return _cli("counterfactual", model_dir, data, "--do", "age=90wk", "--where", where,
                    "--steps", "2", "--out", out, "--overwrite")

    def cells(path: Path) -> int | None:
        try:
            return int(ad.read_h5ad(path).n_obs)
        except Exception:  # noqa: BLE001
            return None

    def changed(done: bool = False) -> bool:
        # new temporaries only: those a killed run left are there from the start
        fresh = {p.name for p in work.glob(f".{out.name}*")} - left
        if done:  # the temporary was renamed onto the output
            return not fresh and out.stat().st_ino != before
        return bool(fresh) or out.stat().st_ino != before

    before, left = None, set()
    _run_and_kill(argv(wheres[0]), lambda done=False: False, None)
    before = out.stat().st_ino
    _, _, window = _run_and_kill(argv(wheres[1]), changed, None)
    if window != window:  # not seen: the write took less than one poll
        window = 0.005
    log(f"item 3: the output's replacement takes {window * 1000:.1f} ms in an uninterrupted "
        "run")
    sizes = {w: int((ad.read_h5ad(data).obs["age"].isin(w[4:].split(","))).sum())
             for w in wheres}
    counts = {"runs": 0, "kills": 0, "old": 0, "new": 0, "broken": 0, "finished": 0,
              "input_changed": 0}
    held = cells(out)
    for i in range(kills * 3):
        if counts["kills"] >= kills:
            break
        where = wheres[0] if held == sizes[wheres[1]] else wheres[1]
        new = sizes[where]
        delay = rng.uniform(0, 2 * window)
        before, left = out.stat().st_ino, {p.name for p in work.glob(f".{out.name}*")}
        killed, _, _ = _run_and_kill(argv(where), changed, delay)
        counts["runs"] += 1
        counts["kills" if killed else "finished"] += 1
        got = cells(out)
        if got == held:
            counts["old"] += 1
        elif got == new:
            counts["new"] += 1
        else:
            counts["broken"] += 1
            log(f"  run {i}: killed {delay * 1000:.1f} ms after the change: BROKEN")
            _run_and_kill(argv(where), lambda done=False: False, None)
            got = cells(out)
        if _sha(data) != sha_in:
            counts["input_changed"] += 1
        held = got
    # the input itself as --out: by path, through a symlink, through a hard link
    link, hard = work / "link.h5ad", work / "hard.h5ad"
    link.symlink_to(data)
    os.link(data, hard)
    refused = 0
    for target in (data, link, hard):
        res = subprocess.run(_cli("counterfactual", model_dir, data, "--do", "age=90wk",
                                  "--where", "age=4wk", "--out", target, "--overwrite"),
                             env=ENV, cwd=REPO, capture_output=True, text=True)
        refused += res.returncode == 2 and res.stderr.count("\n") == 1
    counts["input_as_out_refused"] = f"{refused}/3"
    counts["input_changed"] += _sha(data) != sha_in
    _run_and_kill(argv(wheres[0]), lambda done=False: False, None)  # cleans what kills left
    counts["leftovers_after_clean_run"] = len([p for p in work.iterdir()
                                               if p.name.startswith(".")])
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--item", choices=("1", "3", "all"), default="all")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=None, help="working folder (default a temporary one)")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="causcell-kills-"))
    ok = True
    try:
        for item, loop in (("1", loop_demo), ("3", loop_counterfactual)):
            if args.item not in (item, "all"):
                continue
            folder = work / f"item{item}"
            folder.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            counts = loop(folder, args.kills, rng)
            bad = counts["broken"] or counts.get("input_changed") or counts.get(
                "input_as_out_refused", "3/3") != "3/3"
            ok = ok and not bad
            print(f"item {item}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                  + f" ({time.perf_counter() - t0:.0f} s){'  FAILED' if bad else ''}",
                  flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
