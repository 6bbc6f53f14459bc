"""Causal graph assistant: propose the DAG between concepts from their labels.

Structure learning is causal-learn's PC algorithm (``causallearn.search.ConstraintBased.PC``)
with chi-square or G-test conditional-independence tests on the integer-coded labels, and
causal-learn's ``BackgroundKnowledge`` for tiers, forbidden and required edges. Nothing here
searches graphs itself: this module checks inputs, builds the background knowledge, reads the
result and explains it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..data import ConceptError, DAGError, parse_dag, resolve_table, validate_dag
from ..data.dag import find_cycle

__all__ = ["DagSuggestion", "suggest_dag", "compare_dags", "STATUSES"]

Edge = tuple[str, str]

#: Edge statuses in :attr:`DagSuggestion.edges`.
STATUSES = {
    "directed": "oriented by the tests (a v-structure, or the orientation rules after one)",
    "prior": "oriented by your priors (tiers, forbidden or required edges)",
    "undirected": "the data cannot orient it: decide with .orient(parent, child)",
    "user": "oriented by you (.orient / .resolve)",
}
_MAX_FLOAT_LEVELS = 50  # same rule as ConceptSpace: a float column with more is continuous
_EDGE_COLUMNS = ["source", "target", "status", "p_value", "statistic", "dof", "cramers_v",
                 "max_p", "note"]


# -- inputs --------------------------------------------------------------------------------
def _concept_codes(obs: pd.DataFrame, concepts: Sequence[str], max_levels: int
                   ) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Integer codes ``(n_cells, n_concepts)`` and each concept's labels, with clear errors."""
    concepts = [str(c) for c in concepts]
    if len(concepts) < 2:
        raise ConceptError(
            f"A causal graph needs at least two concepts, got {concepts}; pick two or more "
            "categorical obs columns (e.g. age, domain, cell_type)."
        )
    if len(set(concepts)) != len(concepts):
        raise ConceptError(f"Concept names repeat: {concepts}.")
    codes = np.empty((len(obs), len(concepts)), dtype=np.int64)
    levels: dict[str, list[str]] = {}
    for j, name in enumerate(concepts):
        if name not in obs.columns:
            raise ConceptError(
                f"Concept column {name!r} is not in obs; available columns: "
                f"{[str(c) for c in obs.columns]}."
            )
        col = obs[name]
        if col.isna().any():
            raise ConceptError(
                f"Concept {name!r} has {int(col.isna().sum())} missing labels; fill or drop "
                "those cells first."
            )
        n_unique = int(col.nunique())
        is_cat = isinstance(col.dtype, pd.CategoricalDtype)
        if not is_cat and pd.api.types.is_float_dtype(col) and n_unique > _MAX_FLOAT_LEVELS:
            raise ConceptError(
                f"Concept {name!r} looks continuous ({n_unique} distinct float values); the "
                "independence tests need categories: bin it first, e.g. "
                f"obs['{name}_bin'] = pd.qcut(obs['{name}'], 5)."
            )
        if n_unique < 2:
            raise ConceptError(f"Concept {name!r} has a single level; it carries no information.")
        if n_unique > max_levels:
            raise ConceptError(
                f"Concept {name!r} has {n_unique} levels (more than max_levels={max_levels}); "
                "contingency tests need far more cells than table cells: merge rare labels or "
                "bin it."
            )
        if is_cat:
            cats = [c for c in col.cat.categories if (col == c).any()]
            lookup = {c: i for i, c in enumerate(cats)}
            codes[:, j] = col.map(lookup).to_numpy(dtype=np.int64)
            levels[name] = [str(c) for c in cats]
        else:
            uniq, inv = np.unique(col.astype(str).to_numpy(), return_inverse=True)
            codes[:, j] = inv
            levels[name] = [str(u) for u in uniq]
    return codes, levels


def _edge_list(edges: Any, what: str, concepts: Sequence[str]) -> list[Edge]:
    try:
        out = parse_dag(edges)
    except DAGError as err:
        raise DAGError(f"{what}: {err}") from None
    for a, b in out:
        for name in (a, b):
            if name not in concepts:
                raise DAGError(f"{what} edge {a!r} -> {b!r} names {name!r}, which is not one of "
                               f"the concepts {list(concepts)}.")
        if a == b:
            raise DAGError(f"{what} edge {a!r} -> {b!r} is a self-loop.")
    return list(dict.fromkeys(out))


