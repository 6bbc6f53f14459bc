"""Issue #28 item 4: the docks fit a 1366 x 768 laptop screen, nothing cut; item 9: the Train
settings (a magicgui form), its time limit and the status lines; item 10: picks off the tissue
and the reader contributions. Real Qt on an X server (see test_plugin.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from _qt_env import SCREEN, why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)

from qtpy.QtWidgets import QAbstractButton, QApplication, QGroupBox, QLabel  # noqa: E402

from napari_causcell._napari import CausCellDock, InterveneWidget, TrainWidget  # noqa: E402
from napari_causcell._napari._layers import cells_layer_tuple  # noqa: E402
from napari_causcell.app import train as app_train  # noqa: E402

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
DOCS = os.environ.get("CAUSCELL_DOCS_SCREENSHOTS", "") not in ("", "0")


def _merfish(viewer):
    """The real MERFISH sample as the Points layer of cells."""
    from napari_causcell.datasets import merfish_brain_aging

    data, kwargs, _ = cells_layer_tuple(merfish_brain_aging(), "table",
                                        name="merfish_brain_aging cells", color_by="cell_type")
    return viewer.add_points(data, **kwargs)


def _settle(qtbot, ms=200):
    QApplication.processEvents()
    qtbot.wait(ms)


def cut_texts(widget) -> list[str]:
    """Visible texts that do not fit their widget (elided labels, buttons, group titles,
    table headers)."""
    cut = []
    for lab in widget.findChildren(QLabel):
        text = lab.text()
        if lab.isVisible() and text and not lab.wordWrap() and "<" not in text:
            if lab.fontMetrics().horizontalAdvance(text) > lab.contentsRect().width() + 1:
                cut.append(f"label {text!r}")
    for btn in widget.findChildren(QAbstractButton):
        if btn.isVisible() and btn.text() and btn.sizeHint().width() > btn.width() + 1:
            cut.append(f"button {btn.text()!r}")
    for box in widget.findChildren(QGroupBox):
        if box.isVisible() and box.fontMetrics().horizontalAdvance(box.title()) + 16 > box.width():
            cut.append(f"group {box.title()!r}")
    return cut


def _check_form(widget, qtbot):
    """The form scrolls vertically only; asks little height; nothing cut."""
    content, scroll = widget.content, widget.scroll
    assert widget.minimumSizeHint().height() <= 250
    assert widget.sizeHint().height() <= 700  # the dock body (scroll area and status line)
    assert content.minimumSizeHint().width() <= scroll.viewport().width()
    assert scroll.horizontalScrollBar().maximum() == 0
    assert cut_texts(content) == []


def test_separate_docks_fit_a_laptop_screen(qtbot, laptop):
    _merfish(laptop)
    widgets = [laptop.window.add_plugin_dock_widget("napari-causcell", name)[1]
               for name in ("Train", "Intervene", "Overlay")]
    _settle(qtbot, 500)
    window = laptop.window._qt_window
    # three docks stacked in one column: the window does not grow past the screen (nor is
    # an oversized window saved for the next session)
    assert window.minimumSizeHint().height() <= SCREEN[1]
    assert window.height() <= SCREEN[1] and window.width() <= SCREEN[0]
    for widget in widgets:
        widget.scroll.ensureWidgetVisible(widget.content)
        _check_form(widget, qtbot)
    train = widgets[0]
    # the DAG grid shows every tick box without scrolling inside the grid
    grid = train.dag_table
    assert grid.rowCount() == 3 and grid.verticalScrollBar().maximum() == 0
    header = grid.horizontalHeader()
    for j, name in enumerate(train._checked_concepts()):
        assert header.sectionSize(j) >= grid.fontMetrics().horizontalAdvance(name)
    _shot(qtbot, laptop, "napari_docks_1366x768.png")


def test_one_tabbed_dock_fits_and_screenshots(qtbot, laptop, tmp_path):
    import npe2

    manifest = npe2.PluginManager.instance().get_manifest("napari-causcell")
    assert "CausCell (all in tabs)" in {w.display_name for w in manifest.contributions.widgets}
    _merfish(laptop)
    dock, tabs = laptop.window.add_plugin_dock_widget("napari-causcell",
                                                      "CausCell (all in tabs)")
    assert isinstance(tabs, CausCellDock)
    assert [tabs.tabText(i) for i in range(tabs.count())] == ["Train", "Intervene", "Overlay"]
    assert tabs.train.state is tabs.intervene.state is tabs.overlay.state  # one dataset
    # item 10: the source's own cell-type labels stay selectable beside the short names
    iv = tabs.intervene
    iv.set_mode("label")
    iv.column_combo.setCurrentText("cell_type_original")
    labels = [iv.label_combo.itemText(i) for i in range(iv.label_combo.count())]
    assert "Oligodendrocyte" in labels and "Astrocyte" in labels
    for title, widget in (("Train", tabs.train), ("Intervene", tabs.intervene),
                          ("Overlay", tabs.overlay)):
        tabs.show_tab(title)
        _settle(qtbot, 300)
        _check_form(widget, qtbot)
        img = _shot(qtbot, laptop, f"napari_{title.lower()}_1366x768.png", tmp_path)
        assert img.shape[:2] == (SCREEN[1], SCREEN[0])  # the window kept the screen's size
        assert img[..., :3].std() > 20


def docs_image(name: str, tmp_path: Path | None = None) -> Path:
    """Where a screenshot goes: docs/images with ``CAUSCELL_DOCS_SCREENSHOTS=1`` when the
    docs or the README show an image of that name, else pytest's ``tmp_path``."""
    root = DOCS_IMAGES.parents[1]
    used = any(f"images/{name}" in page.read_text(encoding="utf-8")
               for page in [root / "README.md", *(root / "docs").glob("*.md")])
    folder = DOCS_IMAGES if DOCS and used else (tmp_path or Path(os.environ.get("TMPDIR",
                                                                                "/tmp")))
    return folder / name


