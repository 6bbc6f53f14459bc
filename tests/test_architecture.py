"""Gates on the package's shape (issue 25): no import cycle, no layer importing a higher one,
and no file or function too long to read in one sitting.

The import graph is built with ``ast`` from ``src/napari_causcell``: every ``import`` counts,
at module level or inside a function (a lazy import still ties the two modules together),
except those under ``if TYPE_CHECKING:``. Importing ``a.b.c`` also runs the packages ``a.b``
(unless the importer lives inside it); the root package is left out (it imports only its
version and loads the rest lazily by name).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "napari_causcell"
PKG = SRC / ROOT

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60  # from ``def`` to the last line, docstring included

#: files still being split (the size test is an expected failure there); empty since Core v2
PENDING: set[str] = set()

#: functions allowed over the limit, ``"path::function": "why"`` (keep this short)
EXCEPTIONS: dict[str, str] = {}


# -- the import graph ------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that module ``name`` (file ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            mod = ".".join([*base, node.module] if node.module else base)
        else:
            mod = node.module or ""
        for alias in node.names:
            sub = f"{mod}.{alias.name}"
            targets.add(sub if sub in modules else mod)
    out = set()
    for target in targets:
        while target and target not in modules:  # "pkg.mod.attr" -> "pkg.mod"
            target = target.rpartition(".")[0]
        if not target or target == ROOT:
            continue
        out.add(target)
        parent = target.rpartition(".")[0]
        while parent and parent != ROOT:  # importing a.b.c runs a.b first
            if not (name == parent or name.startswith(parent + ".")):
                out.add(parent)
            parent = parent.rpartition(".")[0]
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of this package it imports}``."""
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path ``a -> b -> ... -> a``) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan, iterative over a small graph is not needed
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(comp)) for comp in components]


def _cycle_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest cycle through the alphabetically first module of a component."""
    start = min(comp)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)  # pragma: no cover - a component always holds a cycle


def _in(module: str, *names: str) -> bool:
    return any(module == f"{ROOT}.{n}" or module.startswith(f"{ROOT}.{n}.") for n in names)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_lazy_imports_and_skips_type_checking(tmp_path):
    modules = {f"{ROOT}.a": Path(), f"{ROOT}.b": Path(), f"{ROOT}.c": Path()}
    code = ("from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from . import c\n"
            "def f():\n    from .b import thing\n")
    path = tmp_path / "a.py"
    path.write_text(code)
    assert _imported(f"{ROOT}.a", path, modules) == {f"{ROOT}.b"}
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycle(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


UI = ("_napari", "jupyter", "app")
TOOLS_AND_UP = ("_model", "tl", "pl", "cli", "_demo", "_demo_real", "_demo_common", "demo",
                "_console", "datasets", *UI)

#: (layer, what it may not import, or ``None`` with ``only``: what it may import alone)
RULES = [
    ("io", TOOLS_AND_UP),
    ("data", UI + ("cli", "_demo", "_demo_real", "demo")),
    ("errors", None),  # imports nothing of the package
    ("model", None),  # pure torch: only itself
    ("stats", None),  # numpy / scipy only: only itself and the errors
    ("datasets", ("tl", "pl", *UI, "cli", "_demo", "demo")),
    ("_napari", ("jupyter",)),
    ("jupyter", ("_napari",)),
]
ALLOWED_ALONE = {"errors": (), "model": ("model",), "stats": ("stats", "errors")}


@pytest.mark.parametrize(("layer", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_no_layer_imports_a_higher_one(graph, layer, forbidden):
    bad = []
    for module, targets in graph.items():
        if not _in(module, layer):
            continue
        for target in targets:
            if forbidden is None:
                if not _in(target, *ALLOWED_ALONE[layer]):
                    bad.append(f"{module} -> {target}")
            elif _in(target, *forbidden):
                bad.append(f"{module} -> {target}")
    assert not bad, f"{layer} imports a higher layer:\n" + "\n".join(sorted(bad))


# -- sizes -----------------------------------------------------------------------------------
def _size_problems(path: Path) -> list[str]:
    rel = path.relative_to(PKG).as_posix()
    text = path.read_text()
    problems = []
    if text.count("\n") > MAX_FILE_LINES:
        problems.append(f"{rel}: {text.count(chr(10))} lines (> {MAX_FILE_LINES})")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES and f"{rel}::{node.name}" not in EXCEPTIONS:
                problems.append(f"{rel}::{node.name}: {n} lines (> {MAX_FUNCTION_LINES})")
    return problems


def _size_cases() -> list:
    cases = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        marks = [pytest.mark.xfail(reason="being split in this change", strict=False)] \
            if rel in PENDING else []
        cases.append(pytest.param(path, id=rel, marks=marks))
    return cases


@pytest.mark.parametrize("path", _size_cases())
def test_file_and_function_sizes(path):
    problems = _size_problems(path)
    assert not problems, "\n".join(problems)


def test_exceptions_are_still_needed():
    for key in EXCEPTIONS:
        rel, _, func = key.partition("::")
        path = PKG / rel
        assert path.is_file(), f"EXCEPTIONS names a missing file: {key}"
        sizes = [n.end_lineno - n.lineno + 1 for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == func]
        assert sizes and max(sizes) > MAX_FUNCTION_LINES, f"{key} is short now: remove it"
