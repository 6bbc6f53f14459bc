"""tl.change_intervals (issue 26): rows, support, the pooled group, reuse of a computed
counterfactual, the error terms and the extrapolated flag (calibration numbers:
docs/benchmarks.md, "Intervals and reliability")."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causcell.errors import DataError, NotTrainedError, SettingError
from napari_causcell.tl._interval_error import C_PRIOR, shape
from napari_causcell.tl._intervals import COLUMNS, change_intervals


def test_rows_columns_and_support(trained, small_sdata):
    table = small_sdata.tables["table"]
    young = (table.obs["age"] == "4wk").to_numpy()
    iv = change_intervals(trained, table, {"age": "90wk"}, cells=young, n_samples=2,
                          hold=["cell_type"])
    types = sorted(set(table.obs["cell_type"].astype(str)[young]))
    assert list(iv.columns) == COLUMNS and len(iv) == len(types) * len(trained.genes)
    assert (iv["lower"] <= iv["change"]).all() and (iv["change"] <= iv["upper"]).all()
    assert iv["reliability"].between(0, 1).all()
    # support: training cells (outside the validation cells) of type T at 90wk
    obs = table.obs[~table.obs_names.isin(trained.val_names)]
    t0 = types[0]
    want = int(((obs["age"] == "90wk") & (obs["cell_type"] == t0)).sum())
    assert (iv.loc[iv["group"] == t0, "n_support"] == want).all()
    assert iv.attrs["calibration"]["n_models"] == 1
    # the change is the mean of the counterfactual's paired change per own type
    cf = trained.counterfactual(table[young], do={"age": "90wk"}, n_samples=2, seed=0,
                                hold=["cell_type"])
    d = np.asarray(cf.layers["delta"]).reshape(2, young.sum(), -1).mean(0)
    own = table.obs["cell_type"].astype(str).to_numpy()[young]
    np.testing.assert_allclose(iv.loc[iv["group"] == t0, "change"], d[own == t0].mean(0),
                               atol=1e-5)


def test_refusals(trained, small_sdata):
    from napari_causcell import CausCell

    table = small_sdata.tables["table"]
    with pytest.raises(SettingError, match="level"):
        change_intervals(trained, table, {"age": "90wk"}, level=1.5)
    with pytest.raises(DataError, match="not in obs"):
        change_intervals(trained, table, {"age": "90wk"}, groupby="celltype")
    with pytest.raises(SettingError, match="at least one model"):
        change_intervals([], table, {"age": "90wk"})
    fresh = CausCell(table, ["age", "domain", "cell_type"], seed=0, width=16, hidden=16)
    with pytest.raises(NotTrainedError):
        change_intervals([trained, fresh], table, {"age": "90wk"})


def test_pooled_group_and_reuse_of_a_counterfactual(trained, small_sdata):
    table = small_sdata.tables["table"]
    young = (table.obs["age"] == "4wk").to_numpy()
    cf = trained.counterfactual(table[young], do={"age": "90wk"}, n_samples=2, seed=1)
    iv = change_intervals(trained, table, {"age": "90wk"}, cells=young, groupby=None,
                          counterfactual=cf)
    assert list(iv["group"].unique()) == ["all"] and len(iv) == len(trained.genes)
    delta = np.asarray(cf.layers["delta"]).reshape(2, young.sum(), -1).mean((0, 1))
    np.testing.assert_allclose(iv["change"], delta, atol=1e-5)
    # the error terms are measured per label of age's child in the graph, then pooled
    assert iv.attrs["calibration"]["stratum"] == "cell_type"
    assert iv["n_support"].iloc[0] == int(
        ((table.obs["age"] == "90wk") & ~table.obs_names.isin(trained.val_names)).sum())
    # the top genes carry them (tl.top_changed_genes(..., intervals=))
    from napari_causcell.tl import top_changed_genes

    top = top_changed_genes(cf, n=6, intervals=iv)
    rows = iv.set_index("gene").loc[top["gene"]]
    np.testing.assert_allclose(top["lower"], rows["lower"])
    np.testing.assert_allclose(top["upper"], rows["upper"])
    np.testing.assert_allclose(top["reliability"], rows["reliability"])
    np.testing.assert_array_equal(top["spans_zero"], (rows["lower"] <= 0).to_numpy()
                                  & (rows["upper"] >= 0).to_numpy())
    by_type = change_intervals(trained, table, {"age": "90wk"}, cells=young,
                               counterfactual=cf)
    with pytest.raises(DataError, match="one group"):
        top_changed_genes(cf, n=6, intervals=by_type)
    with pytest.raises(DataError, match="multiple of"):
        change_intervals(trained, table, {"age": "90wk"}, cells=young, counterfactual=cf[:7])
    with pytest.raises(SettingError, match="one model"):
        change_intervals([trained, trained], table, {"age": "90wk"}, counterfactual=cf)


def test_calibration_widens_and_is_measured_on_validation_cells(trained, small_sdata):
    table = small_sdata.tables["table"]
    young = (table.obs["age"] == "4wk").to_numpy()
    kw = dict(cells=young, n_samples=2, seed=0)
    raw = change_intervals(trained, table, {"age": "90wk"}, calibrate=False, **kw)
    cal = change_intervals(trained, table, {"age": "90wk"}, **kw)
    np.testing.assert_allclose(raw["change"], cal["change"], atol=1e-6)
    assert ((cal["upper"] - cal["lower"]) >= (raw["upper"] - raw["lower"]) - 1e-9).all()
    info = cal.attrs["calibration"]
    assert info["pairs"] >= len(trained.genes)
    # the data only raise the floor, and only beyond their own noise
    assert info["c"] == max(C_PRIOR, info["c_measured"] - info["c_measured_se"])
    assert "validation cells" in info["notes"][0]
    # reliability falls with the interval's half width, 0.5 at RELIABILITY_SCALE
    from napari_causcell.tl._intervals import RELIABILITY_SCALE

    half = (cal["upper"] - cal["lower"]) / 2
    np.testing.assert_allclose(cal["reliability"], 1 / (1 + half / RELIABILITY_SCALE))


def test_without_validation_cells_the_floor_alone(trained, small_sdata, monkeypatch):
    table = small_sdata.tables["table"]
    young = (table.obs["age"] == "4wk").to_numpy()
    monkeypatch.setattr(trained, "val_names", None)  # e.g. trained with no validation split
    iv = change_intervals(trained, table, {"age": "90wk"}, cells=young, n_samples=2, seed=0)
    info = iv.attrs["calibration"]
    assert info["c"] == C_PRIOR and info["pairs"] == 0 and info["c_measured_se"] == np.inf
    assert "benchmark's floor" in info["notes"][1]
    half = ((iv["upper"] - iv["lower"]) / 2).to_numpy().reshape(-1, len(trained.genes))
    change = iv["change"].to_numpy().reshape(half.shape)
    assert (half**2 >= 1.6448536**2 * C_PRIOR * shape(change) - 1e-9).all()


def test_an_unmeasured_combination_is_extrapolated_with_the_same_error_model(
        no_old_microglia, small_sdata):
    table = small_sdata.tables["table"]
    young = (table.obs["age"] == "4wk").to_numpy()
    iv = change_intervals(no_old_microglia, table, {"age": "90wk"}, cells=young,
                          n_samples=2, seed=0)
    width = (iv["upper"] - iv["lower"]).groupby(iv["group"]).mean()
    flags = iv.groupby("group")["extrapolated"].first()
    support = iv.groupby("group")["n_support"].first()
    assert flags["Microglia"] and support["Microglia"] == 0
    assert not flags.drop("Microglia").any()
    # no extra out-of-distribution term: the width follows the error model c * shape
    info = iv.attrs["calibration"]
    half = ((iv["upper"] - iv["lower"]) / 2).to_numpy().reshape(width.size, -1)
    change = iv["change"].to_numpy().reshape(width.size, -1)
    z = 1.6448536
    assert (half**2 >= z**2 * info["c"] * shape(change) - 1e-9).all()
    assert "extrapolated groups carry the same error model" in " ".join(info["notes"])


def test_error_scale_is_the_floor_raised_only_beyond_one_jackknife_error():
    """The measured error per unit of shape: sum(excess) / sum(shape) over the (model,
    stratum) units and its leave-one-out standard error; the intervals use the floor unless
    the measured c less one standard error is larger."""
    from napari_causcell.tl._interval_error import error_scale, pooled_ratio

    excess, scale = np.array([0.1, 0.3, -0.1, 0.5]), np.array([1.0, 1.0, 2.0, 1.0])
    loo = np.array([(0.8 - e) / (5.0 - s) for e, s in zip(excess, scale)])
    se = np.sqrt(3 / 4 * ((loo - loo.mean()) ** 2).sum())
    assert pooled_ratio(excess, scale) == pytest.approx((0.8 / 5.0, se))
    assert pooled_ratio(np.array([0.2]), np.array([2.0])) == (pytest.approx(0.1), np.inf)
    assert error_scale(0.8 / 5.0, se) == C_PRIOR
    assert error_scale(2.0, 0.5) == 1.5
    assert error_scale(0.1, np.inf) == C_PRIOR
