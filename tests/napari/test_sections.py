"""Issue 28 items 5 and 6 in napari: the real MERFISH sample's sections side by side, titled,
with a legend, a scale bar and distinct colours; drawn shapes leave the cells visible.

Run: ``OMP_NUM_THREADS=1 xvfb-run -a pytest tests/napari/test_sections.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from _qt_env import why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)

from napari_causcell._napari import InterveneWidget, OverlayWidget  # noqa: E402
from napari_causcell._napari._layers import cells_layers  # noqa: E402
from napari_causcell._palette import delta_e  # noqa: E402
from napari_causcell.data.sections import boxes_overlap, section_boxes  # noqa: E402


@pytest.fixture
def viewer(make_napari_viewer):
    v = make_napari_viewer(show=True)
    v.window._qt_window.resize(1366, 768)
    return v


@pytest.fixture
def overlapping():
    """The shipped MERFISH data in the source's frame (both mice on top of each other)."""
    from napari_causcell.datasets import merfish_brain_aging

    sdata = merfish_brain_aging()
    table = sdata.tables["table"]
    table.obsm["spatial"] = table.obsm["spatial_original"].copy()
    return sdata


def _add(viewer, layers):
    out = []
    for data, kwargs, _ in layers:
        out.append(viewer.add_points(data, **kwargs))
    return out


def test_sections_side_by_side_with_titles_legend_and_units(qtbot, viewer, overlapping):
    cells, titles, legend = _add(viewer, cells_layers(overlapping, "table", color_by="cell_type"))
    mice = overlapping.tables["table"].obs["mouse"]
    xy = np.asarray(cells.data)[:, ::-1]
    assert not boxes_overlap(section_boxes(xy, mice))  # the layer is laid out
    assert list(titles.features["label"]) == ["mouse YC1 · age young", "mouse OC1 · age old"]
    assert legend.features["label"][0] == "cell_type" and len(legend.data) == 16
    assert tuple(str(u) for u in cells.units) == ("micrometer", "micrometer")
    colours = {tuple(c) for c in np.round(cells.face_color, 4)}
    assert len(colours) == 15
    worst = min(delta_e(a, b) for i, a in enumerate(colours) for b in list(colours)[i + 1:])
    assert worst >= 14

    overlay = OverlayWidget(viewer)
    overlay.set_controls(color_by="concept", concept="cell_type", intervention="factual",
                         compare="factual")
    names = [layer.name for layer in viewer.layers]
    assert "CausCell panel titles" in names and "CausCell overlay legend" in names
    panel_titles = list(viewer.layers["CausCell panel titles"].features["label"])
    assert "A: factual" in panel_titles and "B: factual" in panel_titles
    assert panel_titles.count("mouse OC1 · age old") == 2  # each panel titles its sections
    assert viewer.scale_bar.visible
    a, b = (viewer.layers[n] for n in names if n.startswith("CausCell A") or
            n.startswith("CausCell B"))
    box_a = np.r_[a.data.min(0), a.data.max(0)] + np.r_[a.translate, a.translate]
    box_b = np.r_[b.data.min(0), b.data.max(0)] + np.r_[b.translate, b.translate]
    assert not boxes_overlap({"a": box_a, "b": box_b})
    caption = viewer.text_overlay.text  # where the panels are, never read as sections
    assert "panel A (left, all sections): factual" in caption
    assert "panel B (right, all sections): factual" in caption


def test_drawn_shape_leaves_the_cells_visible(qtbot, viewer, overlapping):
    _add(viewer, cells_layers(overlapping, "table"))
    intervene = InterveneWidget(viewer)
    shapes = intervene.add_shapes_layer()
    shapes.add_polygons([np.array([[0, 0], [0, 500], [500, 500], [500, 0]], float)])
    assert shapes.face_color[0][-1] == 0  # no fill over the cells
    assert shapes.edge_width[0] < 20  # a thin outline (µm), not a band
