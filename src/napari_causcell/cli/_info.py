"""``napari-causcell info``: describe a saved model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import check_model_input, training_summary, version


def cmd_info(args: argparse.Namespace) -> int:
    """Print a model folder's version, genes, concepts, DAG and training (or ``--json``)."""
    from .._model import CausCell
    from ..io._model_dir import META_FILE

    check_model_input(args.model)
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
        f"(installed {version()}); {n_params:,} parameters",
        f"  genes: {len(genes)} ({', '.join(genes[:5])}{', ...' if len(genes) > 5 else ''})",
        f"  input: {'layer ' + repr(model.layer) if model.layer else '.X'}, "
        f"{'log-normalised' if model.log_normalized else 'raw counts'}"
        + (f", table {model.table_key!r}" if model.table_key else ""),
        "  concepts:",
    ]
    for name in model.concepts:
        labels = model.concept_space.categories[name]
        lines.append(f"    {name} ({len(labels)}): {', '.join(labels)}")
    lines += [f"  DAG: {dag}", "Training:"] + training_summary(model)
    print("\n".join(lines))
    return 0
