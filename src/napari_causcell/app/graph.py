"""Workflow: suggest the causal graph between concepts, and check the user's ticks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import tl
from ..errors import DAGError, DataError
from ..tl._suggest_roots import edge_warnings
from .jobs import Job, Progress
from .state import _GUESSES, BATCH_WORDS, AppState
from .train import check_dag, edges_from_parents

__all__ = ["SuggestRequest", "SuggestResult", "auto_tiers", "check_tick", "pending_text",
           "review", "suggest_dag", "suggest_job", "suggestion_message", "tick_warnings",
           "undirected_pending"]


def auto_tiers(state: AppState, concepts: Sequence[str]) -> list[list[str]]:
    """Default tiers from column names: ``[[time/batch...], [domain], rest]``.

    Concepts matching neither stay in the last tier; ``[]`` when nothing matches (no prior).
    """
    def matches(name: str, words: Sequence[str]) -> bool:
        tokens = re.split(r"[^a-z0-9]+", name.lower())
        return name.lower() in words or any(t in words for t in tokens)

    first = [c for c in concepts if matches(c, _GUESSES["time"] + BATCH_WORDS)]
    domain = state.guess_column("domain")
    second = [c for c in concepts if c not in first
              and (c == domain or matches(c, _GUESSES["domain"]))]
    if not first and not second:
        return []
    return [t for t in (first, second) if t]


def suggest_dag(state: AppState, concepts: Sequence[str], **kwargs: Any) -> tl.DagSuggestion:
    """:func:`napari_causcell.tl.suggest_dag` with ``tiers="auto"`` by default
    (:func:`auto_tiers`; ``tiers=None`` uses no tiers) and its default ``roots="auto"``
    (where/when concepts are roots; ``roots=None`` for none)."""
    tiers = kwargs.pop("tiers", "auto")
    if isinstance(tiers, str) and tiers == "auto":
        tiers = auto_tiers(state, concepts) or None
    return tl.suggest_dag(state.data, list(concepts), table_key=state.table_key, tiers=tiers,
                          **kwargs)


def suggestion_message(suggestion: tl.DagSuggestion) -> str:
    """One line on a suggested graph: edges, test, priors (tiers, roots), and what is left to
    decide or check."""
    tiers = suggestion.priors.get("tiers") or {}
    order = " < ".join(
        ", ".join(c for c, t in tiers.items() if t == k) for k in sorted(set(tiers.values())))
    roots = suggestion.priors.get("roots") or []
    prior = (f"; tiers {order}" if order else "") + (f"; roots {', '.join(roots)}" if roots else "")
    done = "the graph is complete" if not suggestion.undirected else "decide the marked edges"
    checks = len(suggestion.warnings) + len(suggestion.confounds)
    check = f"; {checks} warning(s) below" if checks else ""
    return (f"Suggested {len(suggestion.edges)} edge(s) ({suggestion.method.upper()}, "
            f"alpha {suggestion.alpha}{prior or '; no priors'}); {done}{check}.")


def undirected_pending(undirected: Iterable[tuple[str, str]],
                       parents: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """Undirected edges ``(a, b)`` between chosen concepts (keys of ``parents``) for which
    neither direction is ticked yet."""
    return [(a, b) for a, b in undirected
            if a in parents and b in parents and a not in parents[b] and b not in parents[a]]


def tick_warnings(parents: Mapping[str, Sequence[str]]) -> list[str]:
    """A warning (with its reason) for every ticked edge into a where/when concept
    (:func:`napari_causcell.tl.where_when`): such an edge usually reflects a sampling
    confound."""
    return edge_warnings([(p, c) for c, ps in parents.items() for p in ps],
                         tl.where_when(parents))


def pending_text(suggestion: tl.DagSuggestion | None,
                 parents: Mapping[str, Sequence[str]]) -> tuple[list[tuple[str, str]], str]:
    """``(pending edges, the line to show)``.

    The line lists the undirected edges left to tick, or says "Every suggested edge is
    oriented." only when no ticked edge points into a where/when concept; otherwise it
    gives those warnings (and the suggestion's confound notes). ``""`` before a suggestion
    unless a tick needs a warning.
    """
    warnings = tick_warnings(parents)
    notes = [*warnings, *(suggestion.confounds if suggestion is not None else [])]
    if suggestion is None:
        return [], " ".join(f"Warning: {w}" for w in warnings)
    pending = undirected_pending(suggestion.undirected, parents)
    if pending:
        pairs = ", ".join(f"{a} -- {b}" for a, b in pending)
        text = f"Undirected, tick one direction (or neither): {pairs}"
    else:
        text = "" if warnings else "Every suggested edge is oriented."
    return pending, " ".join([text, *(f"Warning: {n}" for n in notes)]).strip()


def review(suggestion: tl.DagSuggestion | None,
           parents: Mapping[str, Sequence[str]]) -> tuple[list[str], str]:
    """``(what needs a look, the line to show)``: the pending edges, warnings and confound
    notes of :func:`pending_text` (empty when the line is all good news: show it as such)."""
    pending, text = pending_text(suggestion, parents)
    flags = [f"{a} -- {b}" for a, b in pending] + tick_warnings(parents)
    if suggestion is not None:
        flags += suggestion.confounds
    return flags, text


def undirected_tip(a: str, b: str) -> str:
    """Tooltip of a grid cell of an undirected suggested edge."""
    return (f"undirected {a} -- {b}: the labels cannot tell the direction; tick {a} -> {b} or "
            f"{b} -> {a} (or neither)")


def check_tick(concepts: Sequence[str], parents: Mapping[str, Sequence[str]],
               parent: str, child: str) -> str | None:
    """``None`` when the ticked ``parent -> child`` keeps the graph acyclic, else the
    message refusing it."""
    try:
        check_dag(concepts, edges_from_parents(parents))
    except DAGError as err:
        return f"Refused {parent} -> {child}: {err}"
    return None


@dataclass
class SuggestRequest:
    """The concepts a graph is suggested over (at least two)."""

    concepts: Sequence[str]

    def validate(self) -> list[str]:
        concepts = list(self.concepts)
        if len(concepts) < 2:
            raise DataError("Choose at least two concepts to suggest a graph.")
        return concepts


@dataclass
class SuggestResult:
    suggestion: tl.DagSuggestion
    parents: dict[str, list[str]]
    undirected: list[tuple[str, str]]
    message: str

    def matches(self, concepts: Sequence[str]) -> bool:
        """Whether the suggestion is over ``concepts`` (they may change meanwhile)."""
        return list(self.suggestion.concepts) == list(concepts)


#: shown when the concepts changed while a suggestion ran
CHANGED_WHILE_SUGGESTING = "The concepts changed while suggesting; suggest again."


def suggest_job(state: AppState, request: SuggestRequest) -> Job[SuggestResult]:
    """Propose parents from the labels (conditional-independence tests)."""
    concepts = request.validate()

    def steps(job: Job) -> Any:
        yield Progress(None, f"Suggesting a graph over {concepts} from the labels...")
        suggestion = suggest_dag(state, concepts)
        job.check()
        yield Progress(1.0, "")
        return SuggestResult(suggestion, suggestion.parents(), list(suggestion.undirected),
                             suggestion_message(suggestion))

    return Job(steps, title="CausCell: suggest graph")
