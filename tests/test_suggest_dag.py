"""Causal graph assistant: tl.suggest_dag, DagSuggestion, tl.compare_dags, pl.dag."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from napari_causcell import datasets, pl, tl
from napari_causcell.data import ConceptError, DAGError
from napari_causcell.tl._suggest import ci_statistic

TRUE_SKELETON = {frozenset(("age", "cell_type")), frozenset(("domain", "cell_type"))}
CONCEPTS = ["age", "domain", "cell_type"]
STARMAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "starmap_mpfc.h5ad"


def _tissue(seed: int, n_cells: int = 6000):
    return datasets.brain_aging(n_cells=n_cells, n_genes=60, seed=seed).tables["table"]


def _pairs(s):
    return {frozenset((a, b)): (a, b, st) for a, b, st in
            zip(s.edges["source"], s.edges["target"], s.edges["status"])}


def _obs_only(columns: dict) -> ad.AnnData:
    return ad.AnnData(obs=pd.DataFrame({k: pd.Categorical(v) for k, v in columns.items()},
                                       index=[f"c{i}" for i in range(len(next(iter(columns.values()))))]))


def _chain(n: int = 3000, seed: int = 0) -> ad.AnnData:
    """a -> b -> c: no v-structure, so the tests can find the skeleton but no direction."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, n)
    b = np.where(rng.random(n) < 0.5, a, rng.integers(0, 3, n))
    c = np.where(rng.random(n) < 0.5, b, rng.integers(0, 3, n))
    return _obs_only({"a": a.astype(str), "b": b.astype(str), "c": c.astype(str)})


# -- recovery on the built-in tissue --------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_true_graph_on_builtin_tissue(seed):
    table = _tissue(seed)
    s = tl.suggest_dag(table, CONCEPTS, roots=None)  # no priors: the collider orients both
    assert set(_pairs(s)) == TRUE_SKELETON
    assert sorted(s.dag) == [("age", "cell_type"), ("domain", "cell_type")]
    assert set(s.edges["status"]) == {"directed"}
    # age and domain are independent: PC removed the pair with the marginal test
    first = s.tests.iloc[0]
    assert (first["x"], first["y"], first["given"]) == ("age", "domain", ())
    assert first["p_value"] > 0.01 and first["independent"]

    exo = tl.suggest_dag(table, CONCEPTS, tiers=[["age"]], roots=None)  # age exogenous
    pairs = _pairs(exo)
    assert set(pairs) == TRUE_SKELETON
    assert pairs[frozenset(("age", "cell_type"))] == ("age", "cell_type", "prior")
    assert pairs[frozenset(("domain", "cell_type"))] == ("domain", "cell_type", "directed")
    assert exo.priors["tiers"] == {"age": 0, "domain": 1, "cell_type": 1}


def test_dag_is_accepted_by_causcell(small_sdata):
    from napari_causcell import CausCell

    s = tl.suggest_dag(_tissue(0), CONCEPTS, tiers=[["age"]])
    model = CausCell(small_sdata, CONCEPTS, dag=s.dag, seed=0, token_dim=8, hidden=64,
                     width=32, depth=1)
    assert sorted(model.edges) == [("age", "cell_type"), ("domain", "cell_type")]
    assert s.dag_string == "age->cell_type,domain->cell_type"


@pytest.mark.parametrize("test", ["chisq", "gsq"])
def test_no_spurious_edges_between_independent_concepts(test):
    """A random label and the (independent) age/domain pair: 4 independent pairs per seed."""
    spurious = 0
    seeds = range(5)
    for seed in seeds:
        table = _tissue(seed, n_cells=3000)
        rng = np.random.default_rng(1000 + seed)
        table.obs["rand"] = pd.Categorical(rng.choice(list("ABCD"), table.n_obs))
        s = tl.suggest_dag(table, [*CONCEPTS, "rand"], test=test)
        pairs = set(_pairs(s))
        spurious += sum(1 for k in pairs if "rand" in k or k == frozenset(("age", "domain")))
    assert spurious == 0  # 0 of 20 independent pairs at alpha=0.01


def test_tests_table_matches_causal_learn_pvalues():
    table = _tissue(0, n_cells=3000)
    s = tl.suggest_dag(table, CONCEPTS, roots=None)
    assert len(s.tests) >= 3
    codes = np.column_stack([pd.Categorical(table.obs[c]).codes for c in CONCEPTS])
    for row in s.tests.itertuples():
        stat, dof, p, _ = ci_statistic(codes, CONCEPTS.index(row.x), CONCEPTS.index(row.y),
                                       [CONCEPTS.index(g) for g in row.given])
        assert stat == pytest.approx(row.statistic)
        assert dof == row.dof
        assert p == pytest.approx(row.p_value, rel=1e-6, abs=1e-300)
    # marginal age x domain: 3 ages x 7 domains -> 12 degrees of freedom
    marg = s.tests[(s.tests["x"] == "age") & (s.tests["y"] == "domain")].iloc[0]
    assert marg["dof"] == 12
    # the edge table reports the marginal test and the weakest evidence
    e = s.edges.set_index("target").loc["cell_type"]
    assert (e["max_p"] <= 0.01).all() and (e["cramers_v"] > 0).all()


