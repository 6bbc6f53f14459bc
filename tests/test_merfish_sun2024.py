"""The real MERFISH brain-aging data shipped with the package (Sun et al.; MIT licence)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_causcell import datasets, tl
from napari_causcell.datasets import merfish_brain_aging, merfish_brain_aging_path

REGIONS = ["CC/ACO", "CTX_L2/3", "CTX_L4/5/6", "STR_CP/ACB", "STR_LS/NDB", "VEN"]


@pytest.fixture(scope="module")
def sdata():
    return merfish_brain_aging()


@pytest.fixture(scope="module")
def table(sdata):
    return sdata.tables["table"]


def test_file_ships_inside_the_package_with_its_licence():
    path = merfish_brain_aging_path()
    pkg = Path(datasets.__file__).resolve().parent
    assert path.is_file() and path.resolve().parent == pkg / "data"
    assert 1_000_000 < path.stat().st_size < 3_000_000
    lic = (pkg / "data" / "LICENSE_merfish_brain_aging_sun2024.txt").read_text()
    assert "MIT License" in lic and "Copyright (c) 2024 Eric David Sun" in lic
    assert "spatial-aging-clock 0.0.2" in lic and "Sun, E. D. et al." in lic


def test_known_facts(sdata, table):
    assert table.shape == (4788, 200)
    # cells are circle shapes the table annotates
    shapes = sdata.shapes["cells"]
    assert len(shapes) == 4788 and (shapes["radius"] > 0).all()
    attrs = table.uns["spatialdata_attrs"]
    assert (attrs["region"], attrs["region_key"], attrs["instance_key"]) == (
        "cells", "region", "cell_id")
    np.testing.assert_array_equal(shapes.index.to_numpy(), table.obs["cell_id"].to_numpy())
    # counts: sparse, integer-valued, non-negative, in X and layers['counts']
    assert sp.issparse(table.X) and table.X.dtype == np.float32
    vals = table.X.data
    assert (vals > 0).all() and np.array_equal(vals, np.round(vals))
    assert (table.X != table.layers["counts"]).nnz == 0
    assert table.X.sum() == pytest.approx(table.obs["total_counts"].sum())
    # concepts: age ordered young < old, one mouse each
    age = table.obs["age"]
    assert age.cat.ordered and age.cat.categories.tolist() == ["young", "old"]
    assert age.value_counts().to_dict() == {"young": 2411, "old": 2377}
    assert pd.crosstab(table.obs["mouse"], age).to_dict() == {
        "young": {"YC1": 2411, "OC1": 0}, "old": {"YC1": 0, "OC1": 2377}}
    assert (table.obs["donor"].astype(str) == table.obs["mouse"].astype(str)).all()
    assert sorted(table.obs["age_months"].unique()) == [3.0, 19.0]
    ct = table.obs["cell_type"].value_counts()
    assert len(ct) == 15
    assert (ct["Astro"], ct["Oligo"], ct["Microglia"], ct["VLMC"], ct["VSMC"],
            ct["Macrophage"]) == (1129, 1093, 153, 14, 10, 2)
    assert table.obs["cell_type_original"].nunique() == 15
    assert sorted(table.obs["domain"].cat.categories) == REGIONS
    by_age = pd.crosstab(table.obs["domain"], age)
    assert (by_age.loc["STR_CP/ACB", "young"], by_age.loc["STR_CP/ACB", "old"]) == (1393, 57)
    assert (by_age.loc["CTX_L2/3", "young"], by_age.loc["CTX_L2/3", "old"]) == (157, 740)
    # the two sections side by side: no overlap in x, original coordinates kept
    xy = np.asarray(table.obsm["spatial"])
    young = age.to_numpy() == "young"
    assert xy[young, 0].max() < xy[~young, 0].min()
    np.testing.assert_allclose(xy[young], table.obsm["spatial_original"][young])
    meta = table.uns["merfish_brain_aging"]
    assert "confounded" in meta["caveats"] and "MIT" in meta["license"]
    assert table.layers["volume_normalized"].shape == (4788, 200)


def test_as_anndata_and_known_ageing_signals():
    adata = merfish_brain_aging(as_anndata=True)
    assert adata.shape == (4788, 200)
    # the README's old-minus-young differences (log1p CP10k) are there, with the right sign
    with pytest.warns(UserWarning, match="one donor"):
        df = tl.direct_trends(adata, source="young", targets="old", groupby="cell_type",
                              marginal=False, copy=True)
    # one mouse per age: every row is flagged, and cells were the only possible unit
    assert df["one_donor"].all() and set(df["unit"]) == {"cells"}
    assert (df["n_donors_source"] == 1).all() and (df["n_donors_target"] == 1).all()
    got = {(g, c): float(df.loc[(df["gene"] == g) & (df["cell_type"] == c),
                                "mean_change"].iloc[0])
           for g, c in zip(datasets.SUN2024_AGE_MARKERS["gene"],
                           datasets.SUN2024_AGE_MARKERS["cell_type"])}
    assert got[("C4b", "Oligo")] == pytest.approx(3.0, abs=0.1)
    assert got[("Gfap", "Astro")] == pytest.approx(1.7, abs=0.1)
    assert got[("B2m", "Microglia")] == pytest.approx(0.9, abs=0.1)
    assert got[("H2-K1", "Microglia")] == pytest.approx(0.56, abs=0.1)
