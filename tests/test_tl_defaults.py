"""Issue 28 item 8: tool defaults come from the model's concepts and the data, not from the
simulator's names; one argument order (data, model); leakage with a class of 1-2 cells."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from test_trends import _FakeModel, _toy3

from napari_causcell import tl
from napari_causcell.errors import SettingError
from napari_causcell.tl._defaults import (
    cluster_key,
    data_and_model,
    other_concepts,
    time_concept,
    youngest_label,
)


# -- the derived defaults ---------------------------------------------------------------------
def test_time_concept_from_the_model():
    assert time_concept(["age", "domain", "cell_type"]) == "age"
    assert time_concept(["celltype", "region", "age_group"]) == "age_group"
    assert time_concept(["timepoint", "celltype"]) == "timepoint"
    with pytest.raises(SettingError, match=r"no time-like concept; its concepts are "
                                           r"\['celltype', 'region'\]"):
        time_concept(["celltype", "region"])
    with pytest.raises(SettingError, match="several time-like concepts"):
        time_concept(["stage", "day", "celltype"])


@pytest.mark.parametrize("labels, first", [
    (["4wk", "24wk", "90wk"], "4wk"), (["24wk", "4wk", "90wk"], "4wk"),
    (["P21", "P7"], "P7"), (["18 mo", "3 mo"], "3 mo"), (["old", "young"], "young"),
    (["1wk", "2mo"], "1wk"),  # units differ: the first label
    (["ctrl", "treated"], "ctrl"),
])
def test_youngest_label(labels, first):
    assert youngest_label(labels) == first


def test_groupby_from_the_models_other_concepts():
    obs = pd.DataFrame(columns=["age", "domain", "cell_type", "batch", "mouse"])
    assert other_concepts(["age", "domain", "cell_type"], "age", obs) == ["cell_type", "domain"]
    assert other_concepts(["age", "batch", "domain"], "age", obs) == ["domain", "batch"]
    obs2 = pd.DataFrame(columns=["age_group", "region", "celltype"])
    assert other_concepts(["age_group", "region", "celltype", "gone"], "age_group",
                          obs2) == ["region", "celltype"]


def test_cluster_key_from_the_data():
    def obs(**cols):
        return pd.DataFrame({k: pd.Categorical(["a", "b"]) for k in cols} | {"n": [1, 2]})

    assert cluster_key(obs(cell_type=1, celltype=1)) == "cell_type"
    assert cluster_key(obs(celltype=1, region=1)) == "celltype"
    assert cluster_key(obs(subclass=1, age=1)) == "subclass"
    with pytest.raises(SettingError, match=r"no column looks like cell types; label columns: "
                                           r"\['region', 'age'\]"):
        cluster_key(obs(region=1, age=1))
    with pytest.raises(SettingError, match="several columns look like cell types"):
        cluster_key(obs(celltype=1, leiden=1))


# -- age_trends ------------------------------------------------------------------------------
def test_age_trends_defaults_match_the_old_explicit_call():
    adata = _toy3()
    model = _FakeModel(list("ABCDEF"))
    derived = tl.age_trends(adata, model, steps=3, copy=True)  # concept, source, groupby derived
    explicit = tl.age_trends(adata, model, concept="age", source="4wk", groupby=["cell_type"],
                             steps=3, copy=True)
    pd.testing.assert_frame_equal(derived, explicit)
    assert "cell_type" in derived.columns and "domain" not in derived.columns
    tl.age_trends(adata, model, steps=3)
    params = adata.uns["causcell_trends"]["params"]
    assert (params["concept"], params["source"], params["groupby"]) == ("age", "4wk",
                                                                        ["cell_type"])


def test_age_trends_accepts_the_old_order_with_a_deprecation_warning():
    adata = _toy3()
    model = _FakeModel(list("ABCDEF"))
    with pytest.warns(DeprecationWarning, match=r"tl.age_trends\(data, model\)"):
        old = tl.age_trends(model, adata, steps=3, copy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        new = tl.age_trends(adata, model, steps=3, copy=True)
        assert tl.age_trends(data=adata, model=model, steps=3, copy=True) is not None
    pd.testing.assert_frame_equal(old, new)
    with pytest.warns(DeprecationWarning):
        assert data_and_model([model, model], adata, "x") == (adata, [model, model])


def test_age_trends_without_a_time_concept_lists_the_concepts():
    model = _FakeModel(list("ABCDEF"))
    model.concepts = ["cell_type", "region"]
    with pytest.raises(SettingError, match=r"Pass concept=.*\['cell_type', 'region'\]"):
        tl.age_trends(_toy3(), model, copy=True)


# -- spatial_domains --------------------------------------------------------------------------
def _spatial(n: int = 300, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * 100
    labels = np.where(xy[:, 0] < 50, "Oligo", np.where(rng.random(n) < 0.5, "Astro", "ExN"))
    obs = pd.DataFrame({"celltype": pd.Categorical(labels),
                        "age_group": pd.Categorical(rng.choice(["young", "old"], n))},
                       index=[f"c{i}" for i in range(n)])
    return ad.AnnData(obs=obs, obsm={"spatial": xy})


def test_spatial_domains_finds_the_users_cell_type_column():
    data = _spatial()
    out = tl.spatial_domains(data, n_domains=2, n_neighs=8, copy=True)
    same = tl.spatial_domains(data, n_domains=2, n_neighs=8, cluster_key="celltype", copy=True)
    pd.testing.assert_series_equal(out, same)
    data.obs = data.obs.rename(columns={"celltype": "label"})
    with pytest.raises(SettingError, match=r"Pass cluster_key=.*\['label', 'age_group'\]"):
        tl.spatial_domains(data, n_domains=2, n_neighs=8, copy=True)


# -- leakage ---------------------------------------------------------------------------------
def test_leakage_with_a_class_of_one_or_two_cells(trained, small_sdata):
    table = small_sdata.tables["table"]
    ct = table.obs["cell_type"].astype(str).to_numpy()
    rare = pd.Series(ct).value_counts().index[-1]
    rng = np.random.default_rng(0)
    for n_rare in (1, 2):
        keep = np.concatenate([np.flatnonzero(ct != rare),
                               rng.choice(np.flatnonzero(ct == rare), n_rare, replace=False)])
        sub = table[np.sort(keep)].copy()
        with pytest.warns(UserWarning, match=f"left out of the probe.*{rare}"):
            df = tl.leakage(trained, sub, folds=3)
        cells = "cell" if n_rare == 1 else "cells"
        assert df.attrs["left_out"] == {"cell_type": f"{rare} ({n_rare} {cells})"}
        assert np.isfinite(df.loc[["age", "domain", "cell_type", "chance"]].to_numpy()).all()
    # the order of counterfactual, (data, model), gives the same table
    full = tl.leakage(trained, table, folds=2)
    pd.testing.assert_frame_equal(tl.leakage(table, trained, folds=2), full)
    assert full.attrs["left_out"] == {}


def test_direct_trends_defaults_come_from_the_data():
    """#28 item 8: direct_trends derives concept, source and groupby from the data: the same
    result as the former simulator defaults on the built-in tissue, and the user's own
    column names elsewhere."""
    import warnings

    import pandas as pd

    from napari_causcell import SettingError, tl
    from napari_causcell.datasets import brain_aging

    t = brain_aging(n_cells=1500, n_genes=60, seed=0, n_mice_per_age=2).tables["table"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        derived = tl.direct_trends(t, copy=True)
        explicit = tl.direct_trends(t, "age", "4wk", groupby=("cell_type", "domain"),
                                    copy=True)
        pd.testing.assert_frame_equal(derived, explicit)
        u = t.copy()
        u.obs = u.obs.rename(columns={"age": "age_group", "cell_type": "celltype"})
        u.obs["age_group"] = pd.Categorical(u.obs["age_group"].astype(str).map(
            {"4wk": "young", "24wk": "middle", "90wk": "old"}))
        own = tl.direct_trends(u, copy=True)
    assert set(own["target"]) == {"middle", "old"}  # source: the youngest label
    assert {"celltype", "domain"} <= set(own.columns)
    u.obs = u.obs.rename(columns={"age_group": "batch_id"})
    with pytest.raises(SettingError, match="Pass concept="):
        tl.direct_trends(u, copy=True)
