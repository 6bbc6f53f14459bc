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
from napari_causcell.app.canvas import legend_text, panel_offset, section_text, sections_of
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


def test_canvas_titles_legend_and_panels(overlapping):
    state = AppState(overlapping)
    titles = section_text(state, 0, "A: factual")
    boxes = state.section_boxes()
    assert titles.texts == ["mouse YC1 · age young", "mouse OC1 · age old", "A: factual"]
    for (x, y), box in zip(titles.positions[:2], boxes.values()):
        assert box[0] < x < box[2] and y < box[1]  # centred above its section
    wide = section_text(state, 1).positions - section_text(state, 0).positions
    assert np.allclose(wide, panel_offset(state, 1))
    pal = category_palette(state.labels("cell_type"))
    legend = legend_text(state, pal, title="cell_type")
    assert legend.texts[0] == "cell_type" and len(legend) == 16
    assert (legend.positions[:, 0] > state.coords[:, 0].max()).all()  # right of the tissue
    assert sections_of(state).keys() == {"mouse YC1 · age young", "mouse OC1 · age old"}


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
