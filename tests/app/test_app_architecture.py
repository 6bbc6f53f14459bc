"""The layers: who may import whom, and the size targets of the app layer and front ends."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "src" / "napari_causcell"
FRONT_AND_APP = ["app", "_napari", "jupyter"]


def _imports(path: Path) -> set[str]:
    """Modules a file imports, resolved to ``napari_causcell....`` names where relative."""
    package = ".".join(("napari_causcell", *path.relative_to(PKG).parent.parts))
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            mod = ".".join([*base, node.module] if node.level and node.module
                           else base if node.level else [node.module])
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def test_app_imports_no_gui():
    code = ("import sys, napari_causcell.app\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt5', "
            "'PyQt6', 'PySide2', 'PySide6', 'ipywidgets', 'magicgui')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("tl", ("napari_causcell.pl", "napari_causcell.app", "napari_causcell._napari",
            "napari_causcell.jupyter")),
    ("app", ("napari_causcell._napari", "napari_causcell.jupyter", "qtpy", "ipywidgets",
             "napari")),
    ("_napari", ("napari_causcell.jupyter", "ipywidgets")),
    ("jupyter", ("napari_causcell._napari", "qtpy", "napari")),
])
def test_layer_rules(folder, forbidden):
    for path in (PKG / folder).glob("*.py"):
        bad = [m for m in _imports(path)
               if any(m == f or m.startswith(f + ".") for f in forbidden)]
        assert not bad, f"{path.name} imports {bad}"


def test_size_targets():
    for folder in FRONT_AND_APP:
        for path in (PKG / folder).glob("*.py"):
            text = path.read_text()
            assert text.count("\n") <= 400, f"{folder}/{path.name} has over 400 lines"
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = node.end_lineno - node.lineno + 1
                    assert n <= 60, f"{folder}/{path.name}:{node.name} has {n} lines"
