"""Issue 28 items 5 and 6 in the plots: sections side by side with titles, a scale bar, a
legend of category colours; no clipped colour-bar label in the Jupyter image."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from napari_causcell import pl  # noqa: E402


@pytest.fixture(scope="module")
def overlapping():
    from napari_causcell.datasets import merfish_brain_aging

    a = merfish_brain_aging(as_anndata=True)
    a.obsm["spatial"] = a.obsm["spatial_original"].copy()
    return a


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_spatial_expression_lays_out_and_labels_sections(overlapping):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    ax = pl.spatial_expression(overlapping, "cell_type")
    assert _texts(ax) == ["mouse YC1\nage young", "mouse OC1\nage old"]
    xs = [t.get_position()[0] for t in ax.texts]
    assert xs[1] - xs[0] > np.ptp(overlapping.obsm["spatial"][:, 0])  # apart, not on top
    bars = [a for a in ax.artists if isinstance(a, AnchoredSizeBar)]
    assert len(bars) == 1 and "µm" in bars[0].txt_label.get_text()
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(
        overlapping.obs["cell_type"].cat.categories)
    ax = pl.spatial_expression(overlapping, "C4b", library_key="")  # one section: as stored
    assert _texts(ax) == []
    matplotlib.pyplot.close("all")


def test_jupyter_image_keeps_the_colour_bar_label(overlapping):
    from PIL import Image

    from napari_causcell.app import AppState
    from napari_causcell.app.overlay import Overlay
    from napari_causcell.jupyter._base import figure_png, new_figure

    state = AppState(overlapping)
    long = "C4b: change (counterfactual - factual), log-expression; grey: not intervened on"
    ov = Overlay([np.linspace(-1, 1, state.n_cells)], ["do(age=old)"], "continuous", "RdBu_r",
                 (-1.0, 1.0), long)
    fig = new_figure(*pl.overlay_grid(state.coords, 1)[2])
    pl.tissue_overlay(ov, state.coords, fig=fig)
    png = Image.open(io.BytesIO(figure_png(fig, dpi=50)))
    fig.draw_without_rendering()
    label = fig.axes[-1].yaxis.label
    box = label.get_window_extent().transformed(fig.dpi_scale_trans.inverted())
    tight = fig.get_tightbbox()
    assert "\n" in label.get_text()  # wrapped
    assert tight.x0 <= box.x0 and box.x1 <= tight.x1  # inside what is saved
    assert png.size[0] >= int(0.95 * tight.width * 50)
