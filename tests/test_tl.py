"""tl: counterfactual tables in SpatialData, cell selection, domains, diagnostics."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causcell import DataError, tl
from napari_causcell.data import coordinates


def test_counterfactual_table_annotates_same_instances(trained, sdata, tmp_path):
    cf = tl.counterfactual(sdata, trained, {"age": "90wk"}, cells={"age": "4wk"}, seed=0)
    assert "causcell_age_90wk" in sdata.tables
    table = sdata.tables["causcell_age_90wk"]
    attrs = table.uns["spatialdata_attrs"]
    assert attrs["region"] == "cells" and attrs["instance_key"] == "cell_id"
    src = sdata.tables["table"]
    ids = src.obs.loc[src.obs["age"] == "4wk", "cell_id"].to_numpy()
    assert np.array_equal(table.obs["cell_id"].to_numpy(), ids)
    assert set(ids) <= set(sdata["cells"].index)
    assert cf.n_obs == len(ids)
    import spatialdata as sd

    sdata.write(tmp_path / "t.zarr")
    back = sd.read_zarr(tmp_path / "t.zarr")
    assert np.allclose(back.tables["causcell_age_90wk"].layers["delta"], table.layers["delta"])


def test_counterfactual_on_anndata_stored_in_uns(trained, small_sdata):
    adata = small_sdata.tables["table"].copy()
    cf = tl.counterfactual(adata, trained, {"domain": "WM"}, cells=np.arange(10), key_added="wm")
    assert adata.uns["causcell"]["wm"] is cf and cf.n_obs == 10
    assert (cf.obs["domain"] == "WM").all()


def test_select_cells_modes(small_sdata):
    t = small_sdata.tables["table"]
    assert tl.select_cells(t).all()
    m = tl.select_cells(t, {"cell_type": ["Astro", "Oligo"], "age": "4wk"})
    exp = t.obs["cell_type"].isin(["Astro", "Oligo"]) & (t.obs["age"] == "4wk")
    assert np.array_equal(m, exp.to_numpy())
    assert tl.select_cells(t, list(t.obs_names[:3])).sum() == 3
    with pytest.raises(DataError, match="empty"):
        tl.select_cells(t, np.zeros(t.n_obs, bool))
    with pytest.raises(DataError, match="not in obs"):
        tl.select_cells(t, {"celltype": "Astro"})
    with pytest.raises(DataError, match="not found"):
        tl.select_cells(t, ["nope"])


def test_mean_change_and_top_genes(trained, small_sdata):
    t = small_sdata.tables["table"]
    cf = trained.counterfactual(t[:100], do={"age": "90wk"}, seed=0)
    mc = tl.mean_change(cf, "cell_type")
    assert mc.shape[1] == len(trained.genes)
    assert np.allclose(tl.mean_change(cf).to_numpy(), cf.layers["delta"].mean(0, keepdims=True))
    top = tl.top_changed_genes(cf, n=5)
    assert len(top) == 5
    assert np.all(np.diff(np.abs(top["mean_change"].to_numpy())) <= 1e-9)


def test_spatial_domains_recover_layers(sdata):
    t = sdata.tables["table"]
    del t.obsm["spatial"]  # coordinates then come from the shapes element
    assert coordinates(sdata).shape == (t.n_obs, 2)
    sdata.tables["table"].obs.drop(columns=["domain"], inplace=True)
    out = tl.spatial_domains(sdata, n_domains=5, key_added="niche", n_neighs=12)
    assert out.cat.categories.tolist() == ["D0", "D1", "D2", "D3", "D4"]
    assert "spatial_connectivities" in t.obsp
    from sklearn.metrics import adjusted_rand_score

    from napari_causcell.datasets import brain_aging

    truth = brain_aging(n_cells=1500, n_genes=80, seed=0).tables["table"].obs["domain"]
    assert adjusted_rand_score(truth, t.obs["niche"]) > 0.2
    # a column the user owns is never replaced silently
    t.obs["mine"] = "keep"
    with pytest.raises(DataError, match="already has a column 'mine'"):
        tl.spatial_domains(sdata, n_domains=5, key_added="mine", n_neighs=12)
    assert (t.obs["mine"] == "keep").all()
    tl.spatial_domains(sdata, n_domains=5, key_added="mine", n_neighs=12, overwrite=True)
    assert set(t.obs["mine"].astype(str)) <= {f"D{i}" for i in range(5)}


def test_leakage_table(trained):
    df = tl.leakage(trained, folds=2)
    assert list(df.index) == ["age", "domain", "cell_type", "u", "chance"]
    for c in ["age", "domain", "cell_type"]:
        assert df.loc[c, c] > df.loc["chance", c]
