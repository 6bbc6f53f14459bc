"""The ``napari-causcell`` argument parser: one function per subcommand."""

from __future__ import annotations

import argparse
from typing import Any

from .._constants import DEFAULT_STEPS
from ._common import DEFAULT_THREADS, PROG, version
from ._counterfactual import cmd_counterfactual
from ._demo_cmd import cmd_demo
from ._info import cmd_info
from ._train import cmd_train


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                        help=f"CPU threads for torch (default {DEFAULT_THREADS}; 0 = torch's "
                             "own choice). More threads than free cores is very slow on "
                             "shared machines.")
    parser.add_argument("--traceback", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_demo, _add_train, _add_counterfactual, _add_info):
        add(sub, common)
    return parser


def _add_demo(sub: Any, common: argparse.ArgumentParser) -> None:
    """``demo``: the simulated tissue, then the real MERFISH data."""
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
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"DDIM sampling steps (default {DEFAULT_STEPS})")
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

def _add_train(sub: Any, common: argparse.ArgumentParser) -> None:
    """``train``: train a model and save its folder."""
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

def _add_counterfactual(sub: Any, common: argparse.ArgumentParser) -> None:
    """``counterfactual``: generate cells under an intervention."""
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
    p.add_argument("--sampler", choices=("mean", "ddim", "ddpm"), default="mean",
                   help="mean: expected expression (default); ddim/ddpm: one sample per cell")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"DDIM steps (default {DEFAULT_STEPS})")
    p.add_argument("--donor", choices=("random", "mean"), default="random",
                   help="token of a random training cell with the label, or the label's mean")
    p.add_argument("--soft", action="store_true",
                   help="soft intervention (swap the exogenous part only) instead of do()")
    p.add_argument("--hold", action="append", metavar="CONCEPT",
                   help="keep each cell's own label of CONCEPT (e.g. cell_type: 'this cell, "
                        "with its type, under do()', the direct effect); repeat for several")
    p.add_argument("--unseen", choices=("average", "blend", "decoder"), default="average",
                   help="cells whose label combination was never measured: the change "
                        "transported from measured labels (average, default), its mean with "
                        "the decoder's own (blend: better for type-specific effects), or the "
                        "decoder's alone")
    p.add_argument("--n-samples", type=int, default=1, metavar="N",
                   help="samples per cell (default 1)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default the model's)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default automatic)")
    p.add_argument("--top", type=int, default=10, help="changed genes to print (default 10)")
    p.add_argument("--no-intervals", action="store_true",
                   help="print the top genes without their 90 %% intervals (the intervals run "
                        "one more counterfactual, on the model's validation cells)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_counterfactual)

def _add_info(sub: Any, common: argparse.ArgumentParser) -> None:
    """``info``: describe a saved model."""
    p = sub.add_parser("info", parents=[common], help="describe a saved model",
                       description="Version, genes, concepts, DAG and training of a model.")
    p.add_argument("model", metavar="MODEL", help="model folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)