# -- undirected edges and the user's decisions ----------------------------------------------
def test_undirected_edges_must_be_resolved():
    s = tl.suggest_dag(_chain(), ["a", "b", "c"])
    assert set(_pairs(s)) == {frozenset("ab"), frozenset("bc")}
    assert set(s.edges["status"]) == {"undirected"}
    assert s.parents() == {"a": [], "b": [], "c": []}
    with pytest.raises(DAGError, match="undirected: a -- b, b -- c"):
        s.dag
    # the equivalence class of a - b - c: every orientation without the collider a -> b <- c
    cands = s.candidates()
    assert len(cands) == 3
    assert sorted([("a", "b"), ("c", "b")]) not in [sorted(c) for c in cands]

    r = s.orient("a", "b").orient("b", "c")
    assert r.dag == [("a", "b"), ("b", "c")]
    assert set(r.edges["status"]) == {"user"}
    assert s.undirected  # orient returns a copy
    assert s.resolve("c->b,b->a").dag == [("b", "a"), ("c", "b")]
    assert s.resolve({"a": "b"}, drop=[("b", "c")]).dag == [("a", "b")]
    with pytest.raises(DAGError, match="no edge between 'a' and 'c'"):
        s.orient("a", "c")


def test_priors_orient_remove_and_require():
    data = _chain()
    # a full temporal order orients both edges
    s = tl.suggest_dag(data, ["a", "b", "c"], tiers=[["a"], ["b"], ["c"]])
    assert s.dag == [("a", "b"), ("b", "c")]
    assert set(s.edges["status"]) == {"prior"}
    # a -> b from the tier, then Meek's first rule orients b -> c (no new collider at b)
    s = tl.suggest_dag(data, ["a", "b", "c"], tiers=[["a"]])
    pairs = _pairs(s)
    assert pairs[frozenset("ab")] == ("a", "b", "prior")
    assert pairs[frozenset("bc")] == ("b", "c", "directed")
    assert "prior-oriented" in s.edges.set_index("target").loc["c", "note"]
    # forbidding both directions removes the adjacency
    s = tl.suggest_dag(data, ["a", "b", "c"], forbidden=[("b", "c"), ("c", "b")])
    assert set(_pairs(s)) == {frozenset("ab")}
    # a required edge the tests removed is kept and says so
    s = tl.suggest_dag(data, ["a", "b", "c"], required="a->c")
    row = s.edges[(s.edges["source"] == "a") & (s.edges["target"] == "c")].iloc[0]
    assert row["status"] == "prior" and "found them independent" in row["note"]
    with pytest.raises(DAGError, match="fixed by your priors"):
        s.orient("c", "a")
    with pytest.raises(DAGError, match="required"):
        s.drop("a", "c")


def test_reversing_tests_is_noted():
    s = tl.suggest_dag(_tissue(0), CONCEPTS, roots=None)
    r = s.orient("cell_type", "age")
    row = r.edges[r.edges["target"] == "age"].iloc[0]
    assert row["status"] == "user" and "the tests had age -> cell_type" in row["note"]
    assert r.warnings and r.warnings[0].startswith("cell_type -> age: an edge into a 'when'")
    with pytest.raises(DAGError, match="fixed by your priors"):  # age is a root by default
        tl.suggest_dag(_tissue(0), CONCEPTS).orient("cell_type", "age")


# -- bad inputs -----------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    table = _tissue(0, n_cells=600)
    with pytest.raises(ConceptError, match="at least two concepts"):
        tl.suggest_dag(table, ["age"])
    with pytest.raises(ConceptError, match="available columns: .*'cell_type'"):
        tl.suggest_dag(table, ["age", "nope"])
    table.obs["size"] = np.random.default_rng(0).normal(size=table.n_obs)
    with pytest.raises(ConceptError, match="looks continuous.*bin it"):
        tl.suggest_dag(table, ["age", "size"])
    table.obs["id"] = np.arange(table.n_obs).astype(str)
    with pytest.raises(ConceptError, match="levels"):
        tl.suggest_dag(table, ["age", "id"])
    table.obs["gap"] = table.obs["age"].astype(object)
    table.obs.iloc[0, table.obs.columns.get_loc("gap")] = None
    with pytest.raises(ConceptError, match="missing labels"):
        tl.suggest_dag(table, ["age", "gap"])
    with pytest.raises(ValueError, match="alpha"):
        tl.suggest_dag(table, CONCEPTS, alpha=1.5)
    with pytest.raises(ValueError, match="test must be"):
        tl.suggest_dag(table, CONCEPTS, test="fisherz")


