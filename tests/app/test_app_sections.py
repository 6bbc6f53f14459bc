"""Issue 28 item 5: several sections in one frame laid side by side, titled, with a scale bar,
a legend and distinct category colours (no Qt, no viewer). Item 6: captions and colours."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_causcell._palette import category_colors, category_palette, delta_e
from napari_causcell.app import AppState
from napari_causcell.app.canvas import (
    CHAR_WIDTH,
    fit_zoom,
    font_size,
    legend_text,
    panel_offset,
    sections_of,
    text_boxes,
    titles_text,
    tissue_box,
)
from napari_causcell.app.overlay import colormap, make_overlay
from napari_causcell.data.sections import (
    boxes_overlap,
    laid_out,
    section_boxes,
    section_key,
    section_layout,
)
from napari_causcell.errors import DataError

STARMAP = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "starmap_mpfc.h5ad"


@pytest.fixture(scope="module")
def merfish():
    """The shipped real MERFISH sample (about 2 s to read)."""
    from napari_causcell.datasets import merfish_brain_aging

    return merfish_brain_aging(as_anndata=True)


@pytest.fixture()
def overlapping(merfish):
    """The MERFISH table in the source's own frame: both mice on top of each other."""
    a = merfish.copy()
    a.obsm["spatial"] = a.obsm["spatial_original"].copy()
    return a


def test_overlapping_sections_are_laid_side_by_side(overlapping):
    xy, mice = overlapping.obsm["spatial"], overlapping.obs["mouse"]
    assert boxes_overlap(section_boxes(xy, mice))  # the source's frame: on top of each other
    offsets = section_layout(xy, mice)
    out = laid_out(xy, mice)
    assert not boxes_overlap(section_boxes(out, mice))
    for sec, off in offsets.items():  # translation only: orientation and scale kept
        rows = (mice.astype(str) == sec).to_numpy()
        np.testing.assert_allclose(out[rows] - xy[rows], np.broadcast_to(off, (rows.sum(), 2)))
    boxes = section_boxes(out, mice)
    assert boxes["YC1"][0] < boxes["OC1"][0]  # category order, left to right


def test_sections_already_apart_stay_put(merfish):
    offsets = section_layout(merfish.obsm["spatial"], merfish.obs["mouse"])
    assert all(np.all(o == 0) for o in offsets.values())


@pytest.mark.parametrize("name", ["slice", "sample_id", "library_id", "donor", "Section"])
def test_section_key_found_under_the_users_names(overlapping, name):
    obs = pd.DataFrame({"celltype": overlapping.obs["cell_type"].to_numpy(),
                        name: overlapping.obs["mouse"].to_numpy()})
    table = type(overlapping)(obs=obs.set_index(overlapping.obs_names))
    assert section_key(table) == name
    assert section_key(table, "celltype") == "celltype"  # the user's choice wins
    assert section_key(table, "") is None
    with pytest.raises(DataError, match="'nope' is not in obs"):
        section_key(table, "nope")


def test_state_draws_in_the_laid_out_frame_and_titles_sections(overlapping, events):
    state = AppState(overlapping)
    assert state.section_key == "mouse"
    assert not boxes_overlap(state.section_boxes())
    np.testing.assert_allclose(state.tissue_coords, overlapping.obsm["spatial_original"])
    assert state.section_titles() == {"YC1": "mouse YC1 · age young",
                                      "OC1": "mouse OC1 · age old"}
    seen = events(state)
    state.set_section_key(None)  # the user says: one section
    assert seen == ["layout"] and state.section_key is None
    np.testing.assert_allclose(state.coords, state.tissue_coords)


def test_starmap_slices_each_in_its_own_frame():
    if not STARMAP.is_file():
        pytest.skip("shared STARmap data not present")
    import anndata as ad

    a = ad.read_h5ad(STARMAP)
    state = AppState(a)
    assert state.section_key == "slice"
    assert boxes_overlap(section_boxes(state.tissue_coords, a.obs["slice"]))
    assert not boxes_overlap(state.section_boxes())


