"""Label switches under do(): reported, and changes grouped by the cells' own labels
(issue 28 item 1)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causcell import SettingError, tl


@pytest.fixture(scope="module")
def young_cf(trained, small_sdata):
    t = small_sdata.tables["table"]
    young = t[t.obs["age"] == "4wk"][:300]
    return young, trained.counterfactual(young, do={"age": "90wk"}, seed=2)


def test_label_switches_count_every_change(young_cf):
    young, cf = young_cf
    table = tl.label_switches(cf)
    before = young.obs["cell_type"].astype(str).to_numpy()
    after = cf.obs["cell_type"].astype(str).to_numpy()
    assert list(table.columns) == ["concept", "factual", "counterfactual", "n_cells", "share"]
    assert (table["concept"] == "cell_type").all()
    assert table["n_cells"].sum() == (before != after).sum() > 0
    first = table.iloc[0]
    n_from = (before == first["factual"]).sum()
    assert first["n_cells"] == ((before == first["factual"]) & (after == first["counterfactual"])).sum()
    assert first["share"] == pytest.approx(first["n_cells"] / n_from)
    assert np.all(np.diff(table["n_cells"].to_numpy()) <= 0)
    line = tl.switch_summary(cf)
    assert line.startswith("cell_type changed in ")
    assert f"{first['factual']} -> {first['counterfactual']} {first['n_cells']} of {n_from}" in line


def test_no_switch_with_hold(trained, young_cf):
    young, _ = young_cf
    held = trained.counterfactual(young[:50], do={"age": "90wk"}, seed=2, hold=["cell_type"])
    assert tl.label_switches(held).empty and tl.switch_summary(held) == ""


def test_mean_change_groups_by_the_cells_own_label(young_cf):
    young, cf = young_cf
    own = young.obs["cell_type"].astype(str).to_numpy()
    mc = tl.mean_change(cf, "cell_type")
    for label in ("Astro", "Oligo"):
        if (own == label).any():
            np.testing.assert_allclose(mc.loc[label].to_numpy(),
                                       cf.layers["delta"][own == label].mean(0), rtol=1e-5)
    new = cf.obs["cell_type"].astype(str).to_numpy()
    moved = tl.mean_change(cf, "cell_type", labels="counterfactual")
    label = tl.label_switches(cf).iloc[0]["counterfactual"]
    np.testing.assert_allclose(moved.loc[label].to_numpy(),
                               cf.layers["delta"][new == label].mean(0), rtol=1e-5)
    with pytest.raises(SettingError, match="labels must be"):
        tl.mean_change(cf, "cell_type", labels="new")
