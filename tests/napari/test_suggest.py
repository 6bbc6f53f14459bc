"""Train widget: the "Suggest graph" button (real Qt on an X server, like test_plugin.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _qt_env import why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)

from napari_causcell._napari import TrainWidget  # noqa: E402
from napari_causcell._napari._dag_grid import UNDIRECTED_COLOR as _UNDIRECTED_COLOR  # noqa: E402


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer(show=True)


def _points(viewer, adata, name="cells"):
    xy = np.random.default_rng(0).uniform(0, 100, (adata.n_obs, 2))
    return viewer.add_points(xy[:, ::-1], name=name, metadata={"adata": adata}, size=2)


def test_suggest_graph_fills_ticks(qtbot, viewer):
    import anndata as ad

    from napari_causcell.datasets import brain_aging

    table = brain_aging(n_cells=6000, n_genes=60, seed=0).tables["table"]
    _points(viewer, ad.AnnData(obs=table.obs[["age", "domain", "cell_type"]].copy()))
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(train, name="Train")
    train.set_concepts(["age", "domain", "cell_type"])
    assert not train.dag_plot.isVisible()
    train.suggest_btn.click()
    qtbot.waitUntil(lambda: not train.busy, timeout=60_000)
    assert train.suggestion is not None
    assert train.parents() == {"age": [], "domain": [], "cell_type": ["age", "domain"]}
    assert train.undirected_pending() == []
    assert "Suggested 2 edge(s)" in train.status.text()
    assert "age < domain" in train.status.text()  # the automatic tiers are reported
    assert train.dag_plot.isVisible() and len(train.dag_plot.ax.patches) == 2
    assert "oriented" in train.suggest_label.text()


def test_suggest_graph_marks_undirected_edges(qtbot, viewer):
    import anndata as ad

    rng = np.random.default_rng(0)
    n = 3000
    a = rng.integers(0, 3, n)
    b = np.where(rng.random(n) < 0.5, a, rng.integers(0, 3, n))
    obs = pd.DataFrame({"x1": pd.Categorical(a.astype(str)), "x2": pd.Categorical(b.astype(str))},
                       index=[f"c{i}" for i in range(n)])
    _points(viewer, ad.AnnData(obs=obs))
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(train, name="Train")
    train.set_concepts(["x1", "x2"])
    train.suggest_btn.click()
    qtbot.waitUntil(lambda: not train.busy, timeout=60_000)
    assert train.parents() == {"x1": [], "x2": []}  # nothing ticked for the user
    assert train.undirected_pending() == [("x1", "x2")]
    assert "x1 -- x2" in train.suggest_label.text()
    item = train.dag_table.item(1, 0)  # x2 <- x1
    assert item.background().color().name() == _UNDIRECTED_COLOR
    assert "undirected x1 -- x2" in item.toolTip()
    # the user decides: the pending list empties and training would accept the edge
    assert train.set_parent("x2", "x1")
    assert train.undirected_pending() == []
    assert "Every suggested edge is oriented" in train.suggest_label.text()
    assert train.edges() == [("x1", "x2")]


def test_suggest_graph_needs_two_concepts(qtbot, viewer):
    import anndata as ad

    obs = pd.DataFrame({"x1": pd.Categorical(list("ab") * 50)}, index=[f"c{i}" for i in range(100)])
    _points(viewer, ad.AnnData(obs=obs))
    train = TrainWidget(viewer)
    train.set_concepts(["x1"])
    train.suggest_graph()
    assert not train.busy and "at least two concepts" in train.status.text()