def _tier_map(tiers: Any, concepts: Sequence[str]) -> dict[str, int]:
    """``{concept: tier}``; concepts not named go into one tier after all named ones."""
    if tiers is None:
        return {}
    if isinstance(tiers, Mapping):
        named = {str(k): int(v) for k, v in tiers.items()}
    else:
        if isinstance(tiers, str):
            raise DAGError("tiers must be a list of tiers (earliest first), e.g. "
                           "[['age'], ['domain'], ['cell_type']], or a {concept: tier} dict.")
        named = {}
        for t, tier in enumerate(tiers):
            for name in [tier] if isinstance(tier, str) else list(tier):
                if str(name) in named:
                    raise DAGError(f"Concept {name!r} is in two tiers ({named[str(name)]} and "
                                   f"{t}); put each concept in one tier.")
                named[str(name)] = t
    for name, t in named.items():
        if name not in concepts:
            raise DAGError(f"Tier prior names {name!r}, which is not one of the concepts "
                           f"{list(concepts)}.")
        if t < 0:
            raise DAGError(f"Tier of {name!r} must be >= 0, got {t}.")
    if not named:
        return {}
    last = max(named.values()) + 1
    return {c: named.get(c, last) for c in concepts}


@dataclass(frozen=True)
class _Priors:
    tiers: dict[str, int]
    forbidden: list[Edge]
    required: list[Edge]

    def forbids(self, a: str, b: str) -> bool:
        """Whether ``a -> b`` is excluded by a forbidden edge or the tier order."""
        if (a, b) in self.forbidden:
            return True
        return bool(self.tiers) and self.tiers[a] > self.tiers[b]

    def orients(self, a: str, b: str) -> bool:
        """Whether the priors alone say ``a -> b`` (given that a and b are adjacent)."""
        return (a, b) in self.required or self.forbids(b, a) and not self.forbids(a, b)

    def as_dict(self) -> dict[str, Any]:
        return {"tiers": dict(self.tiers), "forbidden": list(self.forbidden),
                "required": list(self.required)}


def _check_priors(concepts: Sequence[str], tiers: Any, forbidden: Any, required: Any) -> _Priors:
    """Validate priors; contradictions raise :class:`DAGError` before any test runs."""
    tier = _tier_map(tiers, concepts)
    forb = _edge_list(forbidden, "Forbidden", concepts)
    req = _edge_list(required, "Required", concepts)
    for a, b in req:
        if (a, b) in forb:
            raise DAGError(f"Contradictory priors: {a} -> {b} is both required and forbidden.")
        if tier and tier[a] > tier[b]:
            raise DAGError(
                f"Contradictory priors: {a} -> {b} is required but {a!r} is in a later tier "
                f"({tier[a]}) than {b!r} ({tier[b]}); tiers only allow edges from earlier to "
                "later tiers."
            )
    cycle = find_cycle(list(concepts), req)
    if cycle:
        raise DAGError("Contradictory priors: the required edges form a cycle: "
                       + " -> ".join(cycle) + ".")
    return _Priors(tier, forb, req)


def _background(concepts: Sequence[str], priors: _Priors) -> Any:
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.utils.PCUtils.BackgroundKnowledge import BackgroundKnowledge

    bk = BackgroundKnowledge()
    nodes = {c: GraphNode(c) for c in concepts}
    for c, t in priors.tiers.items():
        bk.add_node_to_tier(nodes[c], int(t))
    for a, b in priors.forbidden:
        bk.add_forbidden_by_node(nodes[a], nodes[b])
    for a, b in priors.required:
        bk.add_required_by_node(nodes[a], nodes[b])
    return bk


# -- test statistics -----------------------------------------------------------------------
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


