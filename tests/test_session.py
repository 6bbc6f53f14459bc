"""The front-end-neutral controller (no Qt, no napari)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_causcell import DAGError, DataError
from napari_causcell.datasets import brain_aging
from napari_causcell.session import CausCellSession, data_from_metadata, label_palette, to_rgba

TINY = {"token_dim": 8, "hidden": 64, "width": 32, "depth": 1}


@pytest.fixture(scope="module")
def trained():
    sdata = brain_aging(n_cells=400, n_genes=80, n_mice_per_age=1)
    s = CausCellSession(sdata)
    s.build_model(["age", "domain", "cell_type"],
                  s.edges_from_parents({"cell_type": ["age", "domain"]}), device="cpu", **TINY)
    epochs = list(s.train_iter(2))
    assert [p.epoch for p in epochs] == [1, 2]
    return s


def test_no_qt_or_napari_import():
    code = (
        "import sys, napari_causcell.session\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_columns_guesses_and_dag():
    s = CausCellSession(brain_aging(n_cells=200, n_genes=60, n_mice_per_age=1))
    cols = s.categorical_columns()
    assert {"age", "domain", "cell_type", "mouse"} <= set(cols)
    assert "cell_id" not in cols and "region" not in cols
    assert s.default_concepts() == ["age", "domain", "cell_type"]
    assert (s.guess_column("cell_type"), s.guess_column("domain")) == ("cell_type", "domain")
    assert s.labels("age") == ["4wk", "24wk", "90wk"]
    edges = s.edges_from_parents({"cell_type": ["age", "domain"], "age": []})
    assert s.check_dag(["age", "domain", "cell_type"], edges) == edges
    with pytest.raises(DAGError, match="cycle"):
        s.check_dag(["age", "cell_type"], [("age", "cell_type"), ("cell_type", "age")])
    assert s.table_keys() == ["table"]
    with pytest.raises(DataError, match="No model"):
        s.require_model()


def test_selection_modes():
    s = CausCellSession(brain_aging(n_cells=300, n_genes=60, n_mice_per_age=1))
    obs = s.adata.obs
    assert s.select("all").n_cells == 300
    sel = s.select("cell_type", "Astro")
    assert sel.description == "cell_type=Astro"
    np.testing.assert_array_equal(sel.mask, (obs["cell_type"] == "Astro").to_numpy())
    assert s.select("domain", "WM").n_cells == int((obs["domain"] == "WM").sum())
    assert s.select("label", "4wk", column="age").description == "age=4wk"
    assert s.select("indices", [3, 1, 3]).n_cells == 2
    mask = np.zeros(300, bool)
    mask[:5] = True
    assert s.select("mask", mask).n_cells == 5
    x0, y0 = s.coords.min(0)
    square = np.array([[x0, y0], [x0 + 300, y0], [x0 + 300, y0 + 300], [x0, y0 + 300]])
    inside = s.select("polygon", polygons=[square])
    xy = s.coords
    expect = (xy[:, 0] < x0 + 300) & (xy[:, 1] < y0 + 300)
    np.testing.assert_array_equal(inside.mask, expect)
    assert inside.description.endswith("in 1 drawn shape")
    assert s.majority_label([square], "domain") in s.labels("domain")
    i = s.nearest_cell(xy[7] + 0.1)
    assert i == 7 and s.label_at(xy[7], "domain") == str(obs["domain"].iloc[7])
    for mode, kwargs in [("indices", {"value": []}), ("polygon", {"polygons": []}),
                         ("polygon", {"polygons": [square + 1e6]}),
                         ("cell_type", {"value": "NoSuchType"}),
                         ("mask", {"value": np.zeros(300, bool)})]:
        with pytest.raises(DataError, match="empty"):
            s.select(mode, **kwargs)


def test_naming():
    s = CausCellSession(brain_aging(n_cells=100, n_genes=60, n_mice_per_age=1))
    sel = s.select("cell_type", "Astro")
    assert s.intervention_name({"age": "90wk"}) == "do(age=90wk)"
    assert s.intervention_name({"domain": "L2/3"}, sel) == "do(domain=L2/3) on cell_type=Astro"
    assert s.intervention_key({"domain": "L2/3"}, sel) == "causcell_domain_L2_3_cell_type_Astro"
    s.data.tables["causcell_age_90wk"] = s.data.tables["table"].copy()
    assert s.intervention_key({"age": "90wk"}) == "causcell_age_90wk_2"


def test_train_iter_stops_early():
    s = CausCellSession(brain_aging(n_cells=200, n_genes=60, n_mice_per_age=1))
    s.build_model(["age", "cell_type"], [("age", "cell_type")], device="cpu", **TINY)
    seen = []
    for p in s.train_iter(100):
        seen.append(p.epoch)
        s.request_stop()
    assert seen[0] == 1 and len(seen) <= 2  # stops after the step running when asked
    assert s.model.is_trained and s.model.train_params["stop_reason"] == "cancelled"


def test_interventions_and_values(trained):
    s = trained
    sdata = s.data
    n = s.n_cells
    sel = s.select("label", "4wk", column="age")
    iv = s.intervene({"age": "90wk"}, sel, steps=4, seed=1)
    assert iv.name in s.interventions and iv.key in sdata.tables
    assert sdata.tables[iv.key].n_obs == sel.n_cells
    np.testing.assert_array_equal(np.sort(iv.rows), np.flatnonzero(sel.mask))

    gene = s.genes[0]
    fact = s.factual_expression(gene)
    cf = s.gene_values(gene, "counterfactual", iv.name)
    diff = s.gene_values(gene, "difference", iv.name)
    out = ~sel.mask
    np.testing.assert_array_equal(cf[out], fact[out])
    assert (diff[out] == 0).all()
    np.testing.assert_allclose(diff[iv.rows], iv.gene_delta(gene), rtol=1e-6)
    np.testing.assert_allclose(cf[iv.rows], np.maximum(fact[iv.rows] + diff[iv.rows], 0))

    ov_f = s.overlay(gene=gene, view="factual", interventions=[iv.name])
    ov_c = s.overlay(gene=gene, view="counterfactual", interventions=[iv.name, None])
    assert ov_f.limits == ov_c.limits and ov_c.titles == [iv.name, "factual"]
    changed = np.flatnonzero(np.any(ov_f.rgba(0) != ov_c.rgba(0), axis=1))
    assert set(changed) <= set(iv.rows)
    ov_d = s.overlay(gene=gene, view="difference", interventions=[iv.name])
    lo, hi = ov_d.limits
    assert ov_d.cmap == "RdBu_r" and lo == -hi and hi > 0
    assert np.isnan(ov_d.values[0][out]).all()  # not intervened on: grey, not "no change"
    np.testing.assert_array_equal(ov_d.rgba(0)[out][:, :3], 0.45)
    with pytest.raises(DataError):
        s.overlay(gene=gene, view="difference", interventions=[None])

    mag = s.magnitude(iv.name)
    assert mag.shape == (n,) and (mag[out] == 0).all() and (mag[iv.rows] > 0).all()
    labels = s.concept_labels("age", iv.name)
    assert set(labels[iv.rows]) == {"90wk"} and (labels[out] != "90wk").any()
    pred = s.overlay("predicted", concept="age", interventions=[None, iv.name])
    assert pred.kind == "categorical" and pred.rgba(1).shape == (n, 4)
    assert s.top_genes(iv.name, 5).shape[0] == 5
    sub = s.select("label", "Astro", column="cell_type")
    top = s.top_genes(iv.name, 5, selection=sub)
    assert list(top.columns) == ["gene", "mean_factual", "mean_counterfactual", "mean_change"]

    # a locus intervention on a drawn polygon, target picked from the tissue
    x0, y0 = s.coords.min(0)
    square = np.array([[x0, y0], [x0 + 400, y0], [x0 + 400, y0 + 300], [x0, y0 + 300]])
    target = s.label_at(s.coords[s.adata.obs["domain"].astype(str).to_numpy() == "WM"][0],
                        "domain")
    iv2 = s.intervene({"domain": target}, s.select("polygon", polygons=[square]), steps=4)
    assert (sdata.tables[iv2.key].obs["domain"] == target).all()
    assert list(s.interventions) == [iv.name, iv2.name]
    with pytest.raises(DataError, match="not a label"):
        s.compute_intervention({"domain": "Mars"}, s.select("all"))


def test_anndata_and_metadata(trained, tmp_path):
    s = trained
    sdata = s.data
    adata = sdata.tables["table"]
    meta = {"sdata": sdata, "adata": adata, "region_key": "region", "instance_key": "cell_id"}
    assert data_from_metadata(meta) == (sdata, "table")
    assert data_from_metadata({"adata": adata}) == (adata, None)
    with pytest.raises(DataError):
        data_from_metadata({})
    # a saved model loads into a session on a plain AnnData; results go to uns
    s.save_model(tmp_path / "m")
    a = CausCellSession(adata.copy())
    a.load_model(tmp_path / "m", device="cpu")
    iv = a.intervene({"age": "24wk"}, a.select("cell_type", "Astro"), steps=3)
    assert iv.key in a.adata.uns["causcell"]


def test_colour_helpers():
    rgba = to_rgba(np.array([0.0, 0.5, 1.0, np.nan]), "viridis", (0.0, 1.0))
    assert rgba.shape == (4, 4) and len(np.unique(rgba[:3], axis=0)) == 3
    pal = label_palette(["a", "b", "c"])
    assert set(pal) == {"a", "b", "c"} and not np.allclose(pal["a"], pal["b"])
