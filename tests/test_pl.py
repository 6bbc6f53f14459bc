"""pl: the figures show the numbers they claim to show."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from napari_causcell import DataError, pl


def _offsets(ax):
    return ax.collections[-1].get_array()


def test_counterfactual_overlay_panels(trained, small_sdata):
    t = small_sdata.tables["table"]
    cf = trained.counterfactual(t[t.obs["age"] == "4wk"], do={"age": "90wk"}, seed=0)
    fig = pl.counterfactual_overlay(cf, "C4b", background=small_sdata)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == [
        "C4b: factual", "C4b: counterfactual", "C4b: difference"]
    j = list(cf.var_names).index("C4b")
    fact, delta = cf.layers["factual"][:, j], cf.layers["delta"][:, j]
    assert np.allclose(_offsets(axes[0]), fact)
    assert np.allclose(_offsets(axes[1]), np.maximum(fact + delta, 0))
    assert np.allclose(_offsets(axes[2]), delta)
    # shared scale for factual and counterfactual, symmetric for the difference
    c0, c1, c2 = (ax.collections[-1] for ax in axes)
    assert c0.get_clim() == c1.get_clim()
    lo, hi = c2.get_clim()
    assert lo == pytest.approx(-hi)
    assert fig._suptitle.get_text() == "do(age=90wk)"
    with pytest.raises(DataError, match="not in the data"):
        pl.counterfactual_overlay(cf, "NoSuchGene")


def test_spatial_expression_and_loss(trained, small_sdata):
    ax = pl.spatial_expression(small_sdata, "Mbp", layer="counts")
    t = small_sdata.tables["table"]
    j = list(t.var_names).index("Mbp")
    assert np.allclose(_offsets(ax), t.layers["counts"][:, j].toarray().ravel())
    ax = pl.loss(trained)
    labels = [line.get_label() for line in ax.get_lines()]
    assert "train_recon" in labels and "val_concept" in labels
    assert len(ax.get_lines()[0].get_xdata()) == len(trained.history)


def test_overlay_grid_stacks_panels_of_a_wide_tissue():
    wide = np.c_[np.linspace(0, 6000, 50), np.linspace(0, 1000, 50)]
    square = np.c_[np.linspace(0, 1000, 50), np.linspace(0, 1000, 50)]
    rows, cols, (w, h) = pl.overlay_grid(wide, 3)
    assert (rows, cols) == (3, 1) and w == 14.0 and h > 3 * 1.2
    rows, cols, (w, h) = pl.overlay_grid(square, 2)
    assert (rows, cols) == (1, 2) and w > h
    assert pl.overlay_grid(wide, 1)[:2] == (1, 1)


def _tall_tissue(n=600, seed=0):
    """Two tall sections side by side (x extent about half the y extent), as MERFISH."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([0, 0], [450, 2000], size=(n, 2))
    xy[n // 2:, 0] += 650
    return xy


def test_diverging_scale_gives_cells_grey_edges():
    """Near-zero changes are white on RdBu_r: in the difference view the cells get thin grey
    rims (visible on the white axes, unlike the rimless grey cells not intervened on); the
    factual/counterfactual (viridis) cells stay without edges."""
    from napari_causcell.app.overlay import Overlay

    xy = _tall_tissue()
    diff = np.where(np.arange(len(xy)) < 300, np.linspace(-0.01, 0.01, len(xy)), np.nan)
    ov = Overlay([diff], ["do"], "continuous", "RdBu_r", (-1.0, 1.0), "change")
    fig = pl.tissue_overlay(ov, xy, unit=None)
    grey, cells = fig.axes[0].collections  # not intervened on (NaN), then the changes
    assert len(cells.get_offsets()) == 300 and len(grey.get_offsets()) == 300
    edge = cells.get_edgecolors()
    assert edge.shape[0] >= 1 and np.allclose(edge[:, :3], 0.55)
    assert 0.1 <= cells.get_linewidths()[0] <= 0.5
    assert np.all(grey.get_linewidths() == 0)
    assert np.allclose(grey.get_facecolors()[0, :3], 0.92)  # lighter than the rims
    ov = Overlay([np.abs(diff)], ["do"], "continuous", "viridis", (0.0, 1.0), "expression")
    fig = pl.tissue_overlay(ov, xy, unit=None)
    assert np.all(fig.axes[0].collections[-1].get_linewidths() == 0)
    matplotlib.pyplot.close("all")


def test_counterfactual_overlay_rims_only_the_difference():
    import anndata as ad

    rng = np.random.default_rng(0)
    xy = _tall_tissue(200)
    fact = rng.gamma(2.0, 1.0, (200, 2)).astype(np.float32)
    cf = ad.AnnData(fact.copy(), layers={"factual": fact,
                                         "delta": rng.normal(0, 0.5, (200, 2))})
    cf.var_names = ["G1", "G2"]
    cf.obsm["spatial"] = xy
    fig = pl.counterfactual_overlay(cf, "G1")
    axes = [ax for ax in fig.axes if ax.get_title()]
    widths = [ax.collections[-1].get_linewidths()[0] for ax in axes]
    assert widths[0] == widths[1] == 0 and widths[2] > 0
    assert np.allclose(axes[2].collections[-1].get_edgecolors()[:, :3], 0.55)
    matplotlib.pyplot.close("all")


def test_overlay_grid_follows_the_tissue_aspect():
    """Tall tissue: narrow panels with no wide gap between A and B (issue: a fixed
    4.6 x 4.2 inch panel whatever the tissue)."""
    from napari_causcell.app.overlay import Overlay

    tall, square = _tall_tissue(), np.c_[np.linspace(0, 1000, 50), np.linspace(0, 1000, 50)]
    w_tall, h_tall = pl.overlay_grid(tall, 2)[2]
    w_square, h_square = pl.overlay_grid(square, 2)[2]
    assert w_tall < w_square - 2.0 and h_tall == h_square
    assert pl.overlay_grid(tall, 2)[:2] == (1, 2)
    # bounds: a needle of a tissue still gets a readable panel, a wide one is not too flat
    needle = np.c_[np.linspace(0, 10, 50), np.linspace(0, 5000, 50)]
    assert pl.overlay_grid(needle, 1)[2][0] >= 1.6 + 1.2
    flat = np.c_[np.linspace(0, 1900, 50), np.linspace(0, 1000, 50)]
    assert 2.0 + 0.6 <= pl.overlay_grid(flat, 2)[2][1] < 4.2
    ov = Overlay([np.ones(len(tall)), np.ones(len(tall))], ["factual", "do"], "continuous",
                 "viridis", (0.0, 2.0), "expression")
    fig = pl.tissue_overlay(ov, tall, unit=None)
    fig.draw_without_rendering()
    a, b = (ax.get_position().transformed(fig.transFigure) for ax in fig.axes[:2])
    gap_in = (b.x0 - a.x1) / fig.dpi
    assert 0 < gap_in < 0.6
    assert a.width / a.height == pytest.approx(np.ptp(tall[:, 0]) / np.ptp(tall[:, 1]),
                                               rel=0.1)
    matplotlib.pyplot.close("all")


def test_tissue_overlay_fades_extrapolated_cells():
    """#26 item 3: the cells an overlay marks faded (extrapolated counterfactuals) are drawn
    with alpha 0.35, the others opaque; the figure says what the faded cells are."""
    from napari_causcell.app.overlay import FADE_ALPHA, FADE_NOTE, Overlay

    xy = _tall_tissue(200)
    faded = np.arange(200) % 4 == 0
    values = np.where(np.arange(200) < 150, np.linspace(0, 1, 200), np.nan)  # 50 grey
    ov = Overlay([values], ["do"], "continuous", "viridis", (0.0, 1.0), "expression",
                 faded=[faded])
    fig = pl.tissue_overlay(ov, xy, unit=None)
    cells = fig.axes[0].collections[-1]
    drawn = np.isfinite(values)
    np.testing.assert_allclose(cells.get_facecolors()[:, 3],
                               np.where(faded[drawn], FADE_ALPHA, 1.0))
    assert np.allclose(fig.axes[0].collections[0].get_facecolors()[:, 3], 1.0)  # grey
    assert fig.get_supxlabel().replace("\n", " ") == FADE_NOTE
    labels = Overlay([np.array(["a", "b"] * 100, object)], ["do"], "categorical",
                     palette={"a": np.array([1, 0, 0, 1.0]), "b": np.array([0, 0, 1, 1.0])},
                     faded=[faded])
    fig = pl.tissue_overlay(labels, xy, unit=None)
    np.testing.assert_allclose(fig.axes[0].collections[-1].get_facecolors()[:, 3],
                               np.where(faded, FADE_ALPHA, 1.0))
    plain = Overlay([values], ["do"], "continuous", "viridis", (0.0, 1.0), "expression")
    fig = pl.tissue_overlay(plain, xy, unit=None)
    assert np.allclose(fig.axes[0].collections[-1].get_facecolors()[:, 3], 1.0)
    assert fig.get_supxlabel() in (None, "")
    matplotlib.pyplot.close("all")


def test_counterfactual_overlay_fades_extrapolated_cells(small_sdata, no_old_microglia):
    """pl.counterfactual_overlay: extrapolated cells (obs['extrapolated']) are faded in the
    counterfactual and change panels, not in the factual one; a note says how many."""
    import warnings

    import matplotlib.pyplot as plt

    from napari_causcell import pl
    from napari_causcell.pl._plots import FADED_ALPHA

    table = small_sdata.tables["table"]
    young = table[(table.obs["age"] == "4wk").to_numpy()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cf = no_old_microglia.counterfactual(young, do={"age": "90wk"}, seed=1)
    gene = cf.var_names[0]
    micro = cf.obs["extrapolated"].to_numpy(bool)
    assert micro.any() and not micro.all()
    fig = pl.counterfactual_overlay(cf, gene)
    factual, counter, change = (ax.collections[0] for ax in fig.axes[:3])
    assert factual.get_alpha() is None
    for coll in (counter, change):
        alpha = np.asarray(coll.get_alpha())
        np.testing.assert_allclose(alpha[micro], FADED_ALPHA)
        np.testing.assert_allclose(alpha[~micro], 1.0)
    assert f"faded: {micro.sum()} of {cf.n_obs} cells extrapolated" in fig._supxlabel.get_text()
    plt.close(fig)
