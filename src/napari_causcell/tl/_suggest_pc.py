"""causal-learn's PC on the concept codes, reading its graph and test cache, and the
chi-square / G statistics reported next to its p-values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def ci_statistic(codes: np.ndarray, x: int, y: int, given: Sequence[int] = (),
                 gsq: bool = False) -> tuple[float, int, float, float]:
    """Stratified chi-square (or G) statistic of ``x`` vs ``y`` given ``given``.

    The same statistic and degrees of freedom as causal-learn's ``chisq``/``gsq`` test (empty
    strata dropped; rows or columns empty within a stratum do not count towards the degrees
    of freedom), recomputed here only to report them next to causal-learn's p-value.

    Returns
    -------
    statistic, dof, p_value, cells_per_cell
        ``cells_per_cell`` is the mean number of cells per table cell (low = weak test).
    """
    from scipy.stats import chi2

    given = list(given)
    if given:
        strata = np.unique(codes[:, given], axis=0, return_inverse=True)[1].ravel()
    else:
        strata = np.zeros(len(codes), dtype=np.int64)
    k = int(strata.max()) + 1
    rx, ry = int(codes[:, x].max()) + 1, int(codes[:, y].max()) + 1
    table = np.zeros((k, rx, ry))
    np.add.at(table, (strata, codes[:, x], codes[:, y]), 1.0)
    sx, sy, n = table.sum(2), table.sum(1), table.sum((1, 2))
    expected = sx[:, :, None] * sy[:, None, :] / n[:, None, None]
    zero = expected == 0
    safe = np.where(zero, 1.0, expected)
    if gsq:
        ratio = np.where(table > 0, table / safe, 1.0)
        stat = float(2.0 * np.sum(table * np.log(ratio)))
    else:
        stat = float(np.sum((table - expected) ** 2 / safe))
    rows0 = zero.all(axis=2).sum(axis=1)
    cols0 = zero.all(axis=1).sum(axis=1)
    dof = int(np.sum((rx - 1 - rows0) * (ry - 1 - cols0)))
    p = 1.0 if dof <= 0 else float(chi2.sf(stat, dof))
    return stat, dof, p, float(len(codes) / (k * rx * ry))


def _cramers_v(stat: float, n: int, rx: int, ry: int) -> float:
    m = min(rx, ry) - 1
    return float(np.sqrt(stat / (n * m))) if m > 0 and n > 0 else float("nan")


def _read_graph(graph: np.ndarray, concepts: Sequence[str]) -> dict[frozenset, tuple[str, ...]]:
    """causal-learn's endpoint matrix -> ``{pair: ("->", a, b) | ("--", a, b) | ("<->", a, b)}``."""
    out: dict[frozenset, tuple[str, ...]] = {}
    n = len(concepts)
    for i in range(n):
        for j in range(i + 1, n):
            gij, gji = graph[i, j], graph[j, i]
            a, b = concepts[i], concepts[j]
            if gij == 0 and gji == 0:
                continue
            if gij == -1 and gji == 1:
                out[frozenset((a, b))] = ("->", a, b)
            elif gij == 1 and gji == -1:
                out[frozenset((a, b))] = ("->", b, a)
            elif gij == 1 and gji == 1:
                out[frozenset((a, b))] = ("<->", a, b)
            else:
                out[frozenset((a, b))] = ("--", a, b)
    return out


def _run_pc(codes: np.ndarray, concepts: list[str], alpha: float, test: str, bk: Any) -> Any:
    from causallearn.search.ConstraintBased.PC import pc

    return pc(codes.astype(float), alpha=alpha, indep_test=test, stable=True,
              background_knowledge=bk, show_progress=False, node_names=list(concepts))


def _parse_cache(cache: Mapping[str, Any]) -> list[tuple[int, int, tuple[int, ...], float]]:
    out = []
    for key, p in cache.items():
        if ";" not in key:
            continue
        xy, _, given = key.partition("|")
        x, y = (int(v) for v in xy.split(";"))
        s = tuple(int(v) for v in given.split(".")) if given else ()
        out.append((x, y, s, float(p)))
    return out
