"""``python -m benchmarks run [--quick]`` and ``python -m benchmarks setup``.

``run`` sets up missing peer venvs (unless ``--no-peers``), compares CausCell, CausCell_IND,
the foils and the peers (:mod:`benchmarks.compare`), writes
``benchmarks/results/<date>[-quick].json`` and, for full runs (or with ``--docs``),
regenerates the comparison section of ``docs/benchmarks.md`` and its bar chart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="compare methods and write results (+ docs)")
    r.add_argument("--quick", action="store_true",
                   help="1 seed, built-in tissue only, short budgets (~10 min on 2 cores)")
    r.add_argument("--datasets", nargs="+", default=None,
                   help="brain_aging starmap merfish (default all; real sets skipped when absent); "
                        "brain_aging@S simulates the built-in tissue with data seed S")
    r.add_argument("--h5ad", help="also benchmark this .h5ad (raw counts in .X or "
                   "layers['counts']); needs --concepts")
    r.add_argument("--concepts", nargs="+", help="obs columns of --h5ad used as concepts")
    r.add_argument("--dag", nargs="*", default=[], help="edges of --h5ad as cause:effect")
    r.add_argument("--settings", nargs="+", default=["id", "ood"], choices=["id", "ood"])
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; quick 1)")
    r.add_argument("--budget", type=float, default=None,
                   help="training seconds per method and run (default 60; quick 20)")
    r.add_argument("--peers", nargs="*", default=None,
                   help="peers to run (default all: scvi biolord scgen cpa)")
    r.add_argument("--no-peers", action="store_true", help="skip peers and their set-up")
    r.add_argument("--sampler-cells", type=int, default=None,
                   help="cells for the DDIM-50 vs DDPM-1000 timing (default 1000; quick 200)")
    r.add_argument("--cells", type=int, default=None,
                   help="cells of the built-in tissue (default 4000; quick 3000)")
    r.add_argument("--scib", action=argparse.BooleanOptionalAction, default=None,
                   help="scib-metrics scores where a batch concept exists (default: full runs)")
    r.add_argument("--threads", type=int, default=1, help="torch threads per process")
    r.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    r.add_argument("--docs", action="store_true", help="regenerate docs after a quick run")
    r.add_argument("--no-docs", action="store_true", help="never touch docs/")
    rep = sub.add_parser("report", help="regenerate docs/benchmarks.md from a results JSON")
    rep.add_argument("json", help="benchmarks/results/<date>.json (or a .partial.json)")
    s = sub.add_parser("setup", help="create the peer venvs under benchmarks/envs/")
    s.add_argument("envs", nargs="*", help="scverse cpa (default both)")
    s.add_argument("--force", action="store_true")
    return p


def _setup(envs, force=False, log=print) -> dict[str, str]:
    from . import peers

    status = {}
    for env in envs:
        try:
            peers.setup(env, force=force, log=log)
            status[env] = "ready"
        except Exception as err:  # reported in the results, the run goes on without it
            status[env] = f"set-up failed: {str(err)[-300:]}"
            log(f"{env}: {status[env]}")
    return status


def run(args, argv=None) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from . import compare
    from ._results import write_result
    from .report import write_docs

    t0 = time.perf_counter()
    seeds = args.seeds or (1 if args.quick else 3)
    budget = args.budget or (20.0 if args.quick else 60.0)
    sampler_cells = args.sampler_cells if args.sampler_cells is not None else (
        200 if args.quick else 1000)
    names = args.datasets or (["brain_aging"] if args.quick else
                              ["brain_aging", "starmap", "merfish"])
    peer_status: dict[str, str] = {}
    peers: list[str] = []
    if not args.no_peers:
        from . import peers as peer_mod

        wanted = args.peers if args.peers is not None else list(peer_mod.PEERS)
        env_status = _setup(sorted({peer_mod.PEERS[p] for p in wanted}))
        for p in wanted:
            ok = env_status[peer_mod.PEERS[p]] == "ready"
            peer_status[p] = "run" if ok else env_status[peer_mod.PEERS[p]]
            if ok:
                peers.append(p)
        for p, why in peer_mod.NOT_RUN.items():
            peer_status[p] = f"not run ({why})"
    datasets = []
    for name in names:
        try:
            datasets.append(compare.load_dataset(name, quick=args.quick, n_cells=args.cells))
        except FileNotFoundError as err:
            print(f"skipping {name}: {err}")
    if args.h5ad:
        datasets.append(compare.load_dataset("h5ad", h5ad=args.h5ad, concepts=args.concepts,
                                             dag=args.dag))
    date = dt.date.today().isoformat()
    name = date + ("-quick" if args.quick else "")
    command = "python -m benchmarks run " + " ".join(argv or [])
    result = {"date": date, "command": command.strip(), "file": f"{name}.json",
              "machine": compare.machine(args.threads),
              "args": {"quick": args.quick, "seeds": seeds, "budget": budget,
                       "datasets": [d.name for d in datasets], "settings": args.settings,
                       "sampler_cells": sampler_cells, "cells": args.cells},
              "peers": peer_status, "runs": []}
    scib = args.scib if args.scib is not None else not args.quick
    for ds in datasets:
        for setting in [s for s in args.settings if s in ds.settings]:
            for seed in range(seeds):
                result["runs"].append(compare.run_one(
                    ds, setting, seed, budget, peers,
                    # the sampler comparison once: first dataset, first setting, seed 0
                    sampler_cells if ds is datasets[0] and setting == args.settings[0] and seed == 0
                    else 0,
                    log=lambda m: print(m, flush=True), scib=scib and setting == "id"))
                result["elapsed_s"] = time.perf_counter() - t0
                write_result(args.out, name + ".partial", result)  # survives an interruption
    summary = compare.summarise(result["runs"])
    result["summary"] = summary.to_dict(orient="records")
    write_result(args.out, name, result)
    (Path(args.out) / f"{name}.partial.json").unlink(missing_ok=True)
    if not args.no_docs and (args.docs or not args.quick):
        doc = write_docs(result, summary, ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "images")
        print(f"updated {doc}")
    print(json.dumps({"elapsed_min": round(result["elapsed_s"] / 60, 1)}))
    return result


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.cmd == "setup":
        from . import peers

        status = _setup(args.envs or sorted(set(peers.PEERS.values())), force=args.force)
        print(json.dumps(status, indent=1))
        return status
    if args.cmd == "report":
        from . import compare
        from .report import write_docs

        result = json.loads(Path(args.json).read_text())
        result.setdefault("elapsed_s", 0.0)
        summary = compare.summarise(result["runs"])
        doc = write_docs(result, summary, ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "images")
        print(f"updated {doc}")
        return result
    return run(args, (argv if argv is not None else sys.argv[1:])[1:])


if __name__ == "__main__":
    main()
