"""Tests of the simulated brain-aging tissue and its counterfactual ground truth."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_causcell.datasets import PLANTED_AGE_EFFECTS, brain_aging, brain_aging_truth

AGES = ["4wk", "24wk", "90wk"]
DOMAINS = ["L1", "L2/3", "L4/5", "L6", "WM", "Striatum", "Ventricle"]
CELL_TYPES = [
    "ExN_L23", "ExN_L5", "ExN_L6", "InN", "MSN", "Microglia", "Oligo", "OPC", "Astro", "Endo",
]
AGE_GENES = ["C4b", "Xdh", "Gpc5", "Lilrb4a", "B2m", "Il33", "Apod", "Cst7", "Lgals3", "H2-K1"]


@pytest.fixture(scope="module")
def sdata():
    return brain_aging()  # 6000 cells x 200 genes, 2 mice per age, seed 0


@pytest.fixture(scope="module")
def table(sdata):
    return sdata.tables["table"]


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def _lognorm(x) -> np.ndarray:
    x = _dense(x)
    return np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4)


def test_reproducible_and_seed_dependent():
    a = brain_aging(n_cells=900, n_genes=60, n_mice_per_age=1, seed=1).tables["table"]
    b = brain_aging(n_cells=900, n_genes=60, n_mice_per_age=1, seed=1).tables["table"]
    c = brain_aging(n_cells=900, n_genes=60, n_mice_per_age=1, seed=2).tables["table"]
    assert (a.X != b.X).nnz == 0
    np.testing.assert_array_equal(a.obsm["spatial"], b.obsm["spatial"])
    pd.testing.assert_frame_equal(a.obs, b.obs)
    assert (a.X != c.X).nnz > 0.1 * a.n_obs * a.n_vars
    assert not np.allclose(a.obsm["spatial"], c.obsm["spatial"])


def test_table_structure(table):
    assert table.shape == (6000, 200)
    assert list(table.obs_names[:3]) == ["cell_0", "cell_1", "cell_2"]
    np.testing.assert_array_equal(table.obs["cell_id"].to_numpy(), np.arange(6000))
    for col, cats in [("age", AGES), ("domain", DOMAINS), ("cell_type", CELL_TYPES)]:
        assert isinstance(table.obs[col].dtype, pd.CategoricalDtype)
        assert list(table.obs[col].cat.categories) == cats
    mice = ["m4wk_1", "m4wk_2", "m24wk_1", "m24wk_2", "m90wk_1", "m90wk_2"]
    assert list(table.obs["mouse"].cat.categories) == mice
    assert table.obs["mouse"].value_counts().to_dict() == {m: 1000 for m in mice}
    # each mouse has one age
    ages_per_mouse = table.obs.groupby("mouse", observed=True)["age"].nunique()
    assert (ages_per_mouse == 1).all()
    assert table.obs["age"].value_counts().to_dict() == {a: 2000 for a in AGES}
    assert set(table.obs["region"]) == {"cells"}
    assert isinstance(table.obs["region"].dtype, pd.CategoricalDtype)

    # genes: named markers, domain markers, age genes, fillers
    names = set(table.var_names)
    assert {"Slc17a7", "Cux2", "Rorb", "Fezf2", "Gad1", "Ppp1r1b", "Gfap", "Aqp4", "Mbp",
            "Plp1", "Pdgfra", "Cx3cr1", "P2ry12", "Cldn5"} <= names
    assert set(AGE_GENES) <= names
    assert "Gene_001" in names and table.var_names.is_unique

    # raw integer counts, CSR float32, counts layer identical
    assert sp.isspmatrix_csr(table.X) and table.X.dtype == np.float32
    d = table.X.data
    assert (d >= 0).all() and np.array_equal(d, np.round(d))
    assert (table.layers["counts"] != table.X).nnz == 0
    tot = np.asarray(table.X.sum(1)).ravel()
    assert 100 <= np.median(tot) <= 300
    assert 0.4 < (_dense(table.X) == 0).mean() < 0.85  # MERFISH-like sparsity

    assert table.uns["brain_aging"] == {
        "n_cells": 6000, "n_genes": 200, "n_mice_per_age": 2, "seed": 0, "version": 1,
    }

    # sections side by side: disjoint x ranges per mouse, ~1000 x 800 µm each
    xy = table.obsm["spatial"]
    assert xy.shape == (6000, 2) and np.issubdtype(xy.dtype, np.floating)
    ranges = []
    for name in mice:
        m = (table.obs["mouse"] == name).to_numpy()
        ranges.append((xy[m, 0].min(), xy[m, 0].max(), np.ptp(xy[m, 1])))
    for (lo, hi, h), (lo2, _, _) in zip(ranges[:-1], ranges[1:]):
        assert hi < lo2  # gap between sections
        assert 900 < hi - lo <= 1000 and 700 < h <= 800


def test_spatialdata_validates(sdata, table):
    from spatialdata.models import ShapesModel, TableModel, get_table_keys

    TableModel().validate(table)
    region, region_key, instance_key = get_table_keys(table)
    assert (region, region_key, instance_key) == ("cells", "region", "cell_id")
    assert "cells" in sdata.shapes
    shapes = sdata.shapes["cells"]
    ShapesModel.validate(shapes)
    assert len(shapes) == 6000
    np.testing.assert_array_equal(shapes.index.to_numpy(), np.arange(6000))
    assert np.allclose(shapes["radius"], 5.0)
    np.testing.assert_allclose(shapes.geometry.x.to_numpy(), table.obsm["spatial"][:, 0])
    np.testing.assert_allclose(shapes.geometry.y.to_numpy(), table.obsm["spatial"][:, 1])


def test_cell_type_proportions_depend_on_domain_and_age(table):
    obs = table.obs
    by_dom = pd.crosstab(obs["cell_type"], obs["domain"], normalize="columns")
    by_age = pd.crosstab(obs["cell_type"], obs["age"], normalize="columns")
    others = [d for d in DOMAINS if d != "WM"]
    assert by_dom.loc["Oligo", "WM"] > 0.5
    assert by_dom.loc["Oligo", "WM"] > 3 * by_dom.loc["Oligo", others].max()
    assert by_dom.loc["MSN", "Striatum"] > 0.4 and by_dom.loc["MSN", others].drop(
        "Striatum").max() < 0.05
    assert by_dom.loc["ExN_L23", "L2/3"] > 0.4 and by_dom.loc["ExN_L5", "L4/5"] > 0.35
    assert by_dom.loc["ExN_L6", "L6"] > 0.35
    assert by_dom.loc[["Astro", "Endo", "Microglia"], "Ventricle"].sum() > 0.7
    # ageing: more Oligo and Microglia, fewer OPC and neurons
    assert by_age.loc["Microglia", "90wk"] > by_age.loc["Microglia", "4wk"] + 0.03
    assert by_age.loc["Oligo", "90wk"] > by_age.loc["Oligo", "4wk"] + 0.02
    assert by_age.loc["OPC", "90wk"] < by_age.loc["OPC", "4wk"]
    neurons = ["ExN_L23", "ExN_L5", "ExN_L6", "InN", "MSN"]
    assert by_age.loc[neurons, "90wk"].sum() < by_age.loc[neurons, "4wk"].sum() - 0.02


def test_planted_effects_table():
    df = PLANTED_AGE_EFFECTS
    assert {"gene", "cell_type", "direction", "log2fc_90wk"} <= set(df.columns)
    assert set(df["gene"]) == set(AGE_GENES)
    assert set(df["cell_type"]) <= set(CELL_TYPES)
    assert set(df["direction"]) == {"up", "down"}
    assert ((df["log2fc_90wk"] > 0) == (df["direction"] == "up")).all()
    assert df["log2fc_90wk"].abs().between(0.8, 2.5).all()
    row = df[(df["gene"] == "Lilrb4a") & (df["cell_type"] == "Microglia")].iloc[0]
    assert row["log2fc_90wk_striatum"] > row["log2fc_90wk"]


def test_planted_effects_visible_in_factual_data(table):
    ln = pd.DataFrame(_lognorm(table.X), columns=table.var_names)
    age = table.obs["age"].to_numpy()
    ct = table.obs["cell_type"].to_numpy()
    for _, row in PLANTED_AGE_EFFECTS.iterrows():
        in_type = ct == row["cell_type"]
        m4 = ln.loc[in_type & (age == "4wk"), row["gene"]].mean()
        m90 = ln.loc[in_type & (age == "90wk"), row["gene"]].mean()
        sign = 1 if row["direction"] == "up" else -1
        assert sign * (m90 - m4) > 0.2, (row["gene"], row["cell_type"], m4, m90)
    # C4b in Oligo grows monotonically 4wk -> 24wk -> 90wk
    oligo = ct == "Oligo"
    means = [ln.loc[oligo & (age == a), "C4b"].mean() for a in AGES]
    assert means[0] < means[2] and means[1] < means[2]
    # a cell-type marker is not age dependent: Cx3cr1 in Microglia roughly stable
    mg = ct == "Microglia"
    cx = [ln.loc[mg & (age == a), "Cx3cr1"].mean() for a in ("4wk", "90wk")]
    assert abs(cx[1] - cx[0]) < 0.3


def test_truth_with_own_values_is_factual(sdata, table):
    # empty intervention and do(age=own age) / do(domain=own domain) reproduce the data
    tr = brain_aging_truth(sdata, {})
    assert (tr.X != table.X).nnz == 0
    for a in AGES:
        mask = (table.obs["age"] == a).to_numpy()
        tr = brain_aging_truth(sdata, {"age": a}, cells=mask)
        assert (tr.X != table[mask].X).nnz == 0
        assert (tr.obs["cell_type"] == table.obs["cell_type"][mask]).all()
    mask = (table.obs["domain"] == "WM").to_numpy() & (table.obs["age"] == "24wk").to_numpy()
    tr = brain_aging_truth(table, {"domain": "WM", "age": "24wk"}, cells=mask)
    assert (tr.X != table[mask].X).nnz == 0
    # the noiseless mean is consistent with the counts
    assert abs(np.log(_dense(tr.X).sum() / tr.layers["mean"].sum())) < 0.05


def test_truth_under_age_intervention(sdata, table):
    young = (table.obs["age"] == "4wk").to_numpy()
    fact = table[young]
    tr = brain_aging_truth(sdata, {"age": "90wk"}, cells=young)
    assert tr.shape == fact.shape
    assert list(tr.var_names) == list(table.var_names)
    assert list(tr.obs_names) == list(fact.obs_names)
    assert list(tr.obs["source_id"]) == list(fact.obs_names)
    assert sp.isspmatrix_csr(tr.X) and tr.X.dtype == np.float32
    # exogenous context kept, intervened concept changed
    assert (tr.obs["age"] == "90wk").all()
    assert list(tr.obs["age"].cat.categories) == AGES
    for col in ("mouse", "domain", "cell_id"):
        np.testing.assert_array_equal(
            tr.obs[col].astype(str).to_numpy(), fact.obs[col].astype(str).to_numpy()
        )
    np.testing.assert_array_equal(tr.obsm["spatial"], fact.obsm["spatial"])
    np.testing.assert_array_equal(
        tr.obs["source_cell_type"].astype(str).to_numpy(),
        fact.obs["cell_type"].astype(str).to_numpy(),
    )

    # some but not most cells switch type, and only in the ageing direction
    switched = (tr.obs["cell_type"].astype(str) != tr.obs["source_cell_type"].astype(str))
    switched = switched.to_numpy()
    assert 0.02 < switched.mean() < 0.3
    assert set(tr.obs["cell_type"][switched]) <= {"Microglia", "Oligo"}
    assert not set(tr.obs["source_cell_type"][switched]) & {"Microglia", "Oligo"}

    # for cells that keep their type, the expected counts change exactly by the planted
    # fold change on the planted genes and not at all elsewhere
    kept = ~switched
    f_mean = brain_aging_truth(sdata, {"age": "4wk"}, cells=young).layers["mean"]
    lfc = np.log2(tr.layers["mean"][kept] / f_mean[kept])
    ct = tr.obs["cell_type"].to_numpy()[kept]
    striatum = tr.obs["domain"].to_numpy()[kept] == "Striatum"
    gidx = {g: i for i, g in enumerate(table.var_names)}
    is_broad = (table.var["gene_class"] == "age_broad").to_numpy()
    # broad programme: one shift per gene, the same in every cell type
    assert 0.1 < is_broad.mean() < 0.35
    expected = np.zeros_like(lfc)
    expected[:, is_broad] = np.median(lfc[:, is_broad], axis=0)
    assert np.abs(expected[0, is_broad]).mean() > 0.2
    for _, row in PLANTED_AGE_EFFECTS.iterrows():
        m = ct == row["cell_type"]
        expected[m & ~striatum, gidx[row["gene"]]] = row["log2fc_90wk"]
        expected[m & striatum, gidx[row["gene"]]] = row["log2fc_90wk_striatum"]
    np.testing.assert_allclose(lfc, expected, atol=1e-4)

    # ... and the counterfactual counts move in the planted direction
    xf, xc = _dense(fact.X)[kept], _dense(tr.X)[kept]
    for _, row in PLANTED_AGE_EFFECTS.iterrows():
        m = ct == row["cell_type"]
        g = gidx[row["gene"]]
        diff = xc[m, g].mean() - xf[m, g].mean()
        assert diff > 0 if row["direction"] == "up" else diff < 0, (row["gene"], diff)
    # non-age genes of kept cells: identical counts (same noise, same mean)
    other = [gidx[g] for g, b in zip(table.var_names, is_broad) if g not in AGE_GENES and not b]
    np.testing.assert_array_equal(xc[:, other], xf[:, other])


def test_truth_under_domain_intervention(table):
    l23 = (table.obs["domain"] == "L2/3").to_numpy()
    tr = brain_aging_truth(table, {"domain": "WM"}, cells=l23)
    assert (tr.obs["domain"] == "WM").all()
    assert (tr.obs["age"] == table.obs["age"][l23]).all()
    np.testing.assert_array_equal(tr.obsm["spatial"], table.obsm["spatial"][l23])
    frac = tr.obs["cell_type"].value_counts(normalize=True)
    assert frac["Oligo"] > 0.5
    assert (tr.obs["source_cell_type"] == "ExN_L23").mean() > 0.4
    mbp = list(table.var_names).index("Mbp")
    assert _dense(tr.X)[:, mbp].mean() > 3 * _dense(table[l23].X)[:, mbp].mean()


def test_truth_cell_selection(sdata, table):
    names = ["cell_10", "cell_3", "cell_4500"]
    tr = brain_aging_truth(sdata, {"age": "24wk"}, cells=names)
    assert list(tr.obs_names) == names and list(tr.obs["source_id"]) == names
    # a subset AnnData (a view of a few cells) gives the same rows
    sub = table[[4500, 3]].copy()
    tr2 = brain_aging_truth(sub, {"age": "24wk"})
    assert isinstance(tr2, ad.AnnData)
    np.testing.assert_array_equal(_dense(tr2.X), _dense(tr.X)[[2, 1]])
    with pytest.raises(KeyError):
        brain_aging_truth(sdata, {"age": "24wk"}, cells=["no_such_cell"])


def test_errors(sdata):
    with pytest.raises(ValueError, match="age.*domain"):
        brain_aging_truth(sdata, {"cell_type": "Oligo"})
    with pytest.raises(ValueError, match="options"):
        brain_aging_truth(sdata, {"sex": "F"})
    with pytest.raises(ValueError, match="90wk"):
        brain_aging_truth(sdata, {"age": "12wk"})
    with pytest.raises(ValueError, match="Striatum"):
        brain_aging_truth(sdata, {"domain": "Hippocampus"})
    with pytest.raises(ValueError, match="n_genes"):
        brain_aging(n_cells=300, n_genes=20)
    with pytest.raises(ValueError, match="brain_aging"):
        brain_aging_truth(ad.AnnData(np.zeros((3, 2), dtype=np.float32)), {"age": "4wk"})