# -- the result ----------------------------------------------------------------------------
@dataclass
class DagSuggestion:
    """A proposed causal graph over concepts, with the evidence behind each edge.

    Attributes
    ----------
    concepts
        The concepts, in the order given.
    edges
        One row per edge: ``source``, ``target``, ``status`` (see :data:`STATUSES`: ``directed``,
        ``prior``, ``undirected``, ``user``), the marginal test of the pair (``p_value``,
        ``statistic``, ``dof``, ``cramers_v``), ``max_p`` (the largest p-value of every test PC
        ran on the pair: the edge stayed because all were <= alpha) and a ``note``. For an
        undirected edge, source/target are in concept order and mean nothing.
    tests
        Every conditional-independence test PC ran: ``x``, ``y``, ``given``, ``statistic``,
        ``dof``, ``p_value`` (the value PC used), ``independent`` (p > alpha) and
        ``cells_per_cell`` (mean cells per table cell; below ~5 the test is weak).
    """

    concepts: list[str]
    edges: pd.DataFrame
    tests: pd.DataFrame
    method: str = "pc"
    alpha: float = 0.01
    test: str = "chisq"
    n_cells: int = 0
    priors: dict[str, Any] = field(default_factory=dict)
    levels: dict[str, list[str]] = field(default_factory=dict)

    # -- reading ----------------------------------------------------------------------------
    @property
    def undirected(self) -> list[Edge]:
        """Edges the user still has to orient."""
        e = self.edges[self.edges["status"] == "undirected"]
        return list(zip(e["source"], e["target"]))

    @property
    def directed(self) -> list[Edge]:
        """Oriented edges ``(parent, child)`` (any status but ``undirected``)."""
        e = self.edges[self.edges["status"] != "undirected"]
        return list(zip(e["source"], e["target"]))

    @property
    def dag(self) -> list[Edge]:
        """The edge list for ``CausCell(..., dag=...)``.

        Raises
        ------
        DAGError
            While undirected edges remain (orient them first), or if the orientations made a
            cycle.
        """
        if self.undirected:
            pairs = ", ".join(f"{a} -- {b}" for a, b in self.undirected)
            raise DAGError(
                f"{len(self.undirected)} edge(s) are undirected: {pairs}. The labels cannot "
                "tell their direction; choose one with .orient(parent, child) or "
                ".resolve([(parent, child), ...]) (or add a tier / required prior)."
            )
        return validate_dag(self.concepts, self.directed)

    @property
    def dag_string(self) -> str:
        """``"a->b,c->b"`` (undirected edges as ``a--b``), e.g. for the command line."""
        parts = [f"{a}->{b}" for a, b in self.directed]
        parts += [f"{a}--{b}" for a, b in self.undirected]
        return ",".join(parts)

    def parents(self) -> dict[str, list[str]]:
        """``{child: [parents]}`` over the oriented edges (every concept is a key)."""
        out: dict[str, list[str]] = {c: [] for c in self.concepts}
        for a, b in self.directed:
            out[b].append(a)
        return out

    def _row(self, a: str, b: str) -> int:
        e = self.edges
        hit = e.index[((e["source"] == a) & (e["target"] == b))
                      | ((e["source"] == b) & (e["target"] == a))]
        if len(hit) == 0:
            have = ", ".join(f"{s}-{t}" for s, t in zip(e["source"], e["target"])) or "none"
            raise DAGError(f"There is no edge between {a!r} and {b!r} in the suggestion "
                           f"(edges: {have}).")
        return int(hit[0])

    # -- resolving --------------------------------------------------------------------------
    def orient(self, parent: str, child: str) -> DagSuggestion:
        """A copy with the edge between ``parent`` and ``child`` oriented ``parent -> child``.

        An edge oriented by your own priors cannot be reversed here (change the priors);
        reversing an edge the tests oriented is allowed and noted.
        """
        i = self._row(parent, child)
        row = self.edges.loc[i]
        same = row["source"] == parent
        if row["status"] == "prior" and not same:
            raise DAGError(f"{row['source']} -> {row['target']} is fixed by your priors; "
                           "change tiers/forbidden/required to reverse it.")
        edges = self.edges.copy()
        if not (same and row["status"] in ("prior", "directed", "user")):
            note = "oriented by you"
            if row["status"] == "directed":
                note += f"; the tests had {row['source']} -> {row['target']}"
            edges.loc[i, ["source", "target", "status", "note"]] = [parent, child, "user", note]
        out = replace(self, edges=edges)
        find = find_cycle(out.concepts, out.directed)
        if find:
            raise DAGError(f"Orienting {parent} -> {child} makes a cycle: "
                           + " -> ".join(find) + ".")
        return out

    def drop(self, a: str, b: str) -> DagSuggestion:
        """A copy without the edge between ``a`` and ``b``."""
        i = self._row(a, b)
        row = self.edges.loc[i]
        if (row["source"], row["target"]) in [tuple(e) for e in self.priors.get("required", [])]:
            raise DAGError(f"{row['source']} -> {row['target']} is a required edge.")
        return replace(self, edges=self.edges.drop(index=i).reset_index(drop=True))

    def resolve(self, orientations: Iterable[Edge] | Mapping[str, str] | str = (), *,
                drop: Iterable[Edge] = ()) -> DagSuggestion:
        """Apply several decisions at once.

        Parameters
        ----------
        orientations
            ``[(parent, child), ...]``, ``"a->b,c->d"`` or ``{parent: child}``.
        drop
            Edges to remove.
        """
        if isinstance(orientations, Mapping):
            orientations = list(orientations.items())
        out = self
        for a, b in parse_dag(orientations):
            out = out.orient(a, b)
        for a, b in drop:
            out = out.drop(a, b)
        return out

    def candidates(self, max_graphs: int = 16) -> list[list[Edge]]:
        """DAGs consistent with the suggestion: every orientation of the undirected edges that
        makes no cycle and no new v-structure (the members of the equivalence class left by
        the tests and priors). At most ``max_graphs``, in a fixed order."""
        fixed, free = self.directed, self.undirected
        adjacent = {frozenset(e) for e in fixed + free}
        fixed_v = _v_structures(fixed, adjacent)
        out: list[list[Edge]] = []
        for flips in itertools.product((False, True), repeat=len(free)):
            edges = fixed + [(b, a) if f else (a, b) for (a, b), f in zip(free, flips)]
            if find_cycle(self.concepts, edges) or _v_structures(edges, adjacent) != fixed_v:
                continue
            out.append(edges)
            if len(out) >= max_graphs:
                break
        return out

    def summary(self) -> str:
        """A few lines of text: edges with their status and evidence."""
        lines = [f"{self.method.upper()} ({self.test}, alpha={self.alpha}) on {self.n_cells} "
                 f"cells, concepts {self.concepts}:"]
        if self.edges.empty:
            lines.append("  no edges: every pair tested independent")
        for r in self.edges.itertuples():
            arrow = "--" if r.status == "undirected" else "->"
            lines.append(f"  {r.source} {arrow} {r.target}  [{r.status}] marginal p={r.p_value:.2g},"
                         f" Cramer's V={r.cramers_v:.2f}; {r.note}")
        if self.undirected:
            lines.append("  decide the undirected edges before training.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"DagSuggestion({self.dag_string or 'no edges'!r}, {len(self.undirected)} undirected)"

    def plot(self, ax: Any = None) -> Any:
        """Draw with :func:`napari_causcell.pl.dag` (the same function; ``tl`` never imports
        ``pl``)."""
        from .._dagplot import dag as draw

        return draw(self, ax=ax)


def _v_structures(edges: Sequence[Edge], adjacent: set[frozenset]) -> set[tuple]:
    parents: dict[str, list[str]] = {}
    for a, b in edges:
        parents.setdefault(b, []).append(a)
    out = set()
    for child, ps in parents.items():
        for p, q in itertools.combinations(sorted(ps), 2):
            if frozenset((p, q)) not in adjacent:
                out.add((p, child, q))
    return out


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


def suggest_dag(
    data: Any,
    concepts: Sequence[str],
    *,
    method: str = "pc",
    alpha: float = 0.01,
    test: str = "chisq",
    tiers: Sequence[Sequence[str] | str] | Mapping[str, int] | None = None,
    forbidden: str | Iterable[Edge] | None = None,
    required: str | Iterable[Edge] | None = None,
    table_key: str | None = None,
    max_levels: int = 100,
) -> DagSuggestion:
    """Propose the causal graph between concept labels (PC with categorical CI tests).

    Parameters
    ----------
    data
        AnnData or SpatialData (``table_key`` picks the table).
    concepts
        Two or more categorical ``obs`` columns.
    method
        ``"pc"`` (causal-learn's PC, stable skeleton, v-structures from the separating sets,
        Meek's orientation rules). No other method is offered yet.
    alpha
        Significance level of every independence test: an edge is removed as soon as one
        test gives p > alpha.
    test
        ``"chisq"`` (Pearson chi-square) or ``"gsq"`` (G-test, likelihood ratio).
    tiers
        Temporal order, earliest first: ``[["age", "batch"], ["domain"], ["cell_type"]]``
        (or ``{concept: tier}``). Edges from a later to an earlier tier are forbidden; concepts
        not named go into one tier after the named ones, so ``tiers=[["age"]]`` makes age
        exogenous.
    forbidden, required
        Edges ``[(parent, child), ...]`` or ``"a->b,c->d"``. A forbidden edge excludes that
        direction (forbid both directions to exclude the adjacency). A required edge is kept
        and oriented even if the tests found independence (noted in ``edges``).
    max_levels
        Refuse concepts with more labels than this.

    Returns
    -------
    DagSuggestion
        ``.edges`` with statuses and statistics, ``.tests``, ``.dag`` for ``CausCell`` once
        the undirected edges are resolved (``.orient``, ``.resolve``).

    Raises
    ------
    ConceptError
        Fewer than two concepts, an unknown column, missing labels, a continuous column.
    DAGError
        Priors naming unknown concepts or contradicting each other (an edge both required
        and forbidden, a required edge against the tier order, required edges in a cycle).
    """
    if method != "pc":
        raise ValueError(f"method must be 'pc', got {method!r}.")
    if test not in ("chisq", "gsq"):
        raise ValueError(f"test must be 'chisq' or 'gsq', got {test!r}.")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    adata, _ = resolve_table(data, table_key)
    concepts = [str(c) for c in concepts]
    codes, levels = _concept_codes(adata.obs, concepts, max_levels)
    priors = _check_priors(concepts, tiers, forbidden, required)
    has_priors = bool(priors.tiers or priors.forbidden or priors.required)

    bk = _background(concepts, priors) if has_priors else None
    cg = _run_pc(codes, concepts, float(alpha), test, bk)
    graph = _read_graph(cg.G.graph, concepts)
    data_only = (_read_graph(_run_pc(codes, concepts, float(alpha), test, None).G.graph,
                             concepts) if has_priors else graph)

    # every test PC ran, with the p-value it used and the statistic recomputed
    rows = []
    gsq = test == "gsq"
    for x, y, s, p in _parse_cache(cg.test.pvalue_cache):
        stat, dof, _, cpc = ci_statistic(codes, x, y, s, gsq)
        rows.append({"x": concepts[x], "y": concepts[y], "given": tuple(concepts[k] for k in s),
                     "statistic": stat, "dof": dof, "p_value": p, "independent": p > alpha,
                     "cells_per_cell": cpc})
    tests = pd.DataFrame(rows, columns=["x", "y", "given", "statistic", "dof", "p_value",
                                        "independent", "cells_per_cell"])

    # required edges the tests removed are put back (the user's prior wins), and noted
    for a, b in priors.required:
        key = frozenset((a, b))
        if key not in graph or graph[key][0] != "->" or graph[key][1:] != (a, b):
            graph[key] = ("->", a, b, "required")

    edge_rows = []
    n = len(codes)
    for i, a0 in enumerate(concepts):
        for b0 in concepts[i + 1:]:
            key = frozenset((a0, b0))
            if key not in graph:
                continue
            kind, a, b, *extra = graph[key]
            pair = tests[((tests["x"] == a) & (tests["y"] == b))
                         | ((tests["x"] == b) & (tests["y"] == a))]
            ia, ib = concepts.index(a), concepts.index(b)
            stat, dof, p_marg, _ = ci_statistic(codes, ia, ib, (), gsq)
            max_p = float(pair["p_value"].max()) if len(pair) else p_marg
            v = _cramers_v(ci_statistic(codes, ia, ib, (), False)[0], n,
                           len(levels[a]), len(levels[b]))
            if extra:  # required edge
                status = "prior"
                note = "required by you"
                if max_p > alpha:
                    worst = pair.loc[pair["p_value"].idxmax()] if len(pair) else None
                    given = ", ".join(worst["given"]) if worst is not None else ""
                    note += (f"; the tests found them independent (p={max_p:.2g}"
                             + (f" given {given}" if given else "") + ")")
            elif kind == "->":
                alone = data_only.get(key)
                if priors.orients(a, b):
                    status, note = "prior", "oriented by your priors"
                    if alone is not None and alone[0] == "->" and alone[1:] == (b, a):
                        note += f"; the tests alone would orient it {b} -> {a}"
                    elif alone is not None and alone[0] == "->":
                        note += "; the tests agree"
                    else:
                        note += "; the tests alone cannot orient it"
                else:
                    status = "directed"
                    if alone is not None and alone[0] == "->" and alone[1:] == (a, b):
                        note = "oriented by the tests (v-structure / orientation rules)"
                    else:
                        note = "follows from the prior-oriented edges (orientation rules)"
            elif kind == "<->":
                status = "undirected"
                note = "conflicting v-structures (<->): the tests orient it both ways; decide"
            else:
                status = "undirected"
                note = "the labels cannot orient it: decide"
            edge_rows.append({"source": a, "target": b, "status": status, "p_value": p_marg,
                              "statistic": stat, "dof": dof, "cramers_v": v, "max_p": max_p,
                              "note": note})
    edges = pd.DataFrame(edge_rows, columns=_EDGE_COLUMNS)
    return DagSuggestion(concepts=concepts, edges=edges, tests=tests, method=method,
                         alpha=float(alpha), test=test, n_cells=n, priors=priors.as_dict(),
                         levels=levels)


# -- data-driven check (heuristic) -----------------------------------------------------------
def compare_dags(
    data: Any,
    concepts: Sequence[str],
    dags: DagSuggestion | Sequence[Any],
    *,
    max_epochs: int = 30,
    validation_fraction: float = 0.2,
    seed: int = 0,
    table_key: str | None = None,
    max_graphs: int = 8,
    **model_kwargs: Any,
) -> pd.DataFrame:
    """HEURISTIC: short CausCell trainings of a few candidate graphs, compared on held-out data.

    Every graph is trained with the same seed, split and budget (no early stopping); the
    table reports the final validation reconstruction and concept losses and the concept
    accuracy per concept. A lower loss is weak evidence at best: the model can fit the data
    under a wrong graph, and differences between short runs are often within noise. Use it to
    spot a graph that clearly fits worse, not to prove a direction.

    Parameters
    ----------
    dags
        A :class:`DagSuggestion` (its :meth:`~DagSuggestion.candidates`) or a list of edge
        lists / ``"a->b"`` strings.
    model_kwargs
        Passed to :class:`~napari_causcell.CausCell` (e.g. a small ``width``/``hidden``).

    Returns
    -------
    pandas.DataFrame
        One row per graph, sorted by ``val_total`` (= ``val_recon + val_concept``); columns
        ``dag``, ``n_edges``, ``val_recon``, ``val_concept``, ``val_total``, ``acc_<concept>``,
        ``seconds``. ``attrs["heuristic"]`` repeats the caveat.
    """
    from .._model import CausCell

    graphs = dags.candidates(max_graphs) if isinstance(dags, DagSuggestion) else list(dags)
    if not graphs:
        raise DAGError("No candidate graphs to compare.")
    rows = []
    for g in graphs:
        edges = validate_dag(list(concepts), g)
        t0 = time.perf_counter()
        model = CausCell(data, list(concepts), edges, table_key=table_key, seed=seed,
                         **model_kwargs)
        hist = model.train(max_epochs, validation_fraction=validation_fraction,
                           early_stopping=False)
        last = hist[-1]
        row = {"dag": ",".join(f"{a}->{b}" for a, b in edges) or "(no edges)",
               "n_edges": len(edges), "val_recon": last.get("val_recon", np.nan),
               "val_concept": last.get("val_concept", np.nan)}
        row["val_total"] = row["val_recon"] + row["val_concept"]
        for c in concepts:
            row[f"acc_{c}"] = last.get(f"val_acc_{c}", np.nan)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    out = pd.DataFrame(rows).sort_values("val_total", kind="stable").reset_index(drop=True)
    out.attrs["heuristic"] = (
        "Heuristic: short trainings compared on held-out loss; a better fit is not proof of "
        "the causal direction."
    )
    return out
