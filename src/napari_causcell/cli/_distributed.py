"""``train --devices N --nodes M``: the same command again under ``torchrun``, and joining
the process group it sets up."""

from __future__ import annotations

import argparse
import sys

from ._common import UsageError


def launch_distributed(args: argparse.Namespace) -> int:
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


def init_distributed(device: str | None) -> tuple[int, int, str | None]:
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
