"""``napari-causcell train``: train a model on an ``.h5ad`` or SpatialData ``.zarr``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ._common import UsageError, check_data_input, split_list, training_summary
from ._distributed import init_distributed, launch_distributed


def cmd_train(args: argparse.Namespace) -> int:
    """Check everything, train (under ``torchrun`` with several devices), save the folder."""
    from .._console import progress_printer, stop_on_interrupt
    from .._model import CausCell
    from ..io import read_data

    concepts = _checked_concepts(args)
    check_data_input(args.data)  # before any work: a FIFO would block the reader
    in_launcher = "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", 1)) > 1
    out = Path(args.out)
    if not in_launcher:
        _check_output(args, out)
        if args.devices * args.nodes > 1:
            return launch_distributed(args)
    rank, world, device = 0, 1, args.device
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        rank, world, device = init_distributed(args.device)
    say = print if rank == 0 else (lambda *a, **k: None)
    data = read_data(args.data, backed=args.backed, table_key=args.table_key)
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
    say("\n".join(training_summary(model)))
    if rank == 0:
        model.save(out, overwrite=args.overwrite)
        print(f"Saved the model to {out}/")
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


def _checked_concepts(args: argparse.Namespace) -> list[str]:
    """The concepts, after checking every numeric option (before any work)."""
    concepts = split_list(args.concepts)
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
    return concepts


def _check_output(args: argparse.Namespace, out: Path) -> None:
    """Refuse an unusable ``--out`` or ``--device`` now, not after training."""
    from ..io._model_dir import check_model_target
    from .._utils import pick_device
    from ..io import check_writable

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    check_model_target(out, args.overwrite)  # before training, not after it
    check_writable(out, directory=True)
    if args.device is not None:
        pick_device(args.device)  # "--device foo": one line now, not a traceback later
