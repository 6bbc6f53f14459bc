"""The Intervene widget's Trends section (app.trends as a napari worker job).

Needs an X server like test_plugin.py (pytest-xvfb or ``xvfb-run -a``); skips otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

from _qt_env import why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)

from napari_causcell._napari import InterveneWidget  # noqa: E402


def test_trends_button_runs_age_trends_and_fills_the_table(qtbot, make_napari_viewer,
                                                          brain_aging_with_model):
    viewer = make_napari_viewer(show=True)
    s = brain_aging_with_model(viewer, 600)
    w = InterveneWidget(viewer)
    assert not w.trends_btn.isEnabled()  # untrained
    s.model.train(2)
    s.trained()
    qtbot.waitUntil(lambda: w.trends_btn.isEnabled(), timeout=10_000)
    w.concept_combo.setCurrentText("age")
    assert w.trend_source.currentText() == "4wk"
    # source == target is refused without starting a job
    w.trend_target.setCurrentText("4wk")
    w.run_trends()
    assert not w.busy and "equals the source" in w.status.text()
    w.trend_target.setCurrentText("90wk")
    w.steps.value = 3  # magicgui form (GenerationSettings)
    w.run_trends()
    assert w.busy and not w.trends_btn.isEnabled()
    qtbot.waitUntil(lambda: not w.busy, timeout=120_000)
    df = w.trends_result
    assert df is not None and set(df["target"]) == {"90wk"}
    # the progress bar lives in the main thread and followed the sampler to the end
    assert w.pbar.n == 100 and w.pbar.total == 100
    assert list(df.columns[2:4]) == ["cell_type", "domain"]
    assert s.adata.uns["causcell_trends"]["params"]["source"] == "4wk"
    n = w.trends_table.rowCount()
    assert 0 < n <= 30
    # the table lists the largest changes first
    shown = [abs(float(w.trends_table.item(i, 3).text())) for i in range(n)]
    assert shown == sorted(shown, reverse=True)
    assert np.isfinite(shown).all()
    # interval, q-value and the units of replication beside each change: one mouse per age
    # gives no population-level test, so effect sizes with model-only intervals (#28 item 3)
    header = [w.trends_table.horizontalHeaderItem(j).text() for j in range(7)]
    assert header == ["to", "group", "gene", "change", "interval", "padj", "replicates"]
    assert w.trends_table.item(0, 6).text() == "model-only (no donor replication)"
    assert w.trends_table.item(0, 4).text() != ""  # a model-only interval
    assert "one donor per age" in w.status.text() and "model-only" in w.status.text()
    assert w.trends_btn.isEnabled()
