"""Every public error is a :class:`~napari_causcell.errors.CausCellError`, raised before any work.

The model passed to the tools here fails the test if it is ever asked for a counterfactual:
each refusal must come before the (expensive) computation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_causcell import metrics, tl
from napari_causcell.errors import CausCellError, DataError, SettingError


class _NeverCalled:
    """A stand-in model: the checks must refuse before it is used."""

    concepts = ["age", "domain", "cell_type"]

    def counterfactual(self, *args, **kwargs):
        raise AssertionError("the input should have been refused before any work")


@pytest.fixture()
def adata(small_sdata):
    return small_sdata.tables["table"].copy()


def test_every_error_class_is_a_causcell_error():
    from napari_causcell import errors
    from napari_causcell.cli import UsageError

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), CausCellError)
    assert issubclass(UsageError, SettingError)


def test_n_samples_above_one_into_a_spatialdata_table(sdata):
    with pytest.raises(SettingError, match="annotates each instance once"):
        tl.counterfactual(sdata, _NeverCalled(), {"age": "90wk"}, n_samples=2)
    assert not [k for k in sdata.tables if k.startswith("causcell_")]


@pytest.mark.parametrize("n_samples", [0, 1.5, "2"])
def test_n_samples_and_steps_must_be_whole_and_positive(adata, n_samples):
    with pytest.raises(SettingError, match="n_samples"):
        tl.counterfactual(adata, _NeverCalled(), {"age": "90wk"}, n_samples=n_samples)
    with pytest.raises(SettingError, match="steps"):
        tl.counterfactual(adata, _NeverCalled(), {"age": "90wk"}, steps=0)


@pytest.mark.parametrize("key", ["a/b", "..", "__hidden", "a b", "x:y"])
@pytest.mark.parametrize("kind", ["spatialdata", "anndata"])
def test_key_added_is_checked_before_any_work(sdata, key, kind):
    data = sdata if kind == "spatialdata" else sdata.tables["table"]
    with pytest.raises(SettingError, match="not a valid name"):
        tl.counterfactual(data, _NeverCalled(), {"age": "90wk"}, key_added=key)
    with pytest.raises(SettingError, match="not a valid name"):  # also when nothing is written
        tl.counterfactual(data, _NeverCalled(), {"age": "90wk"}, key_added=key, copy=True)


@pytest.mark.parametrize("key", [42, ["cf"]])
def test_key_added_must_be_a_string(adata, key):
    with pytest.raises(SettingError, match="non-empty string"):
        tl.counterfactual(adata, _NeverCalled(), {"age": "90wk"}, key_added=key)


@pytest.mark.parametrize("data", [np.zeros((5, 3)), "tissue.zarr", None,
                                  pd.DataFrame({"a": [1]})])
def test_data_that_is_no_anndata_or_spatialdata(data):
    with pytest.raises(DataError, match="AnnData or a SpatialData"):
        tl.counterfactual(data, _NeverCalled(), {"age": "90wk"})


def test_tools_on_a_counterfactual_need_an_anndata():
    x = np.zeros((5, 3))
    with pytest.raises(DataError, match="must be an AnnData"):
        tl.select_cells(x)
    with pytest.raises(DataError, match="must be an AnnData"):
        tl.mean_change(x)
    with pytest.raises(DataError, match="must be an AnnData"):
        tl.top_changed_genes(x)


def test_the_default_table_name_is_public():
    assert tl.counterfactual_table_name({"age": "90wk"}) == "causcell_age_90wk"
    assert tl.counterfactual_table_name({"domain": "L2/3", "age": "4wk"}) == \
        "causcell_domain_L2_3_age_4wk"


def test_metrics_refuse_with_data_errors():
    with pytest.raises(DataError, match="one shape"):
        metrics.per_cell_pearson(np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(DataError, match="No embeddings"):
        metrics.probe({}, pd.DataFrame({"a": ["x", "y"]}))
    # every label checked before a fit (classes smaller than the folds are left out first)
    with pytest.raises(DataError, match="fewer than two classes"):
        metrics.probe({"e": np.zeros((6, 2))}, pd.DataFrame({"a": list("xxyyxy"),
                                                             "b": ["z"] * 6}))
    with pytest.raises(DataError, match="Shapes differ"):
        metrics.change_correlation(np.zeros(3), np.zeros(4))


def test_evaluation_refuses_a_counterfactual_without_its_layers(adata):
    cf = adata[:5].copy()
    with pytest.raises(DataError, match="no layers"):
        metrics.counterfactual_accuracy(adata, cf, {"age": "90wk"})
    with pytest.raises(DataError, match="does not set 'age'"):
        metrics.marker_table(adata, cf, pd.DataFrame({"gene": ["C4b"], "cell_type": ["Astro"]}))


def test_readers(tmp_path):
    from napari_causcell.io import read_data

    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(SettingError, match="expected an .h5ad file"):
        read_data(tmp_path / "table.csv")
    (tmp_path / "broken.h5ad").write_text("not hdf5")
    with pytest.raises(DataError, match="cannot read"):
        read_data(tmp_path / "broken.h5ad")
    with pytest.raises(FileNotFoundError):
        read_data(tmp_path / "missing.h5ad")


@pytest.mark.parametrize(("kwargs", "match"), [({"epochs": 0}, "epochs"),
                                               ({"steps": 0}, "steps"),
                                               ({"real_epochs": 0}, "real_epochs")])
def test_demo_settings_before_any_work(tmp_path, kwargs, match):
    from napari_causcell._demo import run_demo

    with pytest.raises(SettingError, match=match):
        run_demo(tmp_path / "out", log=None, **kwargs)
    assert not (tmp_path / "out").exists()
