"""Causal graph assistant: propose the DAG between concepts from their labels.

Structure learning is causal-learn's PC algorithm (``causallearn.search.ConstraintBased.PC``)
with chi-square or G-test conditional-independence tests on the integer-coded labels, and
causal-learn's ``BackgroundKnowledge`` for tiers, forbidden and required edges. Nothing here
searches graphs itself: this code checks inputs, builds the background knowledge, reads the
result and explains it. The parts: :mod:`._suggest_inputs` (codes and priors),
:mod:`._suggest_pc` (running PC, its graph and test statistics), :mod:`._suggest_result`
(:class:`DagSuggestion`), :mod:`._suggest_roots` (where/when concepts are roots by default);
here the edge table is assembled and :func:`compare_dags` lives.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..data import DAGError, resolve_table, validate_dag
from ..errors import SettingError
from ._suggest_inputs import Edge, _background, _check_priors, _concept_codes, _Priors
from ._suggest_pc import _cramers_v, _parse_cache, _read_graph, _run_pc, ci_statistic
from ._suggest_result import STATUSES, DagSuggestion
from ._suggest_roots import confound_note, where_when

__all__ = ["DagSuggestion", "suggest_dag", "compare_dags", "STATUSES", "where_when"]

_EDGE_COLUMNS = ["source", "target", "status", "p_value", "statistic", "dof", "cramers_v",
                 "max_p", "note"]


def _check_options(method: str, test: str, alpha: float) -> None:
    if method != "pc":
        raise SettingError(f"method must be 'pc', got {method!r}.")
    if test not in ("chisq", "gsq"):
        raise SettingError(f"test must be 'chisq' or 'gsq', got {test!r}.")
    if not 0.0 < float(alpha) < 1.0:
        raise SettingError(f"alpha must be in (0, 1), got {alpha}.")


def _run_pc_twice(codes: np.ndarray, concepts: list[str], alpha: float, test: str,
                  priors: _Priors) -> tuple[Any, dict, dict]:
    """PC with the priors (its causal graph object, and its graph with the required edges put
    back) and the graph PC finds without them, to say what the priors changed (the same graph
    when there are none)."""
    has_priors = priors.any()
    bk = _background(concepts, priors) if has_priors else None
    cg = _run_pc(codes, concepts, alpha, test, bk)
    graph = _read_graph(cg.G.graph, concepts)
    data_only = (_read_graph(_run_pc(codes, concepts, alpha, test, None).G.graph, concepts)
                 if has_priors else graph)
    _add_required(graph, priors)
    return cg, graph, data_only


def _tests_table(cg: Any, codes: np.ndarray, concepts: list[str], alpha: float,
                 gsq: bool) -> pd.DataFrame:
    """Every test PC ran, with the p-value it used and the statistic recomputed."""
    rows = []
    for x, y, s, p in _parse_cache(cg.test.pvalue_cache):
        stat, dof, _, cpc = ci_statistic(codes, x, y, s, gsq)
        rows.append({"x": concepts[x], "y": concepts[y], "given": tuple(concepts[k] for k in s),
                     "statistic": stat, "dof": dof, "p_value": p, "independent": p > alpha,
                     "cells_per_cell": cpc})
    return pd.DataFrame(rows, columns=["x", "y", "given", "statistic", "dof", "p_value",
                                       "independent", "cells_per_cell"])


def _add_required(graph: dict[frozenset, tuple[str, ...]], priors: _Priors) -> None:
    """Put back (in place) the required edges the tests removed or oriented otherwise: the
    user's prior wins, and the edge is marked ``"required"`` for its note."""
    for a, b in priors.required:
        key = frozenset((a, b))
        if key not in graph or graph[key][0] != "->" or graph[key][1:] != (a, b):
            graph[key] = ("->", a, b, "required")


def _pairs_in_order(graph: dict[frozenset, Any], concepts: list[str]) -> list[frozenset]:
    """The graph's adjacencies in concept order (pairs i < j)."""
    return [frozenset((a, b)) for i, a in enumerate(concepts) for b in concepts[i + 1:]
            if frozenset((a, b)) in graph]


