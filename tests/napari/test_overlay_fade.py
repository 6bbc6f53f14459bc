"""Issue 26 item 3 in napari: the Overlay dock draws cells whose counterfactual is
extrapolated (label combination never measured) faded, and its header counts them.

Needs an X server like test_plugin.py (pytest-xvfb or ``xvfb-run -a``); skips otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

from _qt_env import why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)

from napari_causcell._napari import OverlayWidget  # noqa: E402
from napari_causcell._napari._layers import cells_layers, state_for  # noqa: E402
from napari_causcell.app import InterveneRequest, intervene_job  # noqa: E402
from napari_causcell.app.overlay import FADE_ALPHA, FADE_NOTE  # noqa: E402


def test_overlay_fades_extrapolated_cells(make_napari_viewer, sdata, no_old_microglia):
    viewer = make_napari_viewer(show=True)
    data, kwargs, _ = cells_layers(sdata, "table")[0]
    s = state_for(viewer.add_points(data, **kwargs))
    s.set_model(no_old_microglia)  # trained without 90wk microglia
    iv = intervene_job(s, InterveneRequest("age", "90wk", "label", "4wk", column="age",
                                           sampler="mean", steps=3)).run().intervention
    w = OverlayWidget(viewer)
    w.fade_check.setChecked(False)  # only the extrapolated
    w.set_controls(color_by="expression", gene=s.genes[0], view="counterfactual",
                   intervention=iv.name, compare="factual")
    a, b = w.overlay_layer("A", create=False), w.overlay_layer("B", create=False)
    extra = np.zeros(s.n_cells, bool)
    extra[s.source_rows(iv.table)] = iv.table.obs["extrapolated"].to_numpy(bool)
    assert extra.any()
    np.testing.assert_allclose(a.face_color[extra, 3], FADE_ALPHA)
    np.testing.assert_allclose(a.face_color[~extra, 3], 1.0)
    np.testing.assert_allclose(b.face_color[:, 3], 1.0)  # the factual panel
    assert w.panels_label.text().endswith(FADE_NOTE)
    assert (f"({extra.sum()} of {len(iv.rows)} cells extrapolated)"
            in w.top_label.text())


def test_overlay_fades_uncertain_cells(make_napari_viewer, sdata, trained,
                                      one_uncertain_group):
    from napari_causcell.app.fading import extrapolated_cells
    from napari_causcell.app.overlay import UNCERTAIN_NOTE

    viewer = make_napari_viewer(show=True)
    data, kwargs, _ = cells_layers(sdata, "table")[0]
    s = state_for(viewer.add_points(data, **kwargs))
    s.set_model(trained)
    iv = intervene_job(s, InterveneRequest("age", "90wk", "domain", s.labels("domain")[0],
                                           sampler="mean", steps=3)).run().intervention
    gene = s.genes[0]
    low, _ = one_uncertain_group(s, iv, gene)
    w = OverlayWidget(viewer)
    assert w.fade_check.isChecked()
    w.set_controls(color_by="expression", gene=gene, view="difference",
                   intervention=iv.name, compare="")
    a = w.overlay_layer("A", create=False)
    np.testing.assert_allclose(a.face_color[low, 3], FADE_ALPHA)
    np.testing.assert_allclose(a.face_color[~low, 3], 1.0)
    assert UNCERTAIN_NOTE.removeprefix("faded: ") in w.panels_label.text()
    w.fade_check.setChecked(False)  # redraws (update on every change)
    alpha = w.overlay_layer("A", create=False).face_color[:, 3]
    np.testing.assert_allclose(alpha[~extrapolated_cells(s, iv)], 1.0)
    assert UNCERTAIN_NOTE.removeprefix("faded: ") not in w.panels_label.text()
