"""The delete-one-donor jackknife of tl.age_trends: donor sampling measured on the model."""

import numpy as np
import pandas as pd
import pytest

from napari_causcell import CausCell, tl
from napari_causcell.data.preprocess import DataError
from napari_causcell.stats import jackknife_variance as _jackknife_variance

from test_trends import _FakeModel, _null_toy


def test_jackknife_variance_by_hand():
    per_model = np.array([[0.5, 1.0], [0.3, 0.0], [0.7, 2.0], [0.1, 1.0], [0.3, 3.0]])
    strata = np.array([None, "4wk", "4wk", "90wk", "90wk"], dtype=object)
    var, dfree = _jackknife_variance(per_model, strata)
    # per level: (n - 1) / n * sum of squared deviations from the level's mean, n = 2
    assert dfree == 2.0
    assert var == pytest.approx([0.5 * 2 * 0.2**2 + 0.5 * 2 * 0.1**2,
                                 0.5 * 2 * 1.0 + 0.5 * 2 * 1.0])
    var1, df1 = _jackknife_variance(per_model[:2], strata[:2])  # one model in the level
    assert df1 == 0.0 and np.isnan(var1).all()


def _jackknife_fakes(adata, genes):
    fakes = []
    for i, donor in enumerate(sorted(set(adata.obs["donor"]))):
        fake = _FakeModel(genes, bias=0.05, model_seed=100 + i)
        fake.train_params = {"left_out": {"donor_key": "donor", "donor": donor,
                                          "stratum_key": "age", "stratum": donor.split("_")[0]}}
        fakes.append(fake)
    return fakes


def test_age_trends_uses_the_jackknife_for_donors_and_the_full_models_for_the_effect():
    adata = _null_toy(n_genes=8)  # three donors per age
    genes = list(adata.var_names)
    full = [_FakeModel(genes, bias=0.05, model_seed=m) for m in range(3)]
    jack = _jackknife_fakes(adata, genes)
    kw = dict(source="4wk", targets="90wk", groupby="cell_type", copy=True)
    df = tl.age_trends(jack + full, adata, **kw)  # any order: the full models lead
    ref = tl.age_trends(full, adata, **kw)
    assert set(df["unit"]) == {"donors (jackknife)+models"} and (df["n_models"] == 3).all()
    np.testing.assert_allclose(df["mean_change"], ref["mean_change"])
    assert not np.allclose(df["se"], ref["se"])  # another donor term
    # planted effects still called, nulls not
    assert {(g, t) for g, t, s in zip(df["gene"], df["cell_type"], df["significant"]) if s} \
        <= {("g0", "T1"), ("g1", "T2")}
    # two donors at an age: the jackknife's q-values are flagged as exploratory
    two = _null_toy(n_genes=8, donors_per_age=2)
    with pytest.warns(UserWarning, match="exploratory"):
        tl.age_trends(_jackknife_fakes(two, genes) + full, two, **kw)
    tl.age_trends(jack + full, adata, source="4wk", targets="90wk", groupby="cell_type",
                  store_counterfactuals=False)
    params = adata.uns["causcell_trends"]["params"]
    assert params["n_models"] == 3 and params["n_jackknife"] == 9
    with pytest.raises(DataError, match="left a donor out"):
        tl.age_trends(jack, adata, **kw)


def test_train_ensemble_jackknife_checks_donors_before_training():
    one = _null_toy(n_genes=8, donors_per_age=1)
    with pytest.raises(DataError, match="one donor"):
        tl.train_ensemble(one, ["age", "cell_type"], jackknife="donor")
    mixed = _null_toy(n_genes=8)
    mixed.obs["donor"] = np.where(mixed.obs["age"] == "24wk", "4wk_0", mixed.obs["donor"])
    with pytest.raises(DataError, match="nested"):
        tl.train_ensemble(mixed, ["age", "cell_type"], jackknife="donor")
    with pytest.raises(DataError, match="not in obs|Jackknife"):
        tl.train_ensemble(mixed, ["age", "cell_type"], jackknife="mouse_id")
    with pytest.raises(ValueError, match="n_models"):
        tl.train_ensemble(mixed, ["age", "cell_type"], n_models=0)


def test_train_ensemble_jackknife_trains_one_model_per_donor(tmp_path):
    from napari_causcell.datasets import brain_aging

    table = brain_aging(600, 60, n_mice_per_age=2, seed=0).tables["table"]
    models = tl.train_ensemble(table, ["age", "cell_type"], [("age", "cell_type")],
                               n_models=1, max_epochs=1, jackknife="mouse", width=32,
                               hidden=64)
    mice = sorted(set(table.obs["mouse"].astype(str)))
    assert len(models) == 1 + len(mice)
    assert models[0].train_params.get("left_out") is None
    left = [m.train_params["left_out"] for m in models[1:]]
    assert sorted(x["donor"] for x in left) == mice
    for m, x in zip(models[1:], left):
        assert x["stratum"] == x["donor"][1:].split("_")[0]  # m4wk_1 -> 4wk
        assert x["donor"] not in set(m._adata.obs["mouse"].astype(str))
        assert m._adata.n_obs == int((table.obs["mouse"] != x["donor"]).sum())
    path = models[1].save(tmp_path / "jk")
    assert CausCell.load(path, data=table).train_params["left_out"] == left[0]