@dataclass(frozen=True)
class _Evidence:
    """What every edge row reads: the codes, the tests PC ran and the test settings."""

    codes: np.ndarray
    concepts: list[str]
    levels: dict[str, list[str]]
    tests: pd.DataFrame
    alpha: float
    gsq: bool


def _required_note(pair: pd.DataFrame, max_p: float, alpha: float) -> str:
    """Note of a required edge, saying if the tests found its ends independent."""
    note = "required by you"
    if max_p > alpha:
        worst = pair.loc[pair["p_value"].idxmax()] if len(pair) else None
        given = ", ".join(worst["given"]) if worst is not None else ""
        note += (f"; the tests found them independent (p={max_p:.2g}"
                 + (f" given {given}" if given else "") + ")")
    return note


def _directed_status(a: str, b: str, alone: tuple[str, ...] | None,
                     priors: _Priors) -> tuple[str, str]:
    """Status and note of an edge PC oriented ``a -> b``; ``alone`` is the same pair in the
    graph PC found without priors."""
    if priors.orients(a, b):
        note = ("required by you" if (a, b) in priors.required
                else f"oriented by the roots prior ({a!r} is a root: no edge into it)"
                if priors.into_root(b, a) else "oriented by your priors")
        if alone is not None and alone[0] == "->" and alone[1:] == (b, a):
            note += f"; the tests alone would orient it {b} -> {a}"
        elif alone is not None and alone[0] == "->":
            note += "; the tests agree"
        else:
            note += "; the tests alone cannot orient it"
        return "prior", note
    if alone is not None and alone[0] == "->" and alone[1:] == (a, b):
        return "directed", "oriented by the tests (v-structure / orientation rules)"
    return "directed", "follows from the prior-oriented edges (orientation rules)"


def _edge_row(ev: _Evidence, found: tuple[str, ...], alone: tuple[str, ...] | None,
              priors: _Priors) -> dict[str, Any]:
    """One row of ``DagSuggestion.edges``: status, note and the pair's test statistics."""
    kind, a, b, *extra = found
    tests = ev.tests
    pair = tests[((tests["x"] == a) & (tests["y"] == b)) | ((tests["x"] == b) & (tests["y"] == a))]
    ia, ib = ev.concepts.index(a), ev.concepts.index(b)
    stat, dof, p_marg, _ = ci_statistic(ev.codes, ia, ib, (), ev.gsq)
    max_p = float(pair["p_value"].max()) if len(pair) else p_marg
    v = _cramers_v(ci_statistic(ev.codes, ia, ib, (), False)[0], len(ev.codes),
                   len(ev.levels[a]), len(ev.levels[b]))
    if extra:  # required edge
        status, note = "prior", _required_note(pair, max_p, ev.alpha)
    elif kind == "->":
        status, note = _directed_status(a, b, alone, priors)
    elif kind == "<->":
        status = "undirected"
        note = "conflicting v-structures (<->): the tests orient it both ways; decide"
    else:
        status, note = "undirected", "the labels cannot orient it: decide"
    return {"source": a, "target": b, "status": status, "p_value": p_marg, "statistic": stat,
            "dof": dof, "cramers_v": v, "max_p": max_p, "note": note}


def _confounds(ev: _Evidence, graph: dict, data_only: dict, priors: _Priors) -> list[str]:
    """Notes on pairs the tests alone join but the roots prior keeps apart (both roots)."""
    kinds = where_when(ev.concepts)
    out = []
    for key in _pairs_in_order(data_only, ev.concepts):
        a, b = data_only[key][1:3]
        if key not in graph and a in priors.roots and b in priors.roots:
            p = ci_statistic(ev.codes, ev.concepts.index(a), ev.concepts.index(b), (),
                             ev.gsq)[2]
            out.append(confound_note(a, b, p, kinds))
    return out


