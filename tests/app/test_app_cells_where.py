"""Issue 28 item 7: cells by any label of any column, AND-ed with another, or by rows, on the
user's own column names (the real MERFISH sample renamed as a user's data would be)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causcell.app import AppState, InterveneRequest
from napari_causcell.app.cells import default_column, parse_indices, select
from napari_causcell.errors import DataError


@pytest.fixture(scope="module")
def users():
    from napari_causcell.datasets import merfish_brain_aging

    a = merfish_brain_aging(as_anndata=True)
    a.obs = a.obs.rename(columns={"cell_type": "celltype", "domain": "region_name",
                                  "age": "age_group"})
    return AppState(a)


def test_a_label_and_a_second_condition(users):
    obs = users.adata.obs
    sel = select(users, "label", "Oligo", column="celltype", where={"age_group": "young"})
    want = ((obs["celltype"] == "Oligo") & (obs["age_group"] == "young")).to_numpy()
    np.testing.assert_array_equal(sel.mask, want)
    assert sel.description == "celltype=Oligo and age_group=young"
    only = select(users, "label", "Oligo", column="celltype")
    assert only.n_cells > sel.n_cells > 0  # without the second condition: old Oligo mixed in
    assert select(users, "all", where={"age_group": "old"}).description == "age_group=old"
    assert select(users, "label", "Oligo", column="celltype",
                  where={"(none)": "x"}).n_cells == only.n_cells  # "no second condition"
    with pytest.raises(DataError, match="no cell of celltype=VSMC has region_name=VEN"):
        select(users, "label", "VSMC", column="celltype", where={"region_name": "VEN"})
    with pytest.raises(DataError, match="'domain' is not in obs"):
        select(users, "all", where={"domain": "x"})


def test_rows_and_columns_from_the_data(users):
    assert parse_indices("0-4, 10 12") == [0, 1, 2, 3, 4, 10, 12]
    with pytest.raises(DataError, match="ranges like 0-99"):
        parse_indices("a-b")
    sel = select(users, "indices", "0-9", where={"age_group": "young"})
    assert sel.n_cells == int((users.adata.obs["age_group"].iloc[:10] == "young").sum())
    cols = users.categorical_columns()
    assert {"celltype", "region_name", "age_group"} <= set(cols)
    assert default_column(users) == "celltype"


def test_intervene_request_carries_the_second_condition(ready):
    req = InterveneRequest("age", "90wk", "label", "Astro", "cell_type", where={"age": "4wk"})
    do, sel = req.validate(ready)
    obs = ready.adata.obs
    assert do == {"age": "90wk"}
    assert sel.n_cells == int(((obs["cell_type"] == "Astro") & (obs["age"] == "4wk")).sum())
