"""Issue 26 item 3 in napari: the Overlay dock's top-changed-genes table shows each change
with its 90 % interval and greys the genes whose interval includes 0, with a note.

Needs an X server like test_plugin.py (pytest-xvfb or ``xvfb-run -a``); skips otherwise.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from _qt_env import why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)

from qtpy.QtCore import Qt  # noqa: E402

from napari_causcell._napari import OverlayWidget  # noqa: E402
from napari_causcell._napari._layers import cells_layers, state_for  # noqa: E402
from napari_causcell._napari._overlay_widget import GREY  # noqa: E402
from napari_causcell.app import InterveneRequest, intervene_job  # noqa: E402
from napari_causcell.app.intervals import SPANS_ZERO_NOTE, change_texts  # noqa: E402
from napari_causcell.app.overlay import top_genes  # noqa: E402

NUMBER = r"[+-]\d+\.\d\d"


def _column(w, c):
    return [w.top_table.item(r, c) for r in range(w.top_table.rowCount())]


def _grey(w):
    return [item.foreground().color().name() == GREY for item in _column(w, 1)]


def test_top_genes_show_intervals_and_grey_the_ones_spanning_zero(make_napari_viewer, sdata,
                                                                 trained):
    viewer = make_napari_viewer(show=True)
    data, kwargs, _ = cells_layers(sdata, "table")[0]
    s = state_for(viewer.add_points(data, **kwargs))
    s.set_model(trained)
    iv = intervene_job(s, InterveneRequest("age", "90wk", "cell_type", "Astro",
                                           sampler="mean", steps=3)).run().intervention
    w = OverlayWidget(viewer)
    w.set_controls(color_by="expression", gene=s.genes[0], view="difference",
                   intervention=iv.name, compare="")
    top = top_genes(s, iv.name, n=15)
    assert w.top_genes() == list(top["gene"])
    assert w.top_table.horizontalHeaderItem(1).text() == "change [90 % interval]"
    texts = [item.text() for item in _column(w, 1)]
    assert texts == change_texts(top)
    # "+1.37 [+0.90, +1.80]": the change and its interval, as the table holds them
    parsed = np.array([[float(x) for x in re.findall(NUMBER, t)] for t in texts])
    np.testing.assert_allclose(parsed, top[["mean_change", "lower", "upper"]], atol=0.0051)
    for item in _column(w, 1) + _column(w, 2):  # numbers right-aligned, fixed width
        assert item.textAlignment() & Qt.AlignmentFlag.AlignRight and item.font().fixedPitch()
    assert _grey(w) == list(top["spans_zero"])
    assert w.top_note.isVisibleTo(w) == bool(top["spans_zero"].any())

    # the third gene's interval made to include 0: its row is grey, the note says why
    gene = top["gene"].iloc[2]
    at = iv.intervals["gene"] == gene
    iv.intervals.loc[at, "lower"], iv.intervals.loc[at, "upper"] = -1.0, 1.0
    w.refresh()
    grey = _grey(w)
    assert grey[2] and grey == list(top_genes(s, iv.name, n=15)["spans_zero"])
    assert all(it.foreground().color().name() == GREY for it in
               (w.top_table.item(2, c) for c in range(3)))
    assert w.top_note.isVisibleTo(w) and w.top_note.text() == SPANS_ZERO_NOTE
    # no interval includes 0: nothing grey, no note
    iv.intervals["lower"], iv.intervals["upper"] = 1e-3, 1.0
    w.refresh()
    assert not any(_grey(w)) and not w.top_note.isVisibleTo(w)
    # no intervals (they failed): the change alone, and why
    iv.intervals, iv.intervals_note = None, "RuntimeError: no validation cells"
    w.refresh()
    assert w.top_table.horizontalHeaderItem(1).text() == "mean change"
    assert [it.text() for it in _column(w, 1)] == [f"{d:+.3f}" for d in top["mean_change"]]
    assert w.top_note.text() == "No intervals: RuntimeError: no validation cells"
