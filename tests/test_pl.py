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
