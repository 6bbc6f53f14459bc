"""MERFISH brain-aging readers: mapping to the concept schema on small tables built here."""

from __future__ import annotations

import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_causcell.data import DataError
from napari_causcell.datasets import (
    PUBLISHED_AGE_TRENDS,
    age_labels,
    harmonize_cell_types,
    merfish_to_schema,
    merscope_to_schema,
    read_merfish_h5ad,
    read_merscope,
)


def _cellxgene(n: int = 60, seed: int = 0, n_slices: int = 12) -> ad.AnnData:
    """A tiny AnnData shaped like the CELLxGENE atlas: Ensembl var names, symbols in
    var['feature_name'], raw counts in .raw, log-normalised .X, obs age/donor_id/cell_type/slice
    and center_x/center_y."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2.0, size=(n, 4)).astype(np.float32)
    var = pd.DataFrame({"feature_name": ["C4b", "Xdh", "Gpc5", "Lilrb4a"]},
                       index=[f"ENSMUSG{i:011d}" for i in range(4)])
    ages = np.array(["4 weeks", "90 weeks", "24 weeks"])[np.arange(n) % 3]
    obs = pd.DataFrame({
        "age": ages,
        "donor_id": [f"mouse_{i % 6}" for i in range(n)],
        "cell_type": np.array(["oligodendrocyte", "astrocyte", "microglial cell",
                               "endothelial cell", "oligodendrocyte precursor cell"])[
            np.arange(n) % 5],
        "slice": [f"slice_{i % n_slices}" for i in range(n)],
        "center_x": rng.random(n) * 100,
        "center_y": rng.random(n) * 100,
    }, index=[f"c{i}" for i in range(n)])
    adata = ad.AnnData(X=sp.csr_matrix(np.log1p(counts)), obs=obs, var=var)
    adata.raw = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)
    return adata


def test_age_labels_parse_and_order():
    cat = age_labels(["90 weeks", "4wk", "24-week-old stage", 4, "18mo"])
    assert list(cat) == ["90wk", "4wk", "24wk", "4wk", "18mo"]
    assert list(cat.categories) == ["4wk", "24wk", "18mo", "90wk"]  # by time: 18mo = 78wk
    assert cat.ordered
    with pytest.raises(DataError, match="Cannot read an age"):
        age_labels(["old"])
    with pytest.raises(DataError, match="Missing age"):
        age_labels(["4wk", None])
    with pytest.raises(DataError, match="unit"):
        age_labels(["4 fortnights"])


def test_harmonize_cell_types():
    got = harmonize_cell_types(["oligodendrocyte", "oligodendrocyte precursor cell", "Olig",
                                "astrocyte", "microglial cell", "Micro", "endothelial cell",
                                "pericyte", "medium spiny neuron", "GABAergic neuron",
                                "glutamatergic neuron", "Something else"])
    assert list(got) == ["Oligo", "OPC", "Oligo", "Astro", "Microglia", "Microglia", "Endo",
                         "Peri", "MSN", "InN", "ExN", "Something else"]


def test_cellxgene_h5ad_maps_to_schema(tmp_path):
    src = _cellxgene()
    path = tmp_path / "atlas.h5ad"
    src.write_h5ad(path)
    out = read_merfish_h5ad(path)
    # raw counts from .raw, gene symbols as var names, Ensembl ids kept
    assert list(out.var_names) == ["C4b", "Xdh", "Gpc5", "Lilrb4a"]
    assert out.var["gene_id"].iloc[0] == "ENSMUSG00000000000"
    np.testing.assert_array_equal(out.X.toarray(), src.raw.X.toarray())
    np.testing.assert_array_equal(out.layers["counts"].toarray(), src.raw.X.toarray())
    assert list(out.obs["age"].cat.categories) == ["4wk", "24wk", "90wk"]
    assert list(out.obs["age"][:3]) == ["4wk", "90wk", "24wk"]
    assert out.obs["donor"].iloc[7] == "mouse_1" and out.obs["slice"].iloc[7] == "slice_7"
    assert (out.obs["batch"].astype(str) == out.obs["donor"].astype(str)).all()
    assert list(out.obs["cell_type"][:5]) == ["Oligo", "Astro", "Microglia", "Endo", "OPC"]
    assert out.obs["cell_type_original"].iloc[2] == "microglial cell"
    np.testing.assert_allclose(out.obsm["spatial"], src.obs[["center_x", "center_y"]])
    assert "domain" not in out.obs
    schema = out.uns["causcell_schema"]
    assert schema["age"] == "age" and schema["donor"] == "donor_id"
    assert schema["counts"] == "raw.X" and schema["spatial"] == "obs['center_x', 'center_y']"
    # the published trends use the same cell-type names
    assert set(PUBLISHED_AGE_TRENDS["cell_type"]) <= {"Oligo", "Astro", "Microglia", "Endo"}


def test_cellxgene_options_and_derived_domains():
    src = _cellxgene(n=120)
    src.obs["region_label"] = np.where(np.arange(120) % 2, "CTX", "STR")
    out = merfish_to_schema(src, domain_key="region_label", batch="slice", harmonize=False)
    assert set(out.obs["domain"]) == {"CTX", "STR"}
    assert (out.obs["batch"].astype(str) == out.obs["slice"].astype(str)).all()
    assert out.obs["cell_type"].iloc[0] == "oligodendrocyte"  # not harmonised
    derived = merfish_to_schema(_cellxgene(n=120, n_slices=2), derive_domains=3)
    assert set(derived.obs["domain"].cat.categories) == {"D0", "D1", "D2"}
    assert derived.uns["causcell_schema"]["domain"].startswith("derived")


def test_cellxgene_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="CELLxGENE"):
        read_merfish_h5ad(tmp_path / "missing.h5ad")
    src = _cellxgene()
    with pytest.raises(DataError, match="donor"):
        merfish_to_schema(ad.AnnData(X=src.raw.X, obs=src.obs.drop(columns=["donor_id"]),
                                     var=src.var))
    no_xy = _cellxgene()
    no_xy.obs = no_xy.obs.drop(columns=["center_x", "center_y"])
    with pytest.raises(DataError, match="coordinates"):
        merfish_to_schema(no_xy)
    with pytest.raises(DataError, match="Missing obs column"):
        merfish_to_schema(_cellxgene(), slice_key="section")
    lognorm = ad.AnnData(X=src.X, obs=src.obs, var=src.var)  # no raw: .X is not counts
    with pytest.raises(DataError, match="not integers"):
        merfish_to_schema(lognorm)


def _merscope_table(n: int = 30) -> ad.AnnData:
    """What spatialdata_io.merscope puts in its table: obs indexed by EntityID with fov,
    volume, center_x/center_y, region, slide, dataset_id, EntityID; blank probes."""
    rng = np.random.default_rng(1)
    genes = ["C4b", "Gpc5", "Xdh", "Blank-1", "Blank-2"]
    ids = [str(1000 + i) for i in range(n)]
    obs = pd.DataFrame({
        "fov": rng.integers(0, 4, n), "volume": rng.random(n) * 500,
        "center_x": rng.random(n) * 1e3, "center_y": rng.random(n) * 1e3,
        "region": pd.Categorical(["region_0"] * n), "slide": pd.Categorical(["run_A"] * n),
        "dataset_id": pd.Categorical(["run_A_region_0"] * n), "EntityID": ids,
    }, index=ids)
    x = rng.poisson(1.5, size=(n, len(genes))).astype(np.float32)
    table = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=genes))
    table.obsm["spatial"] = obs[["center_x", "center_y"]].to_numpy()
    return table


def test_merscope_mapping_joins_annotations():
    table = _merscope_table()
    ann = pd.DataFrame({"cell_id": table.obs_names[:20],
                        "cell_type": ["Astrocytes", "Microglia"] * 10,
                        "domain": ["Striatum"] * 20})
    out = merscope_to_schema(table, ann, cell_id_key="cell_id", age="90 weeks", donor="m1")
    assert out.n_obs == 20 and out.uns["causcell_schema"]["unannotated"] == 10
    assert list(out.var_names) == ["C4b", "Gpc5", "Xdh"]  # blank probes dropped
    assert set(out.obs["age"]) == {"90wk"} and set(out.obs["donor"]) == {"m1"}
    assert set(out.obs["slice"]) == {"run_A"}
    assert list(out.obs["cell_type"][:2]) == ["Astro", "Microglia"]
    assert set(out.obs["domain"]) == {"Striatum"}
    # table columns, region and instance ids kept; counts and coordinates of the same cells
    assert list(out.obs["EntityID"]) == list(table.obs_names[:20])
    assert "fov" in out.obs and "region" in out.obs
    np.testing.assert_array_equal(out.X.toarray(), table.X[:20, :3])
    np.testing.assert_allclose(out.obsm["spatial"], table.obs[["center_x", "center_y"]][:20])


def test_merscope_mapping_errors_and_missing_reader(monkeypatch, tmp_path):
    table = _merscope_table()
    with pytest.raises(DataError, match="annotations="):
        merscope_to_schema(table)  # no age/donor/cell type at all
    bad = pd.DataFrame({"cell_type": ["Astro"] * 3}, index=["x1", "x2", "x3"])
    with pytest.raises(DataError, match="No cell of the table is annotated"):
        merscope_to_schema(table, bad, age="4wk", donor="m1")
    monkeypatch.setitem(sys.modules, "spatialdata_io", None)  # import fails as if absent
    with pytest.raises(ImportError, match="pip install spatialdata-io"):
        read_merscope(tmp_path)
