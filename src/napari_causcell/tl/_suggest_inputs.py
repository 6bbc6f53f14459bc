"""Inputs of :func:`suggest_dag`: the concept labels as integer codes and the user's priors
(tiers, forbidden and required edges), checked before any test runs, and causal-learn's
``BackgroundKnowledge`` built from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data import ConceptError, DAGError, parse_dag
from ..data.dag import find_cycle
from ._suggest_roots import resolve_roots

Edge = tuple[str, str]
_MAX_FLOAT_LEVELS = 50  # same rule as ConceptSpace: a float column with more is continuous


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
    roots: list[str] = field(default_factory=list)

    def forbids(self, a: str, b: str) -> bool:
        """Whether ``a -> b`` is excluded by a forbidden edge, a root or the tier order."""
        if (a, b) in self.forbidden or self.into_root(a, b):
            return True
        return bool(self.tiers) and self.tiers[a] > self.tiers[b]

    def into_root(self, a: str, b: str) -> bool:
        """Whether ``a -> b`` points into a root (and is not required)."""
        return b in self.roots and (a, b) not in self.required

    def any(self) -> bool:
        """Whether there is any prior at all."""
        return bool(self.tiers or self.forbidden or self.required or self.roots)

    def orients(self, a: str, b: str) -> bool:
        """Whether the priors alone say ``a -> b`` (given that a and b are adjacent)."""
        return (a, b) in self.required or self.forbids(b, a) and not self.forbids(a, b)

    def as_dict(self) -> dict[str, Any]:
        return {"tiers": dict(self.tiers), "forbidden": list(self.forbidden),
                "required": list(self.required), "roots": list(self.roots)}


def _check_priors(concepts: Sequence[str], tiers: Any, forbidden: Any, required: Any,
                  roots: Any = None) -> _Priors:
    """Validate priors; contradictions raise :class:`DAGError` before any test runs. ``roots``
    is resolved by :func:`._suggest_roots.resolve_roots`."""
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
    return _Priors(tier, forb, req, resolve_roots(roots, concepts, req))


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
    for b in priors.roots:
        for a in concepts:
            if a != b and priors.into_root(a, b):
                bk.add_forbidden_by_node(nodes[a], nodes[b])
    return bk
