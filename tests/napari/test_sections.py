"""Issue 28 items 5 and 6 in napari: the real MERFISH sample's sections side by side, titled,
with a legend, a scale bar and distinct colours; drawn shapes leave the cells visible. The
titles and legends as napari draws them at 1366 x 768: whole on the canvas, never touching.

Run: ``OMP_NUM_THREADS=1 xvfb-run -a pytest tests/napari/test_sections.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from _qt_env import why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)

from napari_causcell._napari import InterveneWidget, OverlayWidget  # noqa: E402
from napari_causcell._napari._layers import OVERLAY_KEY, cells_layers  # noqa: E402
from napari_causcell._palette import delta_e  # noqa: E402
from napari_causcell.data.sections import boxes_overlap, section_boxes  # noqa: E402


@pytest.fixture
def viewer(laptop):
    return laptop


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
    # two short lines each; two unlabelled points mark the texts' extent for reset_view
    assert list(titles.features["label"]) == ["mouse YC1\nage young", "mouse OC1\nage old",
                                              "", ""]
    assert legend.features["label"][0] == "cell_type" and len(legend.data) == 16 + 2
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
    assert panel_titles.count("mouse OC1\nage old") == 2  # each panel titles its sections
    assert viewer.scale_bar.visible
    a, b = (viewer.layers[n] for n in names if n.startswith("CausCell A") or
            n.startswith("CausCell B"))
    box_a = np.r_[a.data.min(0), a.data.max(0)] + np.r_[a.translate, a.translate]
    box_b = np.r_[b.data.min(0), b.data.max(0)] + np.r_[b.translate, b.translate]
    assert not boxes_overlap({"a": box_a, "b": box_b})
    # where the panels are, never read as sections: in the dock, wrapped, not on the canvas
    caption = overlay.panels_label.text()
    assert overlay.panels_label.wordWrap() and not viewer.text_overlay.visible
    assert "panel A (left, all sections): factual" in caption
    assert "panel B (right, all sections): factual" in caption


def test_drawn_shape_leaves_the_cells_visible(qtbot, viewer, overlapping):
    _add(viewer, cells_layers(overlapping, "table"))
    intervene = InterveneWidget(viewer)
    shapes = intervene.add_shapes_layer()
    shapes.add_polygons([np.array([[0, 0], [0, 500], [500, 500], [500, 0]], float)])
    assert shapes.face_color[0][-1] == 0  # no fill over the cells
    assert shapes.edge_width[0] < 20  # a thin outline (µm), not a band


def _texts_on_screen(qtbot, viewer, layer):
    """Screen boxes ``[x0, y0, x1, y1]`` (canvas pixels) of each label of a text layer, as
    napari draws it alone (the view as ``reset_view`` left it), and the canvas' size."""
    import pandas as pd

    labels = list(layer.features["label"])
    shown = {other: other.visible for other in viewer.layers}
    for other in viewer.layers:
        other.visible = other is layer

    def shot(only):
        layer.features = pd.DataFrame({"label": [t if i == only else "" for i, t in
                                                 enumerate(labels)]})
        qtbot.wait(50)
        return viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int).max(-1)

    shot(-1)
    base, boxes = shot(-1), {}
    for i, text in enumerate(labels):
        if text:
            ys, xs = np.nonzero(np.abs(shot(i) - base) > 60)
            assert len(xs), f"{text!r} not drawn"
            boxes[f"{i}: {text}"] = np.array([xs.min(), ys.min(), xs.max(), ys.max()])
    layer.features = pd.DataFrame({"label": labels})
    for other, visible in shown.items():
        other.visible = visible
    return boxes, base.shape[::-1]


def _whole_and_apart(boxes, size):
    """Every text inside the canvas (not cut at an edge), no two touching."""
    for text, (x0, y0, x1, y1) in boxes.items():
        assert x0 > 1 and y0 > 1 and x1 < size[0] - 2 and y1 < size[1] - 2, (text, size)
    items = list(boxes.items())
    for i, (a, ba) in enumerate(items):
        for b, bb in items[i + 1:]:
            apart = ba[2] < bb[0] or bb[2] < ba[0] or ba[3] < bb[1] or bb[3] < ba[1]
            assert apart, (a, ba, b, bb)


def test_titles_and_legends_whole_and_apart_on_a_laptop(qtbot, viewer, overlapping):
    """Titles touched ("age youngmouse OC1"), panel A's title and the legend's labels were
    cut at the canvas' edges, the sample's legend sat on panel B, the caption ran off the
    canvas over the titles: napari's own drawing at 1366 x 768, after reset_view."""
    cells, titles, legend = _add(viewer, cells_layers(overlapping, "table", color_by="cell_type"))
    overlay = OverlayWidget(viewer)  # its zoom hook sizes the texts
    viewer.window.add_dock_widget(overlay)
    qtbot.wait(800)  # the window lays the dock out
    viewer.reset_view()
    qtbot.wait(300)
    for layer in (titles, legend):
        assert 8 <= layer.text.size <= 16
        _whole_and_apart(*_texts_on_screen(qtbot, viewer, layer))

    overlay.set_controls(color_by="concept", concept="cell_type", intervention="factual",
                         compare="factual")
    assert not titles.visible and not legend.visible  # the overlay titles the panels itself
    assert not viewer.text_overlay.visible  # no caption over the titles
    viewer.reset_view()
    qtbot.wait(300)
    panel_titles = viewer.layers["CausCell panel titles"]
    boxes, size = _texts_on_screen(qtbot, viewer, panel_titles)
    assert len(boxes) == 4 + 2 + 1  # 2 x 2 sections, 2 panels, the heading
    assert "6: cell_type" in boxes and panel_titles.text.size >= 7  # the heading, last
    _whole_and_apart(boxes, size)
    legend_b = viewer.layers["CausCell overlay legend"]
    boxes, size = _texts_on_screen(qtbot, viewer, legend_b)
    _whole_and_apart(boxes, size)
    b = next(layer for layer in viewer.layers if (layer.metadata or {}).get(OVERLAY_KEY) == "B")
    assert legend_b.data[:, 1].min() > (b.data[:, 1] + b.translate[1]).max()  # right of B

    for panel in [layer for layer in viewer.layers
                  if (layer.metadata or {}).get(OVERLAY_KEY) in ("A", "B")]:
        viewer.layers.remove(panel)
    names = [layer.name for layer in viewer.layers]
    assert titles.visible and legend.visible  # the data's own come back
    assert "CausCell panel titles" not in names and "CausCell overlay legend" not in names
