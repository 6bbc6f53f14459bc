"""Command line: ``napari-causcell demo | train | counterfactual | info``.

Exit codes: 0 success; 2 bad usage or bad input (one ``error: ...`` line on stderr, no
traceback; ``--traceback`` shows it); 130 interrupted. Heavy libraries are imported only
by the subcommand that needs them, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._constants import DEFAULT_STEPS
from .errors import CausCellError, SettingError

PROG = "napari-causcell"
DEFAULT_THREADS = 1


class UsageError(SettingError):
    """A command-line value that cannot be used."""


# -- helpers ---------------------------------------------------------------------------------
def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions reported as ``error: ...`` with exit code 2.

    Every :class:`~napari_causcell.errors.CausCellError` (bad data, concept, graph, model
    directory, setting), bad values and file-system refusals (missing, existing, not a
    directory, not writable).
    """
    return (CausCellError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, PermissionError)


def _split_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _assignments(items: Sequence[str] | None, flag: str, multi: bool = False) -> dict[str, Any]:
    """``["age=90wk", ...]`` -> ``{"age": "90wk"}``; with ``multi``, ``a=x,y`` -> ``[x, y]``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UsageError(f"{flag} expects COLUMN=LABEL, got {item!r}")
        if key in out:
            hint = " (list several labels as COLUMN=A,B)" if multi else ""
            raise UsageError(f"{flag} gives {key!r} twice{hint}")
        labels = _split_list(value) if multi else [value]
        out[key] = labels if multi and len(labels) > 1 else labels[0]
    return out


def _read_data(path: str | Path, backed: bool = False, table_key: str | None = None) -> Any:
    """An ``.h5ad`` file (AnnData) or a SpatialData ``.zarr`` folder.

    With ``backed``, the expression matrix stays on disk: an ``.h5ad`` is opened with
    ``backed="r"``; for a ``.zarr`` only the table (``table_key``) is read, its matrix lazily.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    from .data import DataError

    try:
        if path.is_dir() and backed:
            return _read_zarr_table_lazily(path, table_key)
        if path.is_dir():
            import spatialdata

            return spatialdata.read_zarr(path)
        if path.suffix == ".h5ad":
            import anndata

            return anndata.read_h5ad(path, backed="r" if backed else None)
    except Exception as err:  # noqa: BLE001 - any reader failure is bad input
        raise DataError(f"cannot read {path}: {type(err).__name__}: {err}") from err
    raise UsageError(f"{path}: expected an .h5ad file or a SpatialData .zarr folder")


def _read_zarr_table_lazily(path: Path, table_key: str | None) -> Any:
    """The table of a SpatialData ``.zarr`` as an AnnData whose ``X`` is a lazy dask array."""
    import anndata
    import zarr
    from anndata.experimental import read_elem_lazy

    from .data import DataError

    tables = path / "tables"
    keys = sorted(p.name for p in tables.iterdir() if p.is_dir()) if tables.is_dir() else []
    if table_key is None:
        if "table" in keys or len(keys) == 1:
            table_key = "table" if "table" in keys else keys[0]
        else:
            raise DataError(f"{path} holds tables {keys}; pass --table-key")
    if table_key not in keys:
        raise DataError(f"Table {table_key!r} not found in {path}; tables are {keys}.")
    group = zarr.open_group(str(tables / table_key), mode="r")
    return anndata.AnnData(
        X=read_elem_lazy(group["X"]),
        obs=anndata.io.read_elem(group["obs"]),
        var=anndata.io.read_elem(group["var"]),
    )


