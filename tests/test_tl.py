"""tl: counterfactual tables in SpatialData, cell selection, domains, diagnostics; the scverse
convention (in place, None, the keys logged; copy=True returns the result, writes nothing)."""

from __future__ import annotations

import copy as _copy
import logging

import numpy as np
import pytest

from napari_causcell import DataError, tl
from napari_causcell.data import coordinates


def test_counterfactual_table_annotates_same_instances(trained, sdata, tmp_path):
    assert tl.counterfactual(sdata, trained, {"age": "90wk"}, cells={"age": "4wk"},
                             seed=0) is None
    assert "causcell_age_90wk" in sdata.tables
    table = cf = sdata.tables["causcell_age_90wk"]
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
    assert tl.counterfactual(adata, trained, {"domain": "WM"}, cells=np.arange(10),
                             key_added="wm") is None
    cf = adata.uns["causcell"]["wm"]
    assert cf.n_obs == 10 and cf.uns["causcell"]["key"] == "wm"
    assert (cf.obs["domain"] == "WM").all()


def added(caplog) -> list[str]:
    """The keys the tools logged as written (logger ``napari_causcell.tl``)."""
    return [r.getMessage() for r in caplog.records if r.name == "napari_causcell.tl"]


def _snapshot(table):
    """What a tool may write into a table: obs columns and the keys of uns, obsm, obsp."""
    return (list(table.obs.columns), sorted(table.uns), sorted(table.obsm), sorted(table.obsp))


@pytest.mark.parametrize("kind", ["anndata", "spatialdata"])
def test_counterfactual_scverse_convention(trained, small_sdata, kind, caplog):
    data = (_copy.deepcopy(small_sdata) if kind == "spatialdata"
            else small_sdata.tables["table"].copy())
    table = data.tables["table"] if kind == "spatialdata" else data
    before = _snapshot(table)
    tables = sorted(data.tables) if kind == "spatialdata" else None
    cells = np.arange(8)
    # copy=True: the counterfactual comes back, the input is untouched
    with caplog.at_level(logging.INFO, logger="napari_causcell.tl"):
        cf = tl.counterfactual(data, trained, {"age": "90wk"}, cells=cells, key_added="cf",
                               copy=True, seed=0)
    assert cf.n_obs == 8 and cf.uns["causcell"]["key"] == "cf"
    assert _snapshot(table) == before and not added(caplog)
    if kind == "spatialdata":
        assert sorted(data.tables) == tables
        assert cf.uns["spatialdata_attrs"]["region"] == "cells"  # ready to store
    # default: written in place, None returned, the key logged
    with caplog.at_level(logging.INFO, logger="napari_causcell.tl"):
        assert tl.counterfactual(data, trained, {"age": "90wk"}, cells=cells, key_added="cf",
                                 seed=0) is None
    stored = data.tables["cf"] if kind == "spatialdata" else data.uns["causcell"]["cf"]
    assert np.allclose(stored.layers["delta"], cf.layers["delta"])
    where = "table 'cf'" if kind == "spatialdata" else "uns['causcell']['cf']"
    assert added(caplog) == [f"Added {where}"]


@pytest.mark.parametrize("kind", ["anndata", "spatialdata"])
def test_spatial_domains_scverse_convention(small_sdata, kind, caplog):
    data = _copy.deepcopy(small_sdata)
    if kind == "anndata":
        data = data.tables["table"]
    table = data.tables["table"] if kind == "spatialdata" else data
    if kind == "spatialdata":
        del table.obsm["spatial"]  # coordinates from the shapes; written back in place
    before = _snapshot(table)
    with caplog.at_level(logging.INFO, logger="napari_causcell.tl"):
        out = tl.spatial_domains(data, n_domains=4, key_added="niche", n_neighs=8, copy=True)
    assert out.name == "niche" and out.index.equals(table.obs_names)
    assert out.cat.categories.tolist() == ["D0", "D1", "D2", "D3"]
    assert _snapshot(table) == before and not added(caplog)
    with caplog.at_level(logging.INFO, logger="napari_causcell.tl"):
        assert tl.spatial_domains(data, n_domains=4, key_added="niche", n_neighs=8) is None
    assert (table.obs["niche"].astype(str) == out.astype(str)).all()
    written = ["obsp['spatial_connectivities']", "obsp['spatial_distances']",
               "uns['spatial_neighbors']", "obs['niche']"]
    if kind == "spatialdata":
        written.insert(0, "obsm['spatial']")
    assert added(caplog) == [f"Added {w}" for w in written]
    assert "spatial" in table.obsm and "spatial_connectivities" in table.obsp
    # copy=True never refuses: it replaces nothing
    assert tl.spatial_domains(data, n_domains=4, key_added="niche", n_neighs=8,
                              copy=True) is not None


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


def test_select_cells_lists_the_labels_of_a_column_without_the_label(small_sdata):
    """#28 item 10: a {column: label} naming no label of the column lists its labels."""
    t = small_sdata.tables["table"]
    labels = sorted(set(t.obs["cell_type"].astype(str)))
    with pytest.raises(DataError) as err:
        tl.select_cells(t, {"cell_type": "Oligodendrocyte"})
    msg = str(err.value)
    assert msg == (f"The cell selection is empty: no cell has cell_type='Oligodendrocyte'; "
                   f"the labels of 'cell_type' are {labels}.")
    with pytest.raises(DataError, match=r"no cell has age=\['1wk', '2wk'\]; the labels of "
                                        r"'age' are \['24wk', '4wk', '90wk'\]"):
        tl.select_cells(t, {"age": ["1wk", "2wk"]})


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
    assert tl.spatial_domains(sdata, n_domains=5, key_added="niche", n_neighs=12) is None
    assert t.obs["niche"].cat.categories.tolist() == ["D0", "D1", "D2", "D3", "D4"]
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
