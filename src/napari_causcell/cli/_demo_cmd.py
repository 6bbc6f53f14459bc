"""``napari-causcell demo``: the simulated tissue, then the shipped real MERFISH data."""

from __future__ import annotations

import argparse

from ._common import UsageError


def cmd_demo(args: argparse.Namespace) -> int:
    """Run :func:`napari_causcell._demo.run_demo` and print its summary."""
    from .._demo import format_summary, run_demo

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
