"""``napari-causcell counterfactual``: generate cells under an intervention and write them.

Every check runs before any work; the result is written atomically (a whole file or store
under a hidden name, then one rename; a new table in a store swapped with the old one).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import (
    UsageError,
    assignments,
    check_data_input,
    check_model_input,
    cleanup_on_error,
    describe_where,
)
from ._messages import check_where


def cmd_counterfactual(args: argparse.Namespace) -> int:
    """Load the model and data, compute the counterfactual, write it, print the top genes."""
    from .. import tl
    from .._model import CausCell
    from ..data import is_spatialdata, resolve_table
    from ..io import read_data
    from ..tl._switches import confound_note

    do, where, out, data_path, in_place = _checked_request(args)
    model = CausCell.load(args.model, device=args.device)
    data = read_data(data_path)
    spatial = is_spatialdata(data)
    if out.suffix == ".zarr" and not spatial:
        raise UsageError("a .zarr output needs SpatialData input; write .h5ad instead")
    if out.suffix == ".zarr" and args.n_samples > 1:
        raise UsageError("--n-samples > 1 repeats cells, which a SpatialData table cannot "
                         "annotate; write .h5ad instead")
    source_key = resolve_table(data, args.table_key)[1]
    key = args.key or tl.counterfactual_table_name(do)
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
    table = resolve_table(data, args.table_key)[0]  # the cells intervened on, and their table
    check_where(table.obs, where)  # labels listed if unknown

    # compute first: nothing is written to disk when this fails; an .h5ad gets the
    # counterfactual alone (copy=True)
    cf = tl.counterfactual(
        data, model, do, cells=where or None, table_key=args.table_key, key_added=key,
        copy=not into_zarr, overwrite=args.overwrite, donor=args.donor, hard=not args.soft,
        hold=args.hold or None, unseen=args.unseen,
        sampler=args.sampler, steps=args.steps, n_samples=args.n_samples, seed=args.seed,
    )
    if into_zarr:
        cf = data.tables[key]
    _write(out, in_place, data, cf, key)
    intervals = None if args.no_intervals else _intervals(args, model, table, do, where, cf)
    _report(args, cf, do, where, out, key, confound_note(cf, data, table_key=source_key),
            intervals)
    return 0


def _intervals(args: argparse.Namespace, model: Any, table: Any, do: dict, where: dict,
               cf: Any) -> Any:
    """90 % intervals of the intervened cells' mean change (``tl.change_intervals``, one
    group, reusing ``cf``); the reason as a string when they cannot be computed (the
    counterfactual, already written, stands without them)."""
    from ..tl._intervals import change_intervals

    settings = dict(hold=args.hold or None, donor=args.donor, hard=not args.soft,
                    unseen=args.unseen, sampler=args.sampler, steps=args.steps)
    if args.seed is not None:
        settings["seed"] = args.seed
    try:
        return change_intervals(model, table, do, cells=where or None, groupby=None,
                                level=0.9, counterfactual=cf, **settings)
    except Exception as err:  # an add-on: its failure never costs the result
        return f"{type(err).__name__}: {err}"


def _checked_request(args: argparse.Namespace) -> tuple[dict, dict, Path, Path, bool]:
    """``do``, ``where``, the output and data paths and whether the output is the input
    store, after every check that needs no data (the output can be written, ...)."""
    from ..io import check_writable, is_zarr_store
    from ..io._store import is_same_file

    do = assignments(args.do, "--do")
    where = assignments(args.where, "--where", multi=True)
    if not do:
        raise UsageError("give at least one --do CONCEPT=LABEL")
    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    out, data_path = Path(args.out), Path(args.data)
    if out.suffix not in (".h5ad", ".zarr"):
        raise UsageError(f"--out must end in .h5ad or .zarr, got {out.name!r}")
    check_model_input(args.model)
    check_data_input(data_path)
    if out.suffix == ".h5ad" and is_same_file(out, data_path):  # a link or hard link too
        raise UsageError(f"--out {out} is the input DATA; the input is never replaced. "
                         "Choose another --out")
    in_place = out.suffix == ".zarr" and out.exists() and data_path.exists() and (
        out.resolve() == data_path.resolve())
    if out.suffix == ".h5ad" and out.is_dir():
        raise IsADirectoryError(f"{out} is a directory; refusing to replace it with a file")
    if out.suffix == ".zarr" and out.exists() and not in_place:
        if not out.is_dir():
            raise NotADirectoryError(f"{out} exists and is not a folder; refusing to replace it")
        if not is_zarr_store(out):
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
    check_writable(out, directory=out.suffix == ".zarr")
    return do, where, out, data_path, in_place


def _write(out: Path, in_place: bool, data: Any, cf: Any, key: str) -> None:
    """Write the result atomically: an ``.h5ad`` file, a table into the input store, or a
    whole new store."""
    from .. import io

    if out.suffix == ".h5ad":  # a whole file under a hidden name, then one rename
        io.remove_leftovers(out)  # what a killed earlier write left
        tmp = io.temp_sibling(out)
        with cleanup_on_error(tmp):
            cf.write_h5ad(tmp)
            io.kill_point("h5ad-written")
            io.replace_file(tmp, out)
    elif in_place:  # new table under a hidden name, then swapped with the old one
        io.write_table_in_place(data, key)
    else:  # a whole store under a hidden name, then swapped with the old one
        io.remove_leftovers(out)
        tmp = io.temp_sibling(out)
        with io.quiet_zarr_warnings(), cleanup_on_error(tmp):
            data.write(tmp, overwrite=True)
            io.kill_point("zarr-written")
            io.replace_dir(tmp, out)


def _report(args: argparse.Namespace, cf: Any, do: dict, where: dict, out: Path,
            key: str, confound: str = "", intervals: Any = None) -> None:
    """What was done, the labels that changed (and a possible sampling confound), the top
    changed genes (with their 90 % intervals, or why there are none) and where the result
    went."""
    from .. import tl

    what = f" where {describe_where(where)}" if where else ""
    dos = ", ".join(f"{k}={v}" for k, v in do.items())
    held = f", holding {', '.join(args.hold)}" if args.hold else ""
    print(f"Counterfactual do({dos}) for {cf.n_obs} cells{what}{held}")
    switches = tl.switch_summary(cf)
    if switches:
        print(f"Labels changed: {switches} (--hold CONCEPT keeps them)")
        if confound:
            print(confound.strip())
    with_iv = intervals if hasattr(intervals, "columns") else None
    top = tl.top_changed_genes(cf, n=args.top, intervals=with_iv)
    if len(top):
        print(f"Top {len(top)} changed genes (mean counterfactual - reconstructed, log1p"
              + ("; 90 % interval)" if with_iv is not None else "):"))
        for line in _top_lines(top):
            print(line)
        if isinstance(intervals, str):
            print(f"No intervals: {intervals}")
    target = f"{out} (table {key!r})" if out.suffix == ".zarr" else str(out)
    print(f"Wrote {target}")


def _top_lines(top: Any) -> list[str]:
    """``"  Gene  +0.1234"`` per gene, with ``" [+0.05, +0.20]"`` where ``top`` has intervals
    and ``"  includes 0"`` where the interval does."""
    if "lower" not in top:
        return [f"  {r.gene:<14}{r.mean_change:+.4f}" for r in top.itertuples(index=False)]
    return [f"  {r.gene:<14}{r.mean_change:+.4f} [{r.lower:+.2f}, {r.upper:+.2f}]"
            + ("  includes 0" if r.spans_zero else "") for r in top.itertuples(index=False)]
