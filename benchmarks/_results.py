"""Where benchmark results go: one JSON file per run under ``benchmarks/results/``."""

from __future__ import annotations

import json
from pathlib import Path


def write_result(out: str | Path, name: str, result: dict) -> Path:
    """Write ``result`` as ``<out>/<name>.json`` (folder created), say where, return the path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {path}")
    return path