def _shot(qtbot, viewer, name, tmp_path=None):
    from imageio.v3 import imwrite

    viewer.reset_view()
    _settle(qtbot, 300)
    img = viewer.screenshot(canvas_only=False, flash=False)
    out = docs_image(name, tmp_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    imwrite(out, img)
    return img


def test_train_settings_form_time_limit_loss_plot_and_status(qtbot, laptop):
    from napari_causcell.datasets import brain_aging

    data, kwargs, _ = cells_layer_tuple(brain_aging(n_cells=400, n_mice_per_age=1), "table",
                                        name="cells", color_by="cell_type")
    layer = laptop.add_points(data, **kwargs)
    train, intervene = TrainWidget(laptop), InterveneWidget(laptop)
    s = train.settings
    # magicgui defaults shared with Jupyter; psygnal 'changed' updates the limit line
    assert s.epochs.value == app_train.DEFAULT_EPOCHS
    assert s.max_time.value == app_train.DEFAULT_MAX_TIME
    assert "no time limit" in s.limit.value
    seen = []
    s.changed.connect(lambda *_: seen.append(1))
    s.epochs.value, s.max_time.value = 500, 2.0
    assert seen and "500 epochs or 2 s" in s.limit.value
    s.model_size.value, s.device.value = "tiny (tests, demos)", "cpu"
    train.set_concepts(["age", "cell_type"])
    assert train.set_parent("cell_type", "age")
    request = s.request(train._checked_concepts(), train.parents())
    assert (request.epochs, request.max_time, request.size) == (500, 2.0,
                                                                "tiny (tests, demos)")
    assert "Train a model" in intervene.status.text()
    train.start_training()
    assert not s.native.isEnabled()
    qtbot.waitUntil(lambda: not train.busy, timeout=120_000)
    model = train.state.model
    # the time limit ended it, long before 500 epochs
    assert model.train_params["stop_reason"] == "max_time" and len(model.history) < 500
    assert "ended by max_time" in train.status.text()
    # like against like, labelled
    assert train.loss_plot.labels == app_train.loss_labels("recon")
    np.testing.assert_allclose(train.loss_plot.train,
                               [h["train_recon"] for h in model.history])
    legend = [t.get_text() for t in train.loss_plot.ax.get_legend().get_texts()]
    assert legend[0] == "train reconstruction"
    assert train.loss_plot.ax.get_ylabel() == "reconstruction loss"
    # the other dock's stale "Train a model first" line was replaced
    _settle(qtbot)
    assert intervene.status.text().startswith("Model ready: concepts age, cell_type")
    # item 10: a pick far off the tissue is refused with a message; on a cell it works
    before = intervene.target_combo.currentText()
    far = layer.data.max(0) + 50 * np.ptp(layer.data, axis=0)
    assert intervene.pick_target_at(far) is None
    assert "No cell there" in intervene.status.text()
    assert intervene.target_combo.currentText() == before
    row = int(np.flatnonzero(train.state.adata.obs["age"] == "4wk")[0])
    assert intervene.pick_target_at(layer.data[row]) == "4wk"


def test_reader_is_offered_for_zarr_stores_and_h5ad(laptop, tmp_path):
    from npe2 import PluginManager

    from napari_causcell.datasets import brain_aging

    sdata = brain_aging(n_cells=150, n_genes=60, n_mice_per_age=1)
    zarr, h5ad = tmp_path / "tissue.zarr", tmp_path / "cells.h5ad"
    sdata.write(zarr)
    sdata.tables["table"].write_h5ad(h5ad)
    pm = PluginManager.instance()
    for path in (str(zarr), f"{zarr}/", str(h5ad)):
        assert "napari-causcell" in {r.plugin_name for r in pm.iter_compatible_readers([path])}
    # napari's viewer.open defaults to its own reader: name ours (docs/napari.md says so)
    layers = laptop.open(str(zarr), plugin="napari-causcell")
    assert len(layers) >= 1 and layers[0].metadata["adata"].n_obs == 150
    layers = laptop.open(str(h5ad), plugin="napari-causcell")
    assert layers[0].metadata["adata"].n_obs == 150
