"""The napari plugin end to end, with real Qt on an X server.

Run: ``OMP_NUM_THREADS=1 pytest tests/napari`` (pytest-xvfb starts Xvfb) or
``xvfb-run -a pytest tests/napari``. Offscreen Qt cannot draw the OpenGL canvas, so the module
skips itself without an X server.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from _qt_env import why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)

from test_screen import docs_image  # noqa: E402

from napari_causcell._napari import InterveneWidget, OverlayWidget, TrainWidget  # noqa: E402
from napari_causcell._napari._layers import OVERLAY_KEY  # noqa: E402
from napari_causcell._napari._sample import brain_aging_sample  # noqa: E402
from napari_causcell.app.cells import cells_in_polygons  # noqa: E402
from napari_causcell.app.overlay import predicted_labels  # noqa: E402

# CAUSCELL_DOCS_SCREENSHOTS=1 trains a useful model (minutes) and writes the screenshots the docs
# show into docs/images (test_screen.docs_image); by default a 2-epoch tiny model is trained
# and they go to pytest's tmp_path.
DOCS = os.environ.get("CAUSCELL_DOCS_SCREENSHOTS", "") not in ("", "0")
N_CELLS = 3000 if DOCS else 600
EPOCHS = 30 if DOCS else 2
SIZE = "small (fast)" if DOCS else "tiny (tests, demos)"
STEPS = 20 if DOCS else 5
WAIT_MS = 900_000 if DOCS else 120_000


@pytest.fixture
def viewer(make_napari_viewer):
    v = make_napari_viewer(show=True)
    v.window._qt_window.resize(1600, 1000)
    return v


def _small_sample(viewer):
    data, kwargs, kind = brain_aging_sample(n_cells=N_CELLS, n_mice_per_age=1)[0]
    assert kind == "points"
    return viewer.add_points(data, **kwargs)


def _wait(qtbot, widget, timeout=WAIT_MS):
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def _train(qtbot, viewer, epochs=2):
    layer = _small_sample(viewer)
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(train, name="Train", tabify=True)
    train.set_concepts(["age", "domain", "cell_type"])
    assert train.set_parent("cell_type", "age")
    assert train.set_parent("cell_type", "domain")
    train.epochs.value = epochs  # the settings are a magicgui form
    train.model_size.value = SIZE
    train.device.value = "cpu"
    yielded = []
    train.start_training()
    assert train.busy and not train.train_btn.isEnabled()
    assert train.worker.pbar.total == epochs  # a napari.utils.progress bar, one step per epoch
    train.worker.yielded.connect(yielded.append)
    _wait(qtbot, train)
    return layer, train, yielded


# -----------------------------------------------------------------------------------------
def test_manifest_sample_and_dock_widgets(viewer):
    import npe2

    pm = npe2.PluginManager.instance()
    manifest = pm.get_manifest("napari-causcell")
    assert {w.display_name for w in manifest.contributions.widgets} == {
        "Train", "Intervene", "Overlay", "CausCell (all in tabs)"}
    assert [s.key for s in manifest.contributions.sample_data] == [
        "brain_aging", "merfish_brain_aging"]

    viewer.open_sample("napari-causcell", "brain_aging")
    layer = viewer.layers["brain_aging cells"]  # then the sections' titles and the legend
    meta = layer.metadata
    sdata, adata = meta["sdata"], meta["adata"]
    assert adata is sdata.tables["table"]
    assert (meta["region_key"], meta["instance_key"]) == ("region", "cell_id")
    assert len(layer.data) == adata.n_obs == 6000
    # points at tissue coordinates, napari (y, x) order
    np.testing.assert_allclose(layer.data, np.asarray(adata.obsm["spatial"])[:, ::-1])
    assert len(np.unique(layer.face_color, axis=0)) == adata.obs["cell_type"].nunique()

    for name in ("Train", "Intervene", "Overlay"):
        dock, widget = viewer.window.add_plugin_dock_widget("napari-causcell", name)
        assert widget.source_layer is layer
        assert widget.state.adata is adata

    # the real MERFISH data beside it (shipped with the package, offline)
    viewer.open_sample("napari-causcell", "merfish_brain_aging")
    real = viewer.layers["merfish_brain_aging cells"]
    assert real.name == "merfish_brain_aging cells" and len(real.data) == 4788
    assert real.metadata["adata"].obs["age"].cat.categories.tolist() == ["young", "old"]
    assert "Sun et al." in real.metadata["credit"]


def test_dag_cycle_refused_and_derive_domains(qtbot, viewer):
    layer = _small_sample(viewer)
    train = TrainWidget(viewer)
    train.set_concepts(["age", "domain", "cell_type"])
    assert train.set_parent("cell_type", "age")      # age -> cell_type
    assert train.set_parent("age", "domain")         # domain -> age
    assert not train.set_parent("domain", "cell_type")  # cell_type -> domain closes a cycle
    assert "cycle" in train.dag_message.text()
    assert "cycle" in train.status.text()
    assert sorted(train.edges()) == [("age", "cell_type"), ("domain", "age")]
    train.set_concepts([])
    train.start_training()
    assert "concept" in train.status.text().lower() and not train.busy

    # derive spatial domains (a 'domain' column exists, so a new one is added)
    obs = train.state.adata.obs
    before = layer.face_color.copy()
    train.domains_n.setValue(4)
    train.domains_from.setCurrentText("cell_type")
    train.derive_btn.click()
    _wait(qtbot, train)
    assert list(obs["causcell_domain"].cat.categories) == ["D0", "D1", "D2", "D3"]
    assert len(np.unique(layer.face_color, axis=0)) == 4 and not np.array_equal(
        before, layer.face_color)
    assert "causcell_domain" in train._checked_concepts()
    assert "causcell_domain" in train.status.text()


def test_cancel_keeps_a_usable_model(qtbot, viewer):
    _small_sample(viewer)
    train = TrainWidget(viewer)
    train.set_concepts(["age", "cell_type"])
    train.epochs.value = 500
    train.model_size.value = "tiny (tests, demos)"
    train.device.value = "cpu"
    train.start_training()
    train.worker.yielded.connect(lambda p: train.cancel_btn.click())
    _wait(qtbot, train)
    model = train.state.model
    assert model.is_trained
    assert model.train_params["stop_reason"] == "cancelled"
    assert 1 <= len(model.history) < 500
    assert train.train_btn.isEnabled() and not train.cancel_btn.isEnabled()
    # usable: predictions and an intervention
    pred = predicted_labels(train.state, "age")
    assert len(pred) == N_CELLS
    iv = InterveneWidget(viewer)
    assert iv.run_btn.isEnabled()


def test_train_intervene_overlay_and_screenshot(qtbot, viewer, tmp_path):
    layer, train, yielded = _train(qtbot, viewer, epochs=EPOCHS)
    s = train.state
    assert s.model.is_trained and len(s.model.history) == EPOCHS
    assert s.model.edges == [("age", "cell_type"), ("domain", "cell_type")]
    assert train.loss_plot.epochs == list(range(1, EPOCHS + 1))
    assert np.isfinite(train.loss_plot.train).all()
    assert f"Trained {EPOCHS} epochs" in train.status.text()
    _screenshot(qtbot, viewer, train, "napari_train.png", tmp_path)
    sdata = layer.metadata["sdata"]

    # save and load through the widget
    train.save_model(str(tmp_path / "model"))
    train.load_model(str(tmp_path / "model"), device="cpu")
    assert s.model.is_trained and s.model.concepts == ["age", "domain", "cell_type"]

    intervene = InterveneWidget(viewer)
    overlay = OverlayWidget(viewer)
    viewer.window.add_dock_widget(intervene, name="Intervene", tabify=True)
    viewer.window.add_dock_widget(overlay, name="Overlay", tabify=True)
    intervene.steps.value = STEPS  # the generation settings are a magicgui form

    # an empty selection is refused with a message (no point selected)
    intervene.set_mode("indices")
    intervene.run()
    assert not intervene.busy and "Refused" in intervene.status.text()
    assert "empty" in intervene.status.text()

    # 1) age: do(age=90wk) on the 4wk cells
    assert intervene.concept_combo.currentText() == "age"
    intervene.target_combo.setCurrentText("90wk")
    intervene.set_mode("label")
    intervene.column_combo.setCurrentText("age")
    intervene.label_combo.setCurrentText("4wk")
    intervene.run()
    _wait(qtbot, intervene)
    age_name = "do(age=90wk) on age=4wk"
    assert list(s.interventions) == [age_name]
    iv_age = s.interventions[age_name]
    assert iv_age.key in sdata.tables  # written back into the SpatialData
    table = sdata.tables[iv_age.key]
    assert table.n_obs == int((s.adata.obs["age"] == "4wk").sum())
    assert (table.obs["age"] == "90wk").all()
    assert table.uns["spatialdata_attrs"]["region"] == "cells"

    # a second condition AND-ed with the label choice (#28 item 7): Astro cells that are 4wk
    intervene.column_combo.setCurrentText("cell_type")
    intervene.label_combo.setCurrentText("Astro")
    assert intervene.and_column.currentText() == "(none)" and intervene.request().where is None
    intervene.and_column.setCurrentText("age")
    intervene.and_label.setCurrentText("4wk")
    request = intervene.request()
    assert request.where == {"age": "4wk"}
    chosen = request.validate(s)[1]
    obs = s.adata.obs
    want = (obs["cell_type"] == "Astro") & (obs["age"] == "4wk")
    np.testing.assert_array_equal(chosen.mask, want.to_numpy())
    assert chosen.description == "cell_type=Astro and age=4wk"
    intervene.and_column.setCurrentText("(none)")

    # 2) locus: target domain picked on the tissue, cells inside a drawn polygon
    intervene.concept_combo.setCurrentText("domain")
    # the one-click "keep cell type" box follows the concept (descendants in the graph)
    assert intervene.keep_box.text() == "Keep each cell's cell_type (direct effect)"
    assert intervene.keep_box.isEnabled()
    intervene.keep_box.setChecked(True)
    assert intervene.request().keep is True
    intervene.keep_box.setChecked(False)
    obs = s.adata.obs
    target_cell = int(np.flatnonzero(obs["domain"] == "Striatum")[0])
    label = intervene.pick_target_at(layer.data[target_cell])  # world (y, x) of that cell
    assert label == "Striatum" == intervene.target_combo.currentText()
    shapes = intervene.add_shapes_layer()
    x0, y0 = s.coords[obs["mouse"].astype(str) == "m4wk_1"].min(0) - 5.0  # no cell on an edge
    square = np.array([[y0, x0], [y0, x0 + 400], [y0 + 300, x0 + 400], [y0 + 300, x0]])
    shapes.add_polygons([square])
    intervene.set_mode("polygon")
    intervene.run()
    _wait(qtbot, intervene)
    assert len(s.interventions) == 2
    iv_locus = list(s.interventions.values())[-1]
    assert iv_locus.do == {"domain": "Striatum"}
    inside = cells_in_polygons(s, [square[:, ::-1]])
    np.testing.assert_array_equal(np.sort(iv_locus.rows), np.flatnonzero(inside))
    assert (sdata.tables[iv_locus.key].obs["domain"] == "Striatum").all()
    # an empty polygon is refused with a message
    shapes.data = [square + 50_000]
    intervene.run()
    assert not intervene.busy and "empty" in intervene.status.text()

    # overlay: the newest intervention is listed; factual vs counterfactual of a gene
    gene = "C4b"
    overlay.set_controls(color_by="expression", gene=gene, view="factual",
                         intervention=age_name, compare="")
    a = overlay.overlay_layer("A", create=False)
    assert a is not None and a.metadata[OVERLAY_KEY] == "A"
    factual = a.face_color.copy()
    assert len(np.unique(factual, axis=0)) > 20
    limits_factual = overlay.last_overlay.limits
    overlay.set_controls(view="counterfactual")
    cf = a.face_color.copy()
    assert overlay.last_overlay.limits == limits_factual  # shared contrast limits
    changed = np.flatnonzero(np.any(np.abs(cf - factual) > 1e-6, axis=1))
    assert changed.size > 0
    assert set(changed) <= set(iv_age.rows)  # only the intervened cells change colour
    overlay.set_controls(view="difference")
    lo, hi = overlay.last_overlay.limits
    assert lo == -hi and overlay.last_overlay.cmap == "RdBu_r"
    untouched = np.setdiff1d(np.arange(N_CELLS), iv_age.rows)
    grey = np.unique(a.face_color[untouched], axis=0)
    assert len(grey) == 1 and np.allclose(grey[0, :3], grey[0, 0])  # not intervened: grey
    assert np.isnan(overlay.last_overlay.values[0][untouched]).all()
    assert "change" in overlay.colorbar.caption.text()

    # top changed genes: click one -> shows it
    genes = overlay.top_genes()
    assert len(genes) == 15
    overlay.top_table.cellClicked.emit(2, 0)
    assert overlay.gene_combo.currentText() == genes[2]
    assert overlay.last_overlay.label.startswith(genes[2])

    # two interventions side by side, then label / predicted / magnitude colourings
    overlay.set_controls(view="difference", gene=gene, intervention=age_name,
                         compare=iv_locus.name)
    b = overlay.overlay_layer("B", create=False)
    assert b is not None and np.any(np.asarray(b.translate) != 0)
    overlay.set_controls(color_by="concept", concept="domain", intervention=iv_locus.name,
                         compare="factual")
    labels_cf = overlay.last_overlay.values[0]
    assert set(labels_cf[iv_locus.rows]) == {"Striatum"}
    overlay.set_controls(color_by="predicted", concept="age")
    assert len(overlay.last_overlay.values[0]) == N_CELLS
    overlay.set_controls(color_by="magnitude", intervention=age_name, compare="")
    mag = overlay.last_overlay.values[0]
    assert np.isnan(mag[untouched]).all() and (mag[iv_age.rows] > 0).all()
    assert overlay.overlay_layer("B", create=False) is None

    # grid mode: one viewbox per panel, other layers hidden meanwhile and shown again after
    overlay.grid_check.setChecked(True)
    overlay.set_controls(color_by="expression", gene=gene, view="difference",
                         intervention=age_name, compare=iv_locus.name)
    assert viewer.grid.enabled and not layer.visible
    assert tuple(overlay.overlay_layer("B", create=False).translate) == (0.0, 0.0)
    overlay.grid_check.setChecked(False)
    assert not viewer.grid.enabled and layer.visible

    # the screenshot for the docs: factual vs counterfactual of an age gene
    overlay.set_controls(color_by="expression", gene=gene, view="counterfactual",
                         intervention=age_name, compare="factual")
    layer.visible = False
    viewer.layers.remove(shapes)  # its far-away test polygon would widen the view
    img = _screenshot(qtbot, viewer, overlay, "napari_overlay.png", tmp_path)
    rgb = img[..., :3].reshape(-1, 3)
    assert rgb.std() > 20
    assert len(np.unique(rgb[::7], axis=0)) > 200
    canvas = viewer.screenshot(canvas_only=True, flash=False)[..., :3].reshape(-1, 3)
    assert canvas.std(0).max() > 10  # the cells are drawn, not a blank canvas
    assert len(np.unique(canvas[::5], axis=0)) > 50  # many colours from the colormap
    # and the paired change of two interventions on the diverging scale
    overlay.set_controls(view="difference", intervention=age_name, compare=iv_locus.name)
    img = _screenshot(qtbot, viewer, overlay, "napari_difference.png", tmp_path)
    assert img[..., :3].std() > 20


def _screenshot(qtbot, viewer, widget, name, tmp_path):
    """The whole window with ``widget``'s dock in front, saved as a PNG."""
    from imageio.v3 import imwrite
    from qtpy.QtCore import Qt

    try:  # close notification toasts so they do not cover the canvas
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()
    except ImportError:  # pragma: no cover - private napari module moved
        pass
    dock = widget.parent()
    while dock is not None and not hasattr(dock, "setFloating"):
        dock = dock.parent()
    if dock is not None:
        dock.raise_()
        viewer.window._qt_window.resizeDocks([dock], [430], Qt.Orientation.Horizontal)
    viewer.reset_view()
    qtbot.wait(300)
    img = viewer.screenshot(canvas_only=False, flash=False)
    out = docs_image(name, tmp_path)  # docs/images only for an image the docs show
    out.parent.mkdir(parents=True, exist_ok=True)
    imwrite(out, img)
    return img
