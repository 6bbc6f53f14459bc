"""napari-spatialdata for real: our counterfactual tables in its widgets, and our widgets on
the layer it creates (X server needed, like test_plugin.py)."""

from __future__ import annotations

import numpy as np
import pytest

from _qt_env import why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)
pytest.importorskip("napari_spatialdata")

from napari.utils.events import EventedList  # noqa: E402
from napari_spatialdata._sdata_widgets import SdataWidget  # noqa: E402
from napari_spatialdata._view import QtAdataViewWidget  # noqa: E402

from napari_causcell import tl  # noqa: E402
from napari_causcell._napari import InterveneWidget, TrainWidget  # noqa: E402
from napari_causcell._napari._layers import layer_rows  # noqa: E402

KEY = "causcell_age_90wk_astro"


@pytest.fixture
def opened(qtbot, make_napari_viewer, sdata, trained):
    """The small tissue with one counterfactual table, its cells opened by napari-spatialdata."""
    tl.counterfactual(sdata, trained, {"age": "90wk"}, cells={"cell_type": "Astro"},
                      key_added=KEY, sampler="mean", steps=3)
    cf = sdata.tables[KEY]
    viewer = make_napari_viewer()
    widget = SdataWidget(viewer, EventedList([sdata]))
    viewer.window.add_dock_widget(widget, name="SpatialData")
    widget.coordinate_system_widget._select_coord_sys("global")
    widget.elements_widget._onItemChange("global")
    widget._onClick("cells")
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=60_000)
    return viewer, viewer.layers[0], sdata, cf


def test_counterfactual_table_opens_and_colours_the_cells(opened):
    viewer, layer, sdata, cf = opened
    meta = layer.metadata
    assert meta["sdata"] is sdata and set(meta["table_names"]) == {"table", KEY}
    view = QtAdataViewWidget(viewer)
    viewer.layers.selection.active = layer
    tables = [view.table_name_widget.itemText(i) for i in range(view.table_name_widget.count())]
    assert KEY in tables
    view.table_name_widget.setCurrentText(KEY)
    assert layer.metadata["adata"].n_obs == cf.n_obs  # joined: the intervened cells
    gene = str(tl.top_changed_genes(cf, n=1)["gene"].iloc[0])
    assert gene in [view.var_widget.item(i).text() for i in range(view.var_widget.count())]
    view.var_widget._onAction([gene])
    intervened = np.isin(np.asarray(meta["indices"]), cf.obs["cell_id"].to_numpy())
    colours = np.asarray(layer.face_color)
    assert len(np.unique(colours[intervened], axis=0)) > 5  # the counterfactual values
    assert len(np.unique(colours[~intervened], axis=0)) == 1  # no value: one NaN colour
    assert view.model.color_by == gene


def test_our_widgets_use_the_layer_it_created(opened):
    viewer, layer, sdata, cf = opened
    train, intervene = TrainWidget(viewer), InterveneWidget(viewer)
    for widget in (train, intervene):
        assert widget.source_layer is layer
        assert widget.state.table_key == "table" and widget.state.adata is sdata.tables["table"]
    assert train.state is intervene.state  # one state per dataset
    rows = layer_rows(layer, train.state)
    ids = train.state.adata.obs["cell_id"].to_numpy()
    np.testing.assert_array_equal(ids[rows], np.asarray(layer.metadata["indices"]))
    # the counterfactual table is a result, not a table to train on
    assert train.state.table_keys() == ["table"]
