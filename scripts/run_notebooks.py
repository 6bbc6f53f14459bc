"""Execute the example notebooks (nbclient), optionally saving their outputs in place.

    .venv/bin/python scripts/run_notebooks.py            # run all, keep files unchanged
    .venv/bin/python scripts/run_notebooks.py --write    # run all and store the outputs
    .venv/bin/python scripts/run_notebooks.py examples/01_quickstart.ipynb

Each notebook runs in its own folder with OMP_NUM_THREADS=1; a failing cell fails the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(path: Path, *, timeout: int = 600, env: dict | None = None):
    """Execute ``path`` in its folder; return the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--write", action="store_true", help="save the executed notebooks")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "examples").glob("*.ipynb"))
    for path in paths:
        start = time.perf_counter()
        nb = run_notebook(path)
        print(f"{path.name}: ran in {time.perf_counter() - start:.0f} s")
        if args.write:
            nbformat.write(nb, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
