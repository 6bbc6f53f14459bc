"""Suggest-graph workflow and the checks of the user's ticks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_causcell.app import AppState, SuggestRequest, suggest_job
from napari_causcell.app.graph import (
    CHANGED_WHILE_SUGGESTING,
    auto_tiers,
    check_tick,
    pending_text,
    undirected_tip,
)
from napari_causcell.errors import DataError


def test_needs_two_concepts(state):
    with pytest.raises(DataError, match="Choose at least two concepts to suggest a graph."):
        suggest_job(state, SuggestRequest(["age"]))


def test_suggests_the_true_graph(state):
    assert auto_tiers(state, ["age", "domain", "cell_type"]) == [["age"], ["domain"]]
    progress = []
    result = suggest_job(state, SuggestRequest(["age", "domain", "cell_type"])).run(
        progress.append)
    assert progress[0].text.startswith("Suggesting a graph over ['age', 'domain', 'cell_type']")
    assert set(result.parents["cell_type"]) <= {"age", "domain"}
    assert result.parents["age"] == []  # the time tier comes first: nothing causes age
    assert result.message.startswith("Suggested ") and "age < domain" in result.message
    assert result.matches(["age", "domain", "cell_type"]) and not result.matches(["age"])
    assert CHANGED_WHILE_SUGGESTING.startswith("The concepts changed")


def test_undirected_edges_are_left_to_the_user():
    import anndata as ad

    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 3000)
    b = np.where(rng.random(3000) < 0.8, a, rng.integers(0, 3, 3000))
    obs = pd.DataFrame({"colour": a.astype(str), "shape": b.astype(str)}).astype("category")
    obs.index = obs.index.astype(str)
    state = AppState(ad.AnnData(obs=obs, obsm={"spatial": rng.random((3000, 2))}))
    result = suggest_job(state, SuggestRequest(["colour", "shape"])).run()
    assert result.undirected == [("colour", "shape")]
    assert "decide the marked edges" in result.message
    pending, text = pending_text(result.suggestion, {"colour": [], "shape": []})
    assert pending == [("colour", "shape")] and text.endswith("colour -- shape")
    assert pending_text(result.suggestion, {"colour": [], "shape": ["colour"]}) == (
        [], "Every suggested edge is oriented.")
    assert pending_text(None, {}) == ([], "")
    assert "tick colour -> shape or shape -> colour" in undirected_tip("colour", "shape")


def test_a_tick_closing_a_cycle_is_refused():
    concepts = ["age", "domain", "cell_type"]
    ok = {"cell_type": ["age"], "age": ["domain"], "domain": []}
    assert check_tick(concepts, ok, "age", "cell_type") is None
    cyc = {"cell_type": ["age"], "age": ["domain"], "domain": ["cell_type"]}
    text = check_tick(concepts, cyc, "cell_type", "domain")
    assert text.startswith("Refused cell_type -> domain: ") and "cycle" in text