def _disjoint(boxes: np.ndarray) -> bool:
    return not boxes_overlap({str(i): b for i, b in enumerate(boxes)})


def test_canvas_titles_legend_and_panels(overlapping):
    state = AppState(overlapping)
    titles = titles_text(state, ["factual"])
    boxes = state.section_boxes()
    assert titles.texts == ["mouse YC1\nage young", "mouse OC1\nage old", "A: factual"]
    top = tissue_box(state)[1]
    text = text_boxes(titles)
    for (x, _), tb, box in zip(titles.positions[:2], text[:2], boxes.values()):
        assert x == pytest.approx((box[0] + box[2]) / 2)  # centred over its section
        assert box[0] <= tb[0] and tb[2] <= box[2] and tb[3] < top  # within it, above
    wide = titles_text(state).positions - titles.positions[:2]
    np.testing.assert_allclose(wide, 0)  # the sample's titles sit where panel A's do
    pal = category_palette(state.labels("cell_type"))
    legend = legend_text(state, pal, title="cell_type")
    assert legend.texts[0] == "cell_type" and len(legend) == 16
    assert (legend.positions[:, 0] > state.coords[:, 0].max()).all()  # right of the tissue
    assert sections_of(state).keys() == {"mouse YC1 · age young", "mouse OC1 · age old"}


@pytest.mark.parametrize("panels", [0, 1, 2])
def test_titles_fit_their_sections_and_never_touch(overlapping, panels):
    """Issue: titles at the sections' centres in one fixed size touched ("age youngmouse
    OC1"), panel A's title was centred on the tissue's left edge (half off the canvas)."""
    state = AppState(overlapping)
    names = ["do(age=old) on age=young", "factual"][:panels]
    text = titles_text(state, names, "Penk: log-expression" if panels else "")
    boxes = text_boxes(text)
    assert len(text) == 2 * max(panels, 1) + panels + (panels > 0)
    assert _disjoint(boxes)  # no two titles share a pixel, at any zoom
    assert (boxes[:, 3] < tissue_box(state)[1]).all()  # all above the tissue
    np.testing.assert_allclose(text.extent, np.r_[boxes[:, :2].min(0), boxes[:, 2:].max(0)])
    for i in range(panels):  # centred over its panel, within its width
        off = panel_offset(state, i)
        box = tissue_box(state) + np.r_[off, off]
        j = text.texts.index(next(t for t in text.texts if t.startswith("AB"[i] + ":")))
        assert text.positions[j, 0] == pytest.approx((box[0] + box[2]) / 2)
        assert box[0] <= boxes[j, 0] and boxes[j, 2] <= box[2]
    if panels:  # the heading on top, over both panels
        assert boxes[-1, 3] < boxes[:-1, 1].min()
    # at the zoom that shows it all on a laptop's canvas (~600 px), napari's size is
    # readable and one section's title no wider than the section on screen
    extent = np.r_[np.minimum(text.extent[:2], tissue_box(state)[:2]),
                   np.maximum(text.extent[2:], tissue_box(state)[2:] + np.r_[
                       panel_offset(state, max(panels, 1) - 1)])]
    zoom = fit_zoom(extent, (610, 715))
    assert font_size(text.font, zoom) >= 8
    widest = max(len(s) for s in text.texts[0].split("\n"))
    sec = next(iter(state.section_boxes().values()))
    assert CHAR_WIDTH * font_size(text.font, zoom) * widest <= (sec[2] - sec[0]) * zoom


