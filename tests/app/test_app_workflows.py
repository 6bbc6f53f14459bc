"""The workflow functions of :mod:`napari_causcell.app` called directly on an AppState (what
the deprecated ``session.CausCellSession`` wrapped as methods, removed in 0.3)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causcell import DAGError, DataError
from napari_causcell.app import AppState, data_from_metadata, label_palette, to_rgba
from napari_causcell.app import cells, intervene, overlay, train
from napari_causcell.datasets import brain_aging

TINY = {"token_dim": 8, "hidden": 64, "width": 32, "depth": 1}


def _intervene(s: AppState, do, selection=None, **kwargs):
    selection = selection or cells.select(s, "all")
    return s.add_intervention(intervene.compute_intervention(s, do, selection, **kwargs))


@pytest.fixture(scope="module")
def trained():
    sdata = brain_aging(n_cells=400, n_genes=80, n_mice_per_age=1)
    s = AppState(sdata)
    train.build_model(s, ["age", "domain", "cell_type"],
                      train.edges_from_parents({"cell_type": ["age", "domain"]}), device="cpu",
                      **TINY)
    seen = []
    s.model.train(2, callbacks=[lambda p: seen.append(p.epoch)])
    s.trained()
    assert seen == [1, 2]
    return s


def test_columns_guesses_and_dag():
    s = AppState(brain_aging(n_cells=200, n_genes=60, n_mice_per_age=1))
    cols = s.categorical_columns()
    assert {"age", "domain", "cell_type", "mouse"} <= set(cols)
    assert "cell_id" not in cols and "region" not in cols
    assert s.default_concepts() == ["age", "domain", "cell_type"]
    assert (s.guess_column("cell_type"), s.guess_column("domain")) == ("cell_type", "domain")
    assert s.labels("age") == ["4wk", "24wk", "90wk"]
    edges = train.edges_from_parents({"cell_type": ["age", "domain"], "age": []})
    assert train.check_dag(["age", "domain", "cell_type"], edges) == edges
    with pytest.raises(DAGError, match="cycle"):
        train.check_dag(["age", "cell_type"], [("age", "cell_type"), ("cell_type", "age")])
    assert s.table_keys() == ["table"]
    with pytest.raises(DataError, match="No model"):
        s.require_model()


def test_selection_modes():
    s = AppState(brain_aging(n_cells=300, n_genes=60, n_mice_per_age=1))
    obs = s.adata.obs
    assert cells.select(s, "all").n_cells == 300
    sel = cells.select(s, "cell_type", "Astro")
    assert sel.description == "cell_type=Astro"
    np.testing.assert_array_equal(sel.mask, (obs["cell_type"] == "Astro").to_numpy())
    assert cells.select(s, "domain", "WM").n_cells == int((obs["domain"] == "WM").sum())
    assert cells.select(s, "label", "4wk", column="age").description == "age=4wk"
    assert cells.select(s, "indices", [3, 1, 3]).n_cells == 2
    mask = np.zeros(300, bool)
    mask[:5] = True
    assert cells.select(s, "mask", mask).n_cells == 5
    x0, y0 = s.coords.min(0)
    square = np.array([[x0, y0], [x0 + 300, y0], [x0 + 300, y0 + 300], [x0, y0 + 300]])
    inside = cells.select(s, "polygon", polygons=[square])
    xy = s.coords
    expect = (xy[:, 0] < x0 + 300) & (xy[:, 1] < y0 + 300)
    np.testing.assert_array_equal(inside.mask, expect)
    assert inside.description.endswith("in 1 drawn shape")
    assert cells.majority_label(s, [square], "domain") in s.labels("domain")
    i = cells.nearest_cell(s, xy[7] + 0.1)
    assert i == 7 and cells.label_at(s, xy[7], "domain") == str(obs["domain"].iloc[7])
    for mode, kwargs in [("indices", {"value": []}), ("polygon", {"polygons": []}),
                         ("polygon", {"polygons": [square + 1e6]}),
                         ("cell_type", {"value": "NoSuchType"}),
                         ("mask", {"value": np.zeros(300, bool)})]:
        with pytest.raises(DataError, match="empty"):
            cells.select(s, mode, **kwargs)


def test_naming():
    s = AppState(brain_aging(n_cells=100, n_genes=60, n_mice_per_age=1))
    sel = cells.select(s, "cell_type", "Astro")
    assert intervene.intervention_name({"age": "90wk"}) == "do(age=90wk)"
    assert intervene.intervention_name({"domain": "L2/3"}, sel) == \
        "do(domain=L2/3) on cell_type=Astro"
    assert intervene.intervention_key(s, {"domain": "L2/3"}, sel) == \
        "causcell_domain_L2_3_cell_type_Astro"
    s.data.tables["causcell_age_90wk"] = s.data.tables["table"].copy()
    assert intervene.intervention_key(s, {"age": "90wk"}) == "causcell_age_90wk_2"


def test_training_stops_when_asked():
    s = AppState(brain_aging(n_cells=200, n_genes=60, n_mice_per_age=1))
    model = train.build_model(s, ["age", "cell_type"], [("age", "cell_type")], device="cpu",
                              **TINY)
    seen = []

    def stop(p):
        seen.append(p.epoch)
        model.request_stop()

    model.train(100, callbacks=[stop])
    assert seen[0] == 1 and len(seen) <= 2  # stops after the step running when asked
    assert model.is_trained and model.train_params["stop_reason"] == "cancelled"


def test_interventions_and_values(trained):
    s = trained
    sdata = s.data
    n = s.n_cells
    sel = cells.select(s, "label", "4wk", column="age")
    iv = _intervene(s, {"age": "90wk"}, sel, steps=4, seed=1)
    assert iv.name in s.interventions and iv.key in sdata.tables
    assert sdata.tables[iv.key].n_obs == sel.n_cells
    np.testing.assert_array_equal(np.sort(iv.rows), np.flatnonzero(sel.mask))

    gene = s.genes[0]
    fact = s.factual_expression(gene)
    cf = overlay.gene_values(s, gene, "counterfactual", iv.name)
    diff = overlay.gene_values(s, gene, "difference", iv.name)
    out = ~sel.mask
    np.testing.assert_array_equal(cf[out], fact[out])
    assert (diff[out] == 0).all()
    np.testing.assert_allclose(diff[iv.rows], iv.gene_delta(gene), rtol=1e-6)
    np.testing.assert_allclose(cf[iv.rows], np.maximum(fact[iv.rows] + diff[iv.rows], 0))

    ov_f = overlay.make_overlay(s, gene=gene, view="factual", interventions=[iv.name])
    ov_c = overlay.make_overlay(s, gene=gene, view="counterfactual",
                                interventions=[iv.name, None])
    assert ov_f.limits == ov_c.limits and ov_c.titles == [iv.name, "factual"]
    changed = np.flatnonzero(np.any(ov_f.rgba(0) != ov_c.rgba(0), axis=1))
    assert set(changed) <= set(iv.rows)
    ov_d = overlay.make_overlay(s, gene=gene, view="difference", interventions=[iv.name])
    lo, hi = ov_d.limits
    assert ov_d.cmap == "RdBu_r" and lo == -hi and hi > 0
    assert np.isnan(ov_d.values[0][out]).all()  # not intervened on: grey, not "no change"
    np.testing.assert_array_equal(ov_d.rgba(0)[out][:, :3], 0.45)
    with pytest.raises(DataError):
        overlay.make_overlay(s, gene=gene, view="difference", interventions=[None])

    mag = overlay.magnitude(s, iv.name)
    assert mag.shape == (n,) and (mag[out] == 0).all() and (mag[iv.rows] > 0).all()
    labels = overlay.concept_labels(s, "age", iv.name)
    assert set(labels[iv.rows]) == {"90wk"} and (labels[out] != "90wk").any()
    pred = overlay.make_overlay(s, "predicted", concept="age", interventions=[None, iv.name])
    assert pred.kind == "categorical" and pred.rgba(1).shape == (n, 4)
    assert overlay.top_genes(s, iv.name, 5).shape[0] == 5
    sub = cells.select(s, "label", "Astro", column="cell_type")
    top = overlay.top_genes(s, iv.name, 5, selection=sub)
    assert list(top.columns) == ["gene", "mean_factual", "mean_counterfactual", "mean_change"]

    # a locus intervention on a drawn polygon, target picked from the tissue
    x0, y0 = s.coords.min(0)
    square = np.array([[x0, y0], [x0 + 400, y0], [x0 + 400, y0 + 300], [x0, y0 + 300]])
    target = cells.label_at(
        s, s.coords[s.adata.obs["domain"].astype(str).to_numpy() == "WM"][0], "domain")
    iv2 = _intervene(s, {"domain": target}, cells.select(s, "polygon", polygons=[square]),
                     steps=4)
    assert (sdata.tables[iv2.key].obs["domain"] == target).all()
    assert list(s.interventions) == [iv.name, iv2.name]
    with pytest.raises(DataError, match="not a label"):
        intervene.compute_intervention(s, {"domain": "Mars"}, cells.select(s, "all"))


def test_anndata_and_metadata(trained, tmp_path):
    s = trained
    sdata = s.data
    adata = sdata.tables["table"]
    meta = {"sdata": sdata, "adata": adata, "region_key": "region", "instance_key": "cell_id"}
    assert data_from_metadata(meta) == (sdata, "table")
    assert data_from_metadata({"adata": adata}) == (adata, None)
    with pytest.raises(DataError):
        data_from_metadata({})
    # a saved model loads into a state on a plain AnnData; results go to uns
    train.save_model(s, tmp_path / "m")
    a = AppState(adata.copy())
    train.load_model(a, tmp_path / "m", device="cpu")
    iv = _intervene(a, {"age": "24wk"}, cells.select(a, "cell_type", "Astro"), steps=3)
    assert iv.key in a.adata.uns["causcell"]


def test_colour_helpers():
    rgba = to_rgba(np.array([0.0, 0.5, 1.0, np.nan]), "viridis", (0.0, 1.0))
    assert rgba.shape == (4, 4) and len(np.unique(rgba[:3], axis=0)) == 3
    pal = label_palette(["a", "b", "c"])
    assert set(pal) == {"a", "b", "c"} and not np.allclose(pal["a"], pal["b"])