def _launch_distributed(args: argparse.Namespace) -> int:
    """Run this same command under ``torchrun``: ``--devices`` processes on each of ``--nodes``."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={args.devices}"]
    if args.nodes == 1:
        cmd.append("--standalone")
    else:
        if not args.master_addr:
            raise UsageError("--nodes > 1 needs --master-addr (the address of node 0)")
        cmd += [f"--nnodes={args.nodes}", f"--node-rank={args.node_rank}",
                f"--master-addr={args.master_addr}", f"--master-port={args.master_port}"]
    cmd += ["-m", "napari_causcell.cli", *args.argv]
    print(f"Launching {args.devices * args.nodes} processes: {' '.join(cmd[1:])}", flush=True)
    rc = subprocess.call(cmd)
    if rc:
        print("error: distributed training failed (messages above)", file=sys.stderr)
        return 130 if rc in (130, -2) else 2
    return 0


def _init_distributed(device: str | None) -> tuple[int, int, str | None]:
    """Join the process group set up by ``torchrun``; returns ``(rank, world, device)``."""
    import os

    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if cuda:
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    elif device is None:
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def _describe_where(where: dict[str, Any]) -> str:
    return " and ".join(f"{k} in {v}" if isinstance(v, list) else f"{k}={v}"
                        for k, v in where.items())


def _training_summary(model: Any) -> list[str]:
    if not model.history:
        return ["  not trained"]
    last, params = model.history[-1], model.train_params
    accs = ", ".join(f"{c} {last[f'val_acc_{c}']:.3f}" for c in model.concepts
                     if f"val_acc_{c}" in last)
    lines = [
        f"  epochs: {len(model.history)} ({params.get('steps', '?')} steps, "
        f"{last.get('time', float('nan')):.1f} s)",
        f"  stop reason: {params.get('stop_reason', '?')}",
        f"  cells: {params.get('n_train', '?')} training, {params.get('n_val', '?')} held out",
    ]
    if accs:
        lines.append(f"  held-out concept accuracy (last epoch): {accs}")
    if "best_val_loss" in params:
        lines.append(f"  best held-out loss: {params['best_val_loss']:.4f}")
    return lines


@contextlib.contextmanager
def _cleanup_on_error(tmp: Path) -> Iterator[None]:
    """Remove the partly written ``tmp`` when writing it fails."""
    try:
        yield
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


# -- subcommands -----------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import format_summary, run_demo

    if args.n_cells < 3:
        raise UsageError(f"--n-cells must be >= 3, got {args.n_cells}")
    if args.real_epochs < 1:
        raise UsageError(f"--real-epochs must be >= 1, got {args.real_epochs}")
    metrics = run_demo(
        args.out, n_cells=args.n_cells, epochs=args.epochs,
        max_time=args.max_time if args.max_time and args.max_time > 0 else None,
        seed=args.seed, steps=args.steps, device=args.device,
        log=None if args.quiet else print, real=not args.no_real,
        real_epochs=args.real_epochs,
        real_max_time=args.real_max_time if args.real_max_time and args.real_max_time > 0
        else None,
    )
    print(format_summary(metrics))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import os

    from ._demo import progress_printer, stop_on_interrupt
    from ._model import CausCell

    concepts = _split_list(args.concepts)
    if not concepts:
        raise UsageError("--concepts is empty; give obs columns like age,domain,cell_type")
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size < 2:
        raise UsageError(f"--batch-size must be >= 2, got {args.batch_size}")
    if args.max_genes < 1:
        raise UsageError(f"--max-genes must be >= 1, got {args.max_genes}")
    if args.max_time is not None and not args.max_time >= 0:  # negative or NaN; 0 = none
        raise UsageError(f"--max-time must be >= 0 seconds (0: no limit), got {args.max_time}")
    if args.devices < 1 or args.nodes < 1:
        raise UsageError("--devices and --nodes must be >= 1")
    if not 0 <= args.node_rank < args.nodes:
        raise UsageError(f"--node-rank must be in 0..{args.nodes - 1}, got {args.node_rank}")
    in_launcher = "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", 1)) > 1
    out = Path(args.out)
    if not in_launcher:
        from ._model import check_model_target
        from ._safe_io import check_writable
        from ._utils import pick_device

        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a folder")
        check_model_target(out, args.overwrite)  # before training, not after it
        check_writable(out, directory=True)
        if args.device is not None:
            pick_device(args.device)  # "--device foo": one line now, not a traceback later
        if args.devices * args.nodes > 1:
            return _launch_distributed(args)
    rank, world, device = 0, 1, args.device
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        rank, world, device = _init_distributed(args.device)
    say = print if rank == 0 else (lambda *a, **k: None)
    data = _read_data(args.data, backed=args.backed, table_key=args.table_key)
    model = CausCell(
        data, concepts, args.dag, table_key=args.table_key, layer=args.layer,
        log_normalized=args.log_normalized, max_genes=args.max_genes, seed=args.seed,
        device=device,
    )
    say(model if world == 1 else f"{model} x {world} processes (DistributedDataParallel)")
    t0 = time.perf_counter()
    callbacks = [] if args.quiet or rank else [progress_printer(print)]
    with stop_on_interrupt(model):
        model.train(args.epochs, batch_size=args.batch_size, max_time=args.max_time or None,
                    callbacks=callbacks, precision=args.precision)
    if not model.is_trained:  # stopped before its first step: nothing worth saving
        print("error: training was stopped before its first step; nothing was saved",
              file=sys.stderr)
        return 130
    say(f"Trained in {time.perf_counter() - t0:.1f} s")
    say("\n".join(_training_summary(model)))
    if rank == 0:
        model.save(out, overwrite=args.overwrite)
        print(f"Saved the model to {out}/")
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


def cmd_counterfactual(args: argparse.Namespace) -> int:
    from . import _safe_io, tl
    from ._demo import quiet_zarr_warnings
    from ._model import CausCell
    from .data import is_spatialdata, resolve_table

    do = _assignments(args.do, "--do")
    where = _assignments(args.where, "--where", multi=True)
    if not do:
        raise UsageError("give at least one --do CONCEPT=LABEL")
    out, data_path = Path(args.out), Path(args.data)
    if out.suffix not in (".h5ad", ".zarr"):
        raise UsageError(f"--out must end in .h5ad or .zarr, got {out.name!r}")
    in_place = out.suffix == ".zarr" and out.exists() and data_path.exists() and (
        out.resolve() == data_path.resolve())
    if out.suffix == ".h5ad" and out.is_dir():
        raise IsADirectoryError(f"{out} is a directory; refusing to replace it with a file")
    if out.suffix == ".zarr" and out.exists() and not in_place:
        if not out.is_dir():
            raise NotADirectoryError(f"{out} exists and is not a folder; refusing to replace it")
        if not _safe_io.is_zarr_store(out):
            raise FileExistsError(f"{out} is a folder but not a .zarr store; refusing to "
                                  "replace it")
    if out.exists() and not in_place and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.n_samples < 1:
        raise UsageError(f"--n-samples must be >= 1, got {args.n_samples}")
    if args.key is not None and not args.key.strip():
        raise UsageError("--key is empty")
    _safe_io.check_writable(out, directory=out.suffix == ".zarr")

    model = CausCell.load(args.model, device=args.device)
    data = _read_data(data_path)
    spatial = is_spatialdata(data)
    if out.suffix == ".zarr" and not spatial:
        raise UsageError("a .zarr output needs SpatialData input; write .h5ad instead")
    if out.suffix == ".zarr" and args.n_samples > 1:
        raise UsageError("--n-samples > 1 repeats cells, which a SpatialData table cannot "
                         "annotate; write .h5ad instead")
    source_key = resolve_table(data, args.table_key)[1]
    key = args.key or tl._counterfactual._table_name(do)
    into_zarr = spatial and out.suffix == ".zarr"  # the table is written into the SpatialData
    if into_zarr:  # checked before any work
        if key == source_key:
            raise UsageError(f"--key {key!r} is the input table; it is never replaced. "
                             "Choose another --key")
        if key in data.tables and not args.overwrite:
            raise FileExistsError(f"{data_path} already holds table {key!r}; pass --overwrite "
                                  "or another --key")
    if spatial and out.suffix == ".h5ad":  # the table alone: SpatialData stays untouched
        data = resolve_table(data, args.table_key)[0]

    # compute first: nothing is written to disk when this fails; an .h5ad gets the
    # counterfactual alone (copy=True)
    cf = tl.counterfactual(
        data, model, do, cells=where or None, table_key=args.table_key, key_added=key,
        copy=not into_zarr, overwrite=args.overwrite, donor=args.donor, hard=not args.soft,
        sampler=args.sampler, steps=args.steps, n_samples=args.n_samples, seed=args.seed,
    )
    if into_zarr:
        cf = data.tables[key]

    if out.suffix == ".h5ad":  # a whole file under a hidden name, then one rename
        tmp = _safe_io.temp_sibling(out)
        with _cleanup_on_error(tmp):
            cf.write_h5ad(tmp)
            _safe_io.kill_point("h5ad-written")
            _safe_io.replace_file(tmp, out)
    elif in_place:  # new table under a hidden name, then swapped with the old one
        _safe_io.write_table_in_place(data, key)
    else:  # a whole store under a hidden name, then swapped with the old one
        _safe_io.remove_leftovers(out)
        tmp = _safe_io.temp_sibling(out)
        with quiet_zarr_warnings(), _cleanup_on_error(tmp):
            data.write(tmp, overwrite=True)
            _safe_io.kill_point("zarr-written")
            _safe_io.replace_dir(tmp, out)

    what = f" where {_describe_where(where)}" if where else ""
    dos = ", ".join(f"{k}={v}" for k, v in do.items())
    print(f"Counterfactual do({dos}) for {cf.n_obs} cells{what}")
    top = tl.top_changed_genes(cf, n=args.top)
    if len(top):
        print(f"Top {len(top)} changed genes (mean counterfactual - reconstructed, log1p):")
        for row in top.itertuples(index=False):
            print(f"  {row.gene:<14}{row.mean_change:+.4f}")
    target = f"{out} (table {key!r})" if out.suffix == ".zarr" else str(out)
    print(f"Wrote {target}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ._model import META_FILE, CausCell
    from ._version import __version__

    model = CausCell.load(args.model, device="cpu")
    meta = json.loads((Path(args.model) / META_FILE).read_text())
    if args.json:
        keep = ("version", "format_version", "genes", "concepts", "dag", "seed", "layer",
                "log_normalized", "table_key", "config", "train_params", "is_trained")
        info = {k: meta.get(k) for k in keep}
        info["n_genes"] = len(model.genes)
        info["history_last"] = model.history[-1] if model.history else None
        print(json.dumps(info, indent=1))
        return 0
    n_params = sum(p.numel() for p in model.module.parameters())
    dag = ", ".join(f"{a}->{b}" for a, b in model.edges) or "none (independent concepts)"
    genes = model.genes
    lines = [
        f"CausCell model {args.model}",
        f"  saved with napari-causcell {meta.get('version', '?')} "
        f"(installed {__version__}); {n_params:,} parameters",
        f"  genes: {len(genes)} ({', '.join(genes[:5])}{', ...' if len(genes) > 5 else ''})",
        f"  input: {'layer ' + repr(model.layer) if model.layer else '.X'}, "
        f"{'log-normalised' if model.log_normalized else 'raw counts'}"
        + (f", table {model.table_key!r}" if model.table_key else ""),
        "  concepts:",
    ]
    for name in model.concepts:
        labels = model.concept_space.categories[name]
        lines.append(f"    {name} ({len(labels)}): {', '.join(labels)}")
    lines += [f"  DAG: {dag}", "Training:"] + _training_summary(model)
    print("\n".join(lines))
    return 0


# -- parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``napari-causcell`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's option only overrides the global one when given
    common.add_argument(
        "--threads", type=int, default=argparse.SUPPRESS, metavar="N",
        help=f"CPU threads for torch (default {DEFAULT_THREADS}; 0 = torch's own choice). "
             "More threads than free cores is very slow on shared machines.")
    common.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="CausCell: causal disentanglement and counterfactual generation for "
                    "single-cell and spatial omics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                        help=f"CPU threads for torch (default {DEFAULT_THREADS}; 0 = torch's "
                             "own choice). More threads than free cores is very slow on "
                             "shared machines.")
    parser.add_argument("--traceback", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "demo", parents=[common],
        help="simulated, then real MERFISH brain aging: train, intervene, score",
        description="Simulate brain-aging tissue, train CausCell (concepts age, domain, "
                    "cell_type; DAG age->cell_type<-domain), generate do(age=90wk) for the 4wk "
                    "cells, and score it against the exact simulated counterfactual. Then train "
                    "on the shipped real MERFISH brain-aging data (one mouse per age), generate "
                    "do(age=old) for the young cells and compare the predicted change of known "
                    "ageing genes with the observed old - young difference.")
    p.add_argument("--out", default="causcell_demo", metavar="DIR",
                   help="output folder (default causcell_demo/; demo files are overwritten)")
    p.add_argument("--n-cells", type=int, default=6000, metavar="N", help="default 6000")
    p.add_argument("--epochs", type=int, default=300, metavar="E", help="default 300")
    p.add_argument("--max-time", type=float, default=150.0, metavar="S",
                   help="training time limit in seconds (default 150; 0 = none)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"DDIM sampling steps (default {DEFAULT_STEPS})")
    p.add_argument("--seed", type=int, default=0, help="seed of data and model (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default automatic)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.add_argument("--real-epochs", type=int, default=300, metavar="E",
                   help="epochs on the real MERFISH data (default 300)")
    p.add_argument("--real-max-time", type=float, default=60.0, metavar="S",
                   help="training time limit on the real data in seconds (default 60; 0 = none)")
    p.add_argument("--no-real", action="store_true",
                   help="skip the real MERFISH data (simulated tissue only)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "train", parents=[common], help="train a model on .h5ad or SpatialData .zarr",
        description="Train CausCell and save the model folder.")
    p.add_argument("data", metavar="DATA", help=".h5ad file or SpatialData .zarr folder")
    p.add_argument("--concepts", required=True, metavar="C1,C2,...",
                   help="categorical obs columns, e.g. age,domain,cell_type")
    p.add_argument("--dag", default="", metavar="EDGES",
                   help='causal edges, e.g. "age->cell_type,domain->cell_type" (default "": '
                        "independent concepts)")
    p.add_argument("--out", required=True, metavar="DIR", help="model folder to write")
    p.add_argument("--table-key", default=None, metavar="K", help="SpatialData table")
    p.add_argument("--layer", default=None, metavar="L", help="layer with counts (default .X)")
    p.add_argument("--log-normalized", action="store_true",
                   help="the matrix is already log1p-normalised (default: raw counts)")
    p.add_argument("--max-genes", type=int, default=2000, metavar="G",
                   help="keep this many highly variable genes above it (default 2000)")
    p.add_argument("--epochs", type=int, default=200, metavar="E", help="default 200")
    p.add_argument("--batch-size", type=int, default=256, metavar="B",
                   help="cells per step, shared by all processes (default 256)")
    p.add_argument("--max-time", type=float, default=None, metavar="S",
                   help="training time limit in seconds (default none)")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default automatic)")
    p.add_argument("--backed", action="store_true",
                   help="keep the matrix on disk and read minibatches from it (.h5ad backed "
                        "mode, or the .zarr table read lazily)")
    p.add_argument("--precision", choices=("32", "bf16"), default="32",
                   help="bf16: bfloat16 autocast on CUDA (default 32)")
    p.add_argument("--devices", type=int, default=1, metavar="N",
                   help="data-parallel processes per node (GPUs, or CPU processes on gloo); "
                        "N > 1 launches torchrun (default 1)")
    p.add_argument("--nodes", type=int, default=1, metavar="M",
                   help="machines; run the same command on each with --node-rank (default 1)")
    p.add_argument("--node-rank", type=int, default=0, metavar="R", help="this node (default 0)")
    p.add_argument("--master-addr", default=None, metavar="HOST",
                   help="address of node 0 (needed with --nodes > 1)")
    p.add_argument("--master-port", type=int, default=29500, metavar="PORT",
                   help="port on node 0 (default 29500)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "counterfactual", parents=[common], help="generate cells under an intervention",
        description="Counterfactual expression under do(CONCEPT=LABEL) for the chosen cells. "
                    "Writes an .h5ad (the counterfactual AnnData) or, for SpatialData input, a "
                    ".zarr with the counterfactual as a new table (OUT may be DATA itself).")
    p.add_argument("model", metavar="MODEL", help="model folder (from train)")
    p.add_argument("data", metavar="DATA", help=".h5ad file or SpatialData .zarr folder")
    p.add_argument("--do", action="append", required=True, metavar="CONCEPT=LABEL",
                   help="intervention; repeat for several concepts")
    p.add_argument("--where", action="append", metavar="COLUMN=LABEL[,LABEL]",
                   help="cells to intervene on; repeats are AND-ed, comma labels OR-ed "
                        "(default all cells)")
    p.add_argument("--out", required=True, metavar="F", help="output .h5ad or .zarr")
    p.add_argument("--key", default=None,
                   help="name of the new table (default causcell_<concept>_<label>)")
    p.add_argument("--table-key", default=None, metavar="K", help="SpatialData input table")
    p.add_argument("--sampler", choices=("mean", "ddim", "ddpm"), default="mean", help="mean: expected expression (default); ddim/ddpm: one sample per cell")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"DDIM steps (default {DEFAULT_STEPS})")
    p.add_argument("--donor", choices=("random", "mean"), default="random",
                   help="token of a random training cell with the label, or the label's mean")
    p.add_argument("--soft", action="store_true",
                   help="soft intervention (swap the exogenous part only) instead of do()")
    p.add_argument("--n-samples", type=int, default=1, metavar="N",
                   help="samples per cell (default 1)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default the model's)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default automatic)")
    p.add_argument("--top", type=int, default=10, help="changed genes to print (default 10)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_counterfactual)

    p = sub.add_parser("info", parents=[common], help="describe a saved model",
                       description="Version, genes, concepts, DAG and training of a model.")
    p.add_argument("model", metavar="MODEL", help="model folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)
    return parser


def _version() -> str:
    from ._version import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad usage or input)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 0
    args.argv = argv  # re-used by --devices/--nodes to launch the same command under torchrun
    try:
        import torch

        if args.threads < 0:
            raise UsageError(f"--threads must be >= 0, got {args.threads}")
        if args.threads:
            torch.set_num_threads(args.threads)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - filtered just below
        if args.traceback or not isinstance(err, _user_errors()):
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
