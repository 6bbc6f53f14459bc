"""Issue 28 item 2: where/when concepts are roots of tl.suggest_dag by default, edges into them
are warned about (tl and the app's tick line), and pl.dag draws no edge through a node."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from napari_causcell import datasets, tl
from napari_causcell.app import AppState
from napari_causcell.app.graph import pending_text, review, suggest_dag, tick_warnings
from napari_causcell.data import DAGError
from napari_causcell.tl._suggest_roots import concept_kind

CONCEPTS = ["age", "domain", "cell_type"]


def _confounded(n: int = 4000, seed: int = 0) -> ad.AnnData:
    """One section per age, and the sections cover different regions: age and domain are
    dependent by sampling alone; cell types follow the domain."""
    rng = np.random.default_rng(seed)
    age = rng.integers(0, 2, n)
    domain = np.where(rng.random(n) < 0.7, age, rng.integers(0, 2, n))
    cell_type = np.where(rng.random(n) < 0.6, domain, rng.integers(0, 3, n))
    obs = pd.DataFrame({"age": np.array(["young", "old"])[age],
                        "domain": np.array(["cortex", "striatum"])[domain],
                        "cell_type": np.array(["ExN", "MSN", "Astro"])[cell_type]})
    obs = obs.astype("category")
    obs.index = [f"c{i}" for i in range(n)]
    return ad.AnnData(obs=obs, obsm={"spatial": rng.random((n, 2))})


@pytest.mark.parametrize("name, kind", [
    ("age", "when"), ("Age_group", "when"), ("timepoint", "when"), ("stage", "when"),
    ("domain", "where"), ("spatial_domain", "where"), ("Region", "where"),
    ("section", "where"), ("causcell_domain", "where"),
    ("cell_type", ""), ("celltype", ""), ("cell_lineage", ""), ("colour", ""),
])
def test_where_when_from_names(name, kind):
    assert concept_kind(name) == kind
    assert tl.where_when([name, "x"]) == ({name: kind} if kind else {})


def test_where_and_when_concepts_are_roots_by_default():
    table = datasets.brain_aging(n_cells=6000, n_genes=60, seed=0).tables["table"]
    s = tl.suggest_dag(table, CONCEPTS)
    assert s.priors["roots"] == ["age", "domain"]
    assert sorted(s.dag) == [("age", "cell_type"), ("domain", "cell_type")]
    assert set(s.edges["status"]) == {"prior"}
    assert s.edges["note"].str.contains("roots prior").all()
    assert s.warnings == [] and s.confounds == []
    assert "roots (nothing points into them): age, domain" in s.summary()


def test_a_sampling_confound_gives_no_edge_into_a_root_but_a_note():
    data = _confounded()
    s = tl.suggest_dag(data, CONCEPTS)
    pairs = {frozenset((a, b)) for a, b in s.directed + s.undirected}
    assert frozenset(("age", "domain")) not in pairs  # both roots: kept apart
    assert ("domain", "cell_type") in s.dag
    assert len(s.confounds) == 1 and "sampled" in s.confounds[0]
    assert s.confounds[0].startswith("age and domain are dependent in the labels")
    assert "note: age and domain" in s.summary()
    # the tests alone join them; orienting age -> domain is warned about, with the reason
    free = tl.suggest_dag(data, CONCEPTS, roots=None)
    assert free.priors["roots"] == [] and free.confounds == []
    assert frozenset(("age", "domain")) in {frozenset(e) for e in free.undirected}
    r = free.orient("age", "domain")
    assert r.warnings == [w for w in r.warnings if w.startswith("age -> domain")]
    assert len(r.warnings) == 1 and "sampling confound" in r.warnings[0]
    assert "the sections cover different regions" in r.warnings[0]
    assert "warning: age -> domain" in r.summary()


def test_user_roots_and_required_edges():
    data = _confounded()
    # a required edge into an automatic root wins, and is warned about
    s = tl.suggest_dag(data, CONCEPTS, required="age->domain")
    assert s.priors["roots"] == ["age"] and ("age", "domain") in s.dag
    row = s.edges[(s.edges["source"] == "age") & (s.edges["target"] == "domain")].iloc[0]
    assert row["status"] == "prior" and row["note"].startswith("required by you")
    assert len(s.warnings) == 1 and s.warnings[0].startswith("age -> domain: an edge into")
    # roots named by the user replace the automatic ones
    s = tl.suggest_dag(data, CONCEPTS, roots=["cell_type"])
    assert s.priors["roots"] == ["cell_type"]
    assert all(t != "cell_type" for _, t in s.directed)
    with pytest.raises(DAGError, match="is a root"):
        tl.suggest_dag(data, CONCEPTS, roots=["domain"], required="age->domain")
    with pytest.raises(DAGError, match="not one of the concepts"):
        tl.suggest_dag(data, CONCEPTS, roots=["time"])


def test_app_warns_on_ticks_into_where_when_and_never_says_all_good():
    state = AppState(_confounded())
    s = suggest_dag(state, CONCEPTS)
    assert "roots age, domain" in _message(s)
    ticks = {"age": [], "domain": [], "cell_type": ["domain"]}
    flags, text = review(s, ticks)
    # the confound note is shown, and it is not good news
    assert flags == s.confounds and "Warning: age and domain are dependent" in text
    ticks["domain"] = ["age"]  # the user ticks age -> domain
    pending, text = pending_text(s, ticks)
    assert pending == [] and "Every suggested edge is oriented" not in text
    assert "Warning: age -> domain: an edge into a 'where' concept" in text
    assert len(review(s, ticks)[0]) == 2
    assert tick_warnings(ticks) == [w for w in tick_warnings(ticks) if "age -> domain" in w]
    # without a suggestion, a tick into a root is still warned about
    assert pending_text(None, ticks)[1].startswith("Warning: age -> domain")
    # the built-in tissue: nothing to warn about, good news
    good = suggest_dag(AppState(datasets.brain_aging(n_cells=3000, n_genes=60, seed=0)),
                       CONCEPTS)
    assert review(good, good.parents()) == ([], "Every suggested edge is oriented.")


def _message(s):
    from napari_causcell.app.graph import suggestion_message

    return suggestion_message(s)


def test_graph_form_flags_warnings_for_the_front_ends():
    """The napari and Jupyter Train forms colour the line green only when ``undirected()``
    returns nothing to look at."""
    from napari_causcell.app.forms import GraphForm

    class Form(GraphForm):
        def __init__(self, ticks):
            self.ticks = ticks

        def parents(self):
            return self.ticks

    form = Form({"age": [], "domain": ["age"], "cell_type": ["domain"]})
    form.suggestion = tl.suggest_dag(_confounded(), CONCEPTS, roots=None).resolve(
        "age->domain,domain->cell_type")
    flags, text = form.undirected()
    assert flags and "Every suggested edge is oriented" not in text
    assert form.undirected_pending() == []


# -- drawing: no edge behind a node -----------------------------------------------------------
def _min_distance_to_other_nodes(ax, names):
    """Pixels between each arrow's drawn path and the nearest node it does not join."""
    from matplotlib.patches import FancyArrowPatch

    ax.figure.canvas.draw()
    centres = {t.get_text(): ax.transData.transform(t.get_position()) for t in ax.texts
               if t.get_text() in names}
    out = {}
    for patch in (p for p in ax.patches if isinstance(p, FancyArrowPatch)):
        a, b = patch.get_gid().split("->")
        path = patch.get_transform().transform_path(patch.get_path())
        pts = np.concatenate(path.to_polygons(closed_only=False))
        others = [c for n, c in centres.items() if n not in (a, b)]
        out[(a, b)] = min(np.linalg.norm(pts - c, axis=1).min() for c in others)
    return out


@pytest.mark.parametrize("edges", [
    [("age", "domain"), ("domain", "cell_type"), ("age", "cell_type")],  # one line of 3
    [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("a", "c")],  # one line of 4
    [("age", "cell_type"), ("domain", "cell_type"), ("age", "domain")],
])
def test_no_edge_passes_behind_a_node(edges):
    import matplotlib

    matplotlib.use("Agg")
    from napari_causcell import pl

    names = list(dict.fromkeys(n for e in edges for n in e))
    ax = pl.dag(edges)
    node_radius_px = np.sqrt(1200) / 2 * ax.figure.dpi / 72  # node_size is in points**2
    dist = _min_distance_to_other_nodes(ax, names)
    assert set(dist) == set(edges)
    assert min(dist.values()) > node_radius_px, dist
    # the line layout's skipping edge is the one drawn as an arc
    from napari_causcell._dagplot import edge_curvatures

    pos = {n: (i, 0.0) for i, n in enumerate(names)}
    rads = edge_curvatures(pos, edges)
    assert all((rads[e] != 0) == (abs(names.index(e[0]) - names.index(e[1])) > 1)
               for e in edges)