def test_long_titles_are_wrapped_or_cut():
    obs = pd.DataFrame({"sample": ["a_very_long_sample_name_of_slide_12"] * 3 + ["b"] * 3},
                       index=[f"c{i}" for i in range(6)])
    xy = np.c_[np.r_[np.arange(3), np.arange(3) + 10], np.r_[np.zeros(3), np.ones(3)]]
    import anndata as ad

    a = ad.AnnData(obs=obs, obsm={"spatial": xy.astype(float)})
    state = AppState(a)
    text = titles_text(state, ["do(cell_type=Oligodendrocyte) on a drawn shape"])
    sec = text.texts[0]
    assert len(sec) <= 16 and sec.endswith("…")
    assert text.texts[2] == "A: do(cell_type=Oligodendrocyte)\non a drawn shape"
    assert _disjoint(text_boxes(text))


def test_wide_tissue_panel_b_leaves_room_for_its_titles():
    obs = pd.DataFrame({"mouse": ["m1"] * 50 + ["m2"] * 50}, index=[f"c{i}" for i in range(100)])
    rng = np.random.default_rng(0)
    xy = np.r_[rng.uniform([0, 0], [1000, 300], (50, 2)),
               rng.uniform([1200, 0], [2200, 300], (50, 2))]
    import anndata as ad

    state = AppState(ad.AnnData(obs=obs, obsm={"spatial": xy}))
    text = titles_text(state, ["factual", "do(x=1) on all"], "Gene: log-expression")
    boxes = text_boxes(text)
    assert _disjoint(boxes)
    b_titles = boxes[[i for i, p in enumerate(text.positions)
                      if p[1] > tissue_box(state)[1]]]  # the titles of panel B, below A
    assert len(b_titles) == 3 and (b_titles[:, 1] > tissue_box(state)[3]).all()
    assert (b_titles[:, 3] < tissue_box(state)[1] + panel_offset(state, 1)[1]).all()


def test_legend_extent_reaches_its_longest_label(merfish):
    state = AppState(merfish)
    pal = category_palette(state.labels("cell_type"))
    legend = legend_text(state, pal, title="cell_type")
    boxes = text_boxes(legend)
    end = legend.positions[:, 0] + legend.marker + CHAR_WIDTH * legend.font * np.array(
        [len(t) for t in legend.texts])
    assert legend.extent[2] >= end.max() and legend.extent[2] >= boxes[:, 2].max()
    assert legend.extent[0] < legend.positions[:, 0].min()  # and the markers
    assert _disjoint(boxes)  # rows do not touch
    assert legend.extent[0] > tissue_box(state)[2]
    two = legend_text(state, pal, title="cell_type", panels=2)  # right of panel B
    assert two.extent[0] > tissue_box(state)[2] + panel_offset(state, 1)[0]


def test_category_colours_are_distinct(merfish):
    for n in (10, 15, 20):
        colors = category_colors(n)
        worst = min(delta_e(a, b) for a, b in itertools.combinations(colors, 2))
        assert worst >= 14, (n, worst)
    pal = category_palette(merfish.obs["cell_type"].cat.categories)
    assert delta_e(pal["Astro"], pal["Oligo"]) > 40  # both blue before (tab20)
    assert delta_e(pal["InN"], pal["ExN"]) > 40  # both orange before
    again = category_palette(["x", "y", *merfish.obs["cell_type"].cat.categories])
    assert delta_e(again["Astro"], pal["Astro"]) > 0  # by index, not by a hash of the name


def test_labels_overlay_uses_the_distinct_palette(merfish):
    state = AppState(merfish)
    ov = make_overlay(state, "concept", concept="cell_type")
    cols = np.array([ov.palette[k] for k in state.labels("cell_type")])
    assert len(np.unique(cols, axis=0)) == len(cols)


def test_change_colormap_shows_small_values_on_black_and_white():
    low = np.asarray(colormap("causcell_change")(0.0))[:3]
    lum = float(np.dot(low, [0.2126, 0.7152, 0.0722]))
    assert 0.08 < lum < 0.7  # visible on napari's black canvas and on a white page
    assert delta_e(low, (0, 0, 0)) > 20 and delta_e(low, (1, 1, 1)) > 20
