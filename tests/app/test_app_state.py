"""AppState: table queries and the psygnal events."""

from __future__ import annotations

import pytest

from napari_causcell.app import AppState, data_from_metadata
from napari_causcell.errors import DataError


def test_table_queries(state):
    assert state.n_cells == 1500 and state.coords.shape == (1500, 2)
    assert state.default_concepts() == ["age", "domain", "cell_type"]
    assert state.guess_column("time") == "age"
    assert {"age", "domain", "cell_type"} <= set(state.categorical_columns())
    assert "4wk" in state.labels("age") and "90wk" in state.labels("age")
    with pytest.raises(DataError, match="not in obs"):
        state.labels("nope")
    assert state.table_keys() == ["table"] and state.is_spatialdata
    assert state.concept_role("age") == "time / age"
    assert state.model_concepts() == [] and not state.ready


def test_events_and_model(state, trained, events):
    seen = events(state)
    with pytest.raises(DataError, match="No model yet"):
        state.require_model()
    state.set_model(trained)
    state.mark_obs_changed("domain")
    state.trained()
    assert seen == ["model", "obs", "trained"]
    assert state.ready and state.model_concepts(time_first=True)[0] == "age"
    assert state.concept_labels_of_model("age") == [
        str(c) for c in trained.concept_space.categories["age"]]
    assert state.genes == list(trained.genes)
    assert state.factual_expression(state.genes[0]).shape == (1500,)
    with pytest.raises(DataError, match="not among"):
        state.factual_expression("not-a-gene")


def test_layer_metadata(small_sdata):
    table = small_sdata.tables["table"]
    assert data_from_metadata({"sdata": small_sdata, "adata": table}) == (small_sdata, "table")
    assert data_from_metadata({"adata": table}) == (table, None)
    with pytest.raises(DataError, match="no SpatialData or AnnData"):
        data_from_metadata({})
