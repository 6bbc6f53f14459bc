"""Background knowledge of :func:`suggest_dag`: concepts that say *where* a cell sits (domain,
region, section...) or *when* it was sampled (age, time, stage...) are roots.

Nothing about a cell's type or expression sets its age or the region it was cut from; a
dependence of such a concept on another label in the data nearly always reflects how the
tissue was sampled (the sections of each age cover different anatomy). So by default
``suggest_dag`` forbids every edge into them, and any edge into one, suggested or the user's,
is reported as a warning with that reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..data import DAGError

Edge = tuple[str, str]

#: words (whole tokens of a column name, split at non-alphanumerics) of a "where" concept
WHERE_WORDS = ("domain", "domains", "region", "regions", "niche", "niches", "layer", "layers",
               "area", "areas", "zone", "zones", "section", "sections", "slice", "slices",
               "locus", "location", "tissue", "compartment", "spatialdomain")
#: words of a "when" concept
WHEN_WORDS = ("age", "ages", "time", "times", "timepoint", "timepoints", "stage", "stages",
              "day", "days", "week", "weeks", "wk", "month", "months", "year", "years", "dpf",
              "hpf", "dpi", "pcw", "agegroup")


def concept_kind(name: str) -> str:
    """``"where"``, ``"when"`` or ``""`` from a concept's name (whole tokens, any case):
    ``spatial_domain`` and ``Region`` are where, ``age_group`` and ``timepoint`` when,
    ``cell_lineage`` neither ('age' inside a word does not count)."""
    lower = str(name).lower()
    tokens = [t for t in re.split(r"[^a-z0-9]+", lower) if t] + [re.sub(r"[^a-z0-9]", "", lower)]
    if any(t in WHEN_WORDS for t in tokens):
        return "when"
    return "where" if any(t in WHERE_WORDS for t in tokens) else ""


def where_when(concepts: Iterable[str]) -> dict[str, str]:
    """``{concept: "where" | "when"}`` for the concepts whose names say so."""
    kinds = {str(c): concept_kind(c) for c in concepts}
    return {c: k for c, k in kinds.items() if k}


def resolve_roots(roots: Any, concepts: Sequence[str], required: Sequence[Edge]) -> list[str]:
    """The root concepts of ``suggest_dag(roots=...)``.

    ``"auto"``: the where/when concepts, less any a required edge points into (the user's
    required edge wins; it is then reported as a warning). ``None`` or ``[]``: none. A list:
    those concepts; a required edge into one of them is a contradiction.
    """
    if roots is None:
        return []
    if isinstance(roots, str) and roots == "auto":
        targets = {b for _, b in required}
        return [c for c in where_when(concepts) if c not in targets]
    names = [roots] if isinstance(roots, str) else [str(r) for r in roots]
    for name in names:
        if name not in concepts:
            raise DAGError(f"Root {name!r} is not one of the concepts {list(concepts)}; "
                           "roots must be concepts (or 'auto', or None for none).")
    for a, b in required:
        if b in names:
            raise DAGError(f"Contradictory priors: {a} -> {b} is required but {b!r} is a root "
                           "(no edge may point into it).")
    return list(dict.fromkeys(names))


def edge_warning(parent: str, child: str, kind: str) -> str:
    """Why an edge ``parent -> child`` into a where/when concept is suspicious."""
    what = "where cells sit" if kind == "where" else "when cells were sampled"
    example = ("the sections cover different regions" if kind == "where"
               else f"the {parent} labels differ between the sections or donors of each {child}")
    return (f"{parent} -> {child}: an edge into a '{kind}' concept ({child!r} says {what}) "
            f"usually reflects a sampling confound ({example}), not a cause; with it, "
            f"do({parent}=...) changes cells' {child}. Remove it unless you know that {parent} "
            f"sets {child}.")


def edge_warnings(edges: Iterable[Edge], kinds: dict[str, str]) -> list[str]:
    """One warning (:func:`edge_warning`) per edge into a where/when concept of ``kinds``."""
    return [edge_warning(a, b, kinds[b]) for a, b in edges if b in kinds]


def confound_note(a: str, b: str, p_value: float, kinds: dict[str, str]) -> str:
    """Note on two dependent concepts the roots prior keeps apart (both are roots)."""
    return (f"{a} and {b} are dependent in the labels (marginal p={p_value:.2g}) but both are "
            f"roots ('{kinds.get(a, 'root')}' and '{kinds.get(b, 'root')}'), so no edge joins "
            "them: the dependence usually reflects how the tissue was sampled (e.g. the "
            "sections of each age cover different regions). Compare like with like, or pass "
            "roots=None to let the tests decide.")
