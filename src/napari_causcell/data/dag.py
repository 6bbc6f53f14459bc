"""Concept DAG: validation and adjacency matrices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import DAGError  # re-exported here (the old import location)

Edge = tuple[str, str]


def parse_dag(dag: str | Iterable[Edge] | None) -> list[Edge]:
    """Turn ``"a->b, c->b"`` or an edge list into a list of ``(parent, child)`` tuples."""
    if dag is None:
        return []
    if isinstance(dag, str):
        edges = []
        for part in dag.replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            if "->" not in part:
                raise DAGError(f"Cannot read edge {part!r}: write edges as 'parent->child'.")
            parent, child = (s.strip() for s in part.split("->", 1))
            edges.append((parent, child))
        return edges
    edges = []
    for edge in dag:
        if isinstance(edge, str) or len(edge) != 2:
            raise DAGError(f"Each edge must be a (parent, child) pair, got {edge!r}.")
        edges.append((str(edge[0]), str(edge[1])))
    return edges


def validate_dag(concepts: Sequence[str], dag: str | Iterable[Edge] | None) -> list[Edge]:
    """Check a DAG over ``concepts`` and return its edges without duplicates.

    Raises
    ------
    DAGError
        On an edge naming an unknown concept, a self-loop or a cycle.
    """
    edges = parse_dag(dag)
    known = set(concepts)
    for parent, child in edges:
        for name in (parent, child):
            if name not in known:
                raise DAGError(
                    f"Edge {parent!r} -> {child!r} names unknown concept {name!r}; "
                    f"concepts are {list(concepts)}."
                )
        if parent == child:
            raise DAGError(f"Self-loop on concept {parent!r} is not allowed.")
    unique = list(dict.fromkeys(edges))
    cycle = find_cycle(concepts, unique)
    if cycle:
        raise DAGError("The concept graph has a cycle: " + " -> ".join(cycle) + ".")
    return unique


def find_cycle(concepts: Sequence[str], edges: Sequence[Edge]) -> list[str] | None:
    """Return one cycle as a list of names (first repeated at the end), or ``None``."""
    children: dict[str, list[str]] = {c: [] for c in concepts}
    for parent, child in edges:
        children[parent].append(child)
    state = dict.fromkeys(concepts, 0)  # 0 new, 1 on stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in children[node]:
            if state[nxt] == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state[nxt] == 0:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for c in concepts:
        if state[c] == 0:
            found = visit(c)
            if found:
                return found
    return None


def adjacency(concepts: Sequence[str], edges: Sequence[Edge], n_extra: int = 1) -> np.ndarray:
    """Binary adjacency ``A`` with ``A[i, j] = 1`` when concept ``i`` causes ``j``.

    ``n_extra`` unconnected rows/columns are appended for the unexplained concept ``u``.
    """
    index = {c: i for i, c in enumerate(concepts)}
    k = len(concepts) + n_extra
    a = np.zeros((k, k), dtype=np.float32)
    for parent, child in edges:
        a[index[parent], index[child]] = 1.0
    return a


def descendants(concepts: Sequence[str], edges: Sequence[Edge], node: str) -> set[str]:
    """All concepts reachable from ``node`` (not including it)."""
    children: dict[str, list[str]] = {c: [] for c in concepts}
    for parent, child in edges:
        children[parent].append(child)
    seen: set[str] = set()
    todo = list(children[node])
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(children[n])
    return seen