def suggest_dag(
    data: Any, concepts: Sequence[str], *, method: str = "pc", alpha: float = 0.01,
    test: str = "chisq", tiers: Sequence[Sequence[str] | str] | Mapping[str, int] | None = None,
    forbidden: str | Iterable[Edge] | None = None, required: str | Iterable[Edge] | None = None,
    roots: str | Sequence[str] | None = "auto", table_key: str | None = None,
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
        (or ``{concept: tier}``). Edges from a later to an earlier tier are forbidden; concepts not
        named go into one tier after the named ones, so ``tiers=[["age"]]`` makes age exogenous.
    forbidden, required
        Edges ``[(parent, child), ...]`` or ``"a->b,c->d"``. A forbidden edge excludes that
        direction (forbid both directions to exclude the adjacency). A required edge is kept
        and oriented even if the tests found independence (noted in ``edges``).
    roots
        Concepts nothing may point into. ``"auto"`` (default): the *where* (domain, region,
        section...) and *when* (age, time, stage...) concepts, by name (:func:`where_when`),
        less those a required edge points into. Two dependent roots get no edge but a note in
        ``.confounds`` (usually sampling: the sections cover different regions). A list names
        the roots; ``None`` lets the tests decide. ``.warnings`` lists edges into where/when
        concepts either way.
    max_levels
        Refuse concepts with more labels than this.

    Returns
    -------
    DagSuggestion
        ``.edges``, ``.tests``, ``.dag`` once the undirected edges are resolved.

    Raises
    ------
    ConceptError
        Fewer than two concepts, an unknown column, missing labels, a continuous column.
    DAGError
        Priors naming unknown concepts or contradicting each other (an edge both required and
        forbidden, or against the tiers, or into a root you named; required edges in a cycle).
    """
    _check_options(method, test, alpha)
    adata, _ = resolve_table(data, table_key)
    concepts = [str(c) for c in concepts]
    codes, levels = _concept_codes(adata.obs, concepts, max_levels)
    priors = _check_priors(concepts, tiers, forbidden, required, roots)
    return _suggest(codes, concepts, levels, priors, float(alpha), test, method)


def _suggest(codes: np.ndarray, concepts: list[str], levels: dict[str, list[str]],
             priors: _Priors, alpha: float, test: str, method: str) -> DagSuggestion:
    """PC on the checked codes and priors, and the :class:`DagSuggestion` explaining it."""
    cg, graph, data_only = _run_pc_twice(codes, concepts, alpha, test, priors)
    ev = _Evidence(codes, concepts, levels, _tests_table(cg, codes, concepts, alpha, test == "gsq"),
                   alpha, test == "gsq")
    edges = pd.DataFrame([_edge_row(ev, graph[key], data_only.get(key), priors)
                          for key in _pairs_in_order(graph, concepts)], columns=_EDGE_COLUMNS)
    return DagSuggestion(concepts=concepts, edges=edges, tests=ev.tests, method=method,
                         alpha=alpha, test=test, n_cells=len(codes), priors=priors.as_dict(),
                         levels=levels, confounds=_confounds(ev, graph, data_only, priors))


# -- data-driven check (heuristic) -----------------------------------------------------------
_HEURISTIC = ("Heuristic: short trainings compared on held-out loss; a better fit is not proof "
              "of the causal direction.")


def _fit_row(edges: list[Edge], last: Mapping[str, Any], concepts: Sequence[str]
             ) -> dict[str, Any]:
    """One row of :func:`compare_dags` from the last epoch of a graph's training history."""
    row = {"dag": ",".join(f"{a}->{b}" for a, b in edges) or "(no edges)",
           "n_edges": len(edges), "val_recon": last.get("val_recon", np.nan),
           "val_concept": last.get("val_concept", np.nan)}
    row["val_total"] = row["val_recon"] + row["val_concept"]
    for c in concepts:
        row[f"acc_{c}"] = last.get(f"val_acc_{c}", np.nan)
    return row


def compare_dags(
    data: Any, concepts: Sequence[str], dags: DagSuggestion | Sequence[Any], *,
    max_epochs: int = 30, validation_fraction: float = 0.2, seed: int = 0,
    table_key: str | None = None, max_graphs: int = 8, **model_kwargs: Any,
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
        row = _fit_row(edges, hist[-1], concepts)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    out = pd.DataFrame(rows).sort_values("val_total", kind="stable").reset_index(drop=True)
    out.attrs["heuristic"] = _HEURISTIC
    return out
