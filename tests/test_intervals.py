"""The experimental interval machinery of issue 26 (tl._intervals, not exported: its
intervals are not calibrated yet; docs/benchmarks.md, "Intervals")."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causcell.errors import DataError, NotTrainedError, SettingError
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
