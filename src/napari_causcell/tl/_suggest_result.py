"""The result of :func:`suggest_dag`: :class:`DagSuggestion`, the proposed graph with the
evidence behind each edge, and the user's decisions on it (orient, drop, resolve)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from ..data import DAGError, parse_dag, validate_dag
from ..data.dag import find_cycle
from ._suggest_inputs import Edge
from ._suggest_roots import edge_warnings, where_when

#: Edge statuses in :attr:`DagSuggestion.edges`.
STATUSES = {
    "directed": "oriented by the tests (a v-structure, or the orientation rules after one)",
    "prior": "oriented by your priors (tiers, forbidden or required edges)",
    "undirected": "the data cannot orient it: decide with .orient(parent, child)",
    "user": "oriented by you (.orient / .resolve)",
}


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
    confounds
        Pairs of root concepts (``priors["roots"]``) whose labels are dependent but which the
        roots prior keeps apart, each with the likely reason (a sampling confound).

    The property :attr:`warnings` lists every oriented edge into a where/when concept, with
    the reason (it follows the user's :meth:`orient` / :meth:`resolve`).
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
    confounds: list[str] = field(default_factory=list)

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
    def warnings(self) -> list[str]:
        """One line per oriented edge into a where/when concept (:func:`where_when`): such
        an edge usually reflects a sampling confound, not a cause."""
        return edge_warnings(self.directed, where_when(self.concepts))

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
        if self.priors.get("roots"):
            lines.append(f"  roots (nothing points into them): {', '.join(self.priors['roots'])}")
        lines += [f"  note: {c}" for c in self.confounds]
        lines += [f"  warning: {w}" for w in self.warnings]
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