@pytest.mark.parametrize("kwargs, match", [
    ({"required": "age->domain", "forbidden": "age->domain"}, "both required and forbidden"),
    ({"required": "cell_type->age", "tiers": [["age"]]}, "later tier"),
    ({"required": "age->domain,domain->cell_type,cell_type->age"}, "cycle"),
    ({"required": "age->domain,domain->age"}, "cycle"),
    ({"tiers": [["age"], ["age", "domain"]]}, "two tiers"),
    ({"tiers": [["time"]]}, "not one of the concepts"),
    ({"forbidden": "age->age"}, "self-loop"),
    ({"tiers": "age"}, "list of tiers"),
])
def test_contradictory_priors_are_refused(kwargs, match):
    with pytest.raises(DAGError, match=match):
        tl.suggest_dag(_tissue(0, n_cells=300), CONCEPTS, **kwargs)


# -- drawing, session, heuristic ------------------------------------------------------------
def test_plot_draws_undirected_edges_dashed():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.patches import FancyArrowPatch

    s = tl.suggest_dag(_chain(), ["a", "b", "c"]).orient("a", "b")
    ax = pl.dag(s)
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 2
    dashed = [p for p in arrows if p.get_linestyle() not in ("-", "solid")]
    assert len(dashed) == 1  # b -- c
    assert {t.get_text() for t in ax.texts} >= {"a", "b", "c"}
    ax2 = pl.dag([("x", "y")])
    assert len([p for p in ax2.patches if isinstance(p, FancyArrowPatch)]) == 1


def test_app_suggestion_and_ticks(small_sdata):
    from napari_causcell.app import AppState, graph

    s = AppState(small_sdata)
    assert graph.auto_tiers(s, CONCEPTS) == [["age"], ["domain"]]
    assert graph.auto_tiers(s, ["cell_lineage", "cell_type"]) == []  # 'age' in a word: no time
    sug = graph.suggest_dag(s, CONCEPTS)
    assert sug.priors["tiers"] == {"age": 0, "domain": 1, "cell_type": 2}
    parents, undirected = sug.parents(), sug.undirected
    assert parents["cell_type"] and set(parents["cell_type"]) <= {"age", "domain"}
    assert parents["age"] == [] and parents["domain"] == [] and undirected == []
    sug = graph.suggest_dag(AppState(_chain()), ["a", "b", "c"])
    parents, undirected = sug.parents(), sug.undirected
    assert parents == {"a": [], "b": [], "c": []} and undirected == [("a", "b"), ("b", "c")]


def test_compare_dags_heuristic_table(small_sdata):
    tiny = {"token_dim": 8, "hidden": 64, "width": 32, "depth": 1}
    table = small_sdata.tables["table"]
    sub = table[np.random.default_rng(0).choice(table.n_obs, 400, replace=False)].copy()
    out = tl.compare_dags(sub, CONCEPTS, [[("age", "cell_type"), ("domain", "cell_type")], []],
                          max_epochs=2, **tiny)
    assert len(out) == 2 and set(out["dag"]) == {"age->cell_type,domain->cell_type", "(no edges)"}
    assert "Heuristic" in out.attrs["heuristic"]
    assert np.isfinite(out[["val_recon", "val_concept", "val_total"]].to_numpy()).all()
    assert out["val_total"].is_monotonic_increasing
    acc = out[[f"acc_{c}" for c in CONCEPTS]].to_numpy()
    assert ((acc >= 0) & (acc <= 1)).all()
    # a suggestion compares its equivalence class
    chain = tl.suggest_dag(_chain(), ["a", "b", "c"])
    assert len(chain.candidates(max_graphs=2)) == 2


@pytest.mark.realdata
@pytest.mark.skipif(not STARMAP.exists(), reason="../shared/data/starmap_mpfc.h5ad absent")
def test_starmap_suggestion():
    adata = ad.read_h5ad(STARMAP)
    c = ["slice", "domain", "celltype"]
    s = tl.suggest_dag(adata, c, roots=None)
    # all three pairs dependent, even conditionally: a complete graph the labels cannot orient
    assert len(s.edges) == 3 and set(s.edges["status"]) == {"undirected"}
    assert len(s.candidates()) == 6  # every order of three concepts
    s = tl.suggest_dag(adata, c, tiers=[["slice"], ["domain"]], roots=None)
    assert s.dag == [("slice", "domain"), ("slice", "celltype"), ("domain", "celltype")]
    assert s.warnings[0].startswith("slice -> domain: an edge into a 'where' concept")
    # by default slice and domain are roots: their sampling dependence gives a note, no edge
    s = tl.suggest_dag(adata, c)
    assert s.dag == [("slice", "celltype"), ("domain", "celltype")] and not s.warnings
    assert len(s.confounds) == 1 and s.confounds[0].startswith("slice and domain are dependent")
