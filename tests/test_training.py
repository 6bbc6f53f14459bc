"""Training on Lightning (napari_causcell.train): one construction path, fine-tuning a loaded
model, the Trainer's settings, and bad settings refused before any work."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_causcell import CausCell, CausCellError, DataError, SettingError
from napari_causcell.errors import NotTrainedError
from napari_causcell.model import LossOutput, LossWeights
from napari_causcell.train import _runner

CONCEPTS = ["age", "domain", "cell_type"]
DAG = [("age", "cell_type"), ("domain", "cell_type")]
TINY = dict(width=32, hidden=64, token_dim=8)


@pytest.fixture(scope="module")
def tiny(small_sdata):
    model = CausCell(small_sdata, CONCEPTS, dag=DAG, seed=0, **TINY)
    model.train(max_epochs=2, early_stopping=False)
    return model


def test_loss_comes_back_as_one_named_structure(tiny, small_sdata):
    table = small_sdata.tables["table"][:32]
    x = torch.from_numpy(tiny._source(table).dense())
    y = torch.from_numpy(tiny.concept_space.encode(table.obs))
    out = tiny.module.loss(x, y, LossWeights())
    assert isinstance(out, LossOutput)
    assert set(out.parts) == {"recon", "concept", "confusion", "kl"}
    parts = sum(out.parts.values())  # all weights 1: the total is the sum of the parts
    assert float(out.total.detach()) == pytest.approx(float(parts.detach()), rel=1e-5)
    assert out.eps.shape == (32, len(CONCEPTS) + 1, 8)


def test_loaded_model_without_data_says_what_to_pass(tiny, tmp_path):
    tiny.save(tmp_path / "m")
    loaded = CausCell.load(tmp_path / "m")
    with pytest.raises(DataError, match=r"CausCell.load\(path, data=adata\)"):
        loaded.train(max_epochs=1)
    assert loaded.history == tiny.history  # nothing changed


def test_loaded_model_fine_tunes_on_its_saved_validation_cells(tiny, small_sdata, tmp_path):
    tiny.save(tmp_path / "m")
    loaded = CausCell.load(tmp_path / "m", data=small_sdata)
    assert loaded.val_names == tiny.val_names and len(tiny.val_names) == 150
    assert list(loaded._val_index) == tiny.val_names
    steps = loaded.train_params["steps"]
    loaded.train(max_epochs=1, early_stopping=False)
    assert loaded.train_params["steps"] > steps and len(loaded.history) == 3
    assert loaded.history[-1]["epoch"] == 3  # epochs go on from the saved history
    assert loaded.val_names == tiny.val_names  # the same cells validate
    assert loaded.is_trained


def test_validation_cells_come_back_on_other_data(tiny, small_sdata):
    from napari_causcell.train._data import split

    names = small_sdata.tables["table"].obs_names
    val, train = split(names, 0, 0.1, tiny.val_names)
    assert list(names[val]) == tiny.val_names and len(train) == len(names) - 150
    val2, _ = split(names[:100].str.cat(["x"] * 100), 0, 0.1, tiny.val_names)
    assert len(val2) == 10  # none of the saved cells: a new seeded split


def test_trainer_kwargs_reach_lightning(small_sdata):
    model = CausCell(small_sdata, CONCEPTS, dag=DAG, seed=0, **TINY)
    model.train(max_epochs=2, trainer_kwargs={"limit_train_batches": 2})
    assert model.train_params["steps"] == 4 and [r["step"] for r in model.history] == [2, 4]


def test_trainer_settings_for_a_device():
    s = _runner.TrainSettings(1, 8, 1e-3, 0.0, True, 5, None, LossWeights(), "recon", 0.0)
    args = _runner.trainer_args(torch.device("cpu"), s)
    assert (args["accelerator"], args["devices"], args["num_nodes"]) == ("cpu", 1, 1)
    assert args["strategy"] == "auto" and args["precision"] == "32-true"
    s.precision = "bf16"
    assert _runner.trainer_args(torch.device("cpu"), s)["precision"] == "32-true"  # CUDA only
    s.strategy = "ddp"
    assert isinstance(_runner.trainer_args(torch.device("cpu"), s)["strategy"],
                      _runner._AdversaryDDP)


@pytest.mark.parametrize("kwargs, match", [
    ({"select": "foo"}, "select must be one of"),
    ({"precision": "16"}, "precision must be one of"),
    ({"weights": {"bogus": 1}}, "unknown loss 'bogus'"),
    ({"weights": {"recon": -1}}, r"weights\['recon'\] must be >= 0"),
    ({"weights": {"kl": math.nan}}, "must be finite"),
    ({"weights": [1, 2]}, "weights must be a mapping"),
    ({"ema": 1.0}, "ema must be < 1"),
])
def test_bad_training_settings_refused_before_any_work(small_sdata, kwargs, match):
    model = CausCell(small_sdata, CONCEPTS, dag=DAG, seed=0, **TINY)
    with pytest.raises(SettingError, match=match):
        model.train(max_epochs=1, **kwargs)
    assert model.history == [] and not model.is_trained


@pytest.mark.parametrize("kwargs, match", [
    ({"donor": "foo"}, "donor must be one of"),
    ({"propagate": "foo"}, "propagate must be one of"),
    ({"unseen": "foo"}, "unseen must be one of"),
    ({"seed": "x"}, "seed must be a whole number"),
    ({"n_samples": 2.5}, "n_samples must be a whole number"),
    ({"sampler": "foo"}, "sampler must be one of"),
])
def test_bad_intervention_settings_are_setting_errors(tiny, small_sdata, kwargs, match):
    cells = small_sdata.tables["table"][:5]
    with pytest.raises(SettingError, match=match):
        tiny.counterfactual(cells, do={"age": "90wk"}, **kwargs)


def test_untrained_model_refuses_to_intervene_with_a_causcell_error(small_sdata):
    model = CausCell(small_sdata, CONCEPTS, dag=DAG, seed=0, **TINY)
    with pytest.raises(NotTrainedError, match="Train the model") as err:
        model.counterfactual(small_sdata.tables["table"][:5], do={"age": "90wk"})
    assert isinstance(err.value, CausCellError) and isinstance(err.value, RuntimeError)


def test_construction_checks_run_the_same_for_load(tiny, tmp_path):
    """load builds through __init__: the same device check refuses an unknown device."""
    tiny.save(tmp_path / "m")
    with pytest.raises(SettingError, match="device must be"):
        CausCell.load(tmp_path / "m", device="tpu")
    back = CausCell.load(tmp_path / "m")
    table_x = np.asarray([p.detach().numpy().sum() for p in back.module.parameters()])
    orig_x = np.asarray([p.detach().numpy().sum() for p in tiny.module.parameters()])
    np.testing.assert_array_equal(table_x, orig_x)


def test_stop_requested_before_train_is_honoured_after_one_step(small_sdata):
    """Issue 27 item 11: a stop asked for before train() (the app's Stop right after Train)
    ends it after its first step; the next train() starts afresh."""
    model = CausCell(small_sdata, CONCEPTS, dag=DAG, seed=0, **TINY)
    model.request_stop()
    model.train(max_epochs=15)
    assert model.train_params["steps"] == 1 and model.train_params["stop_reason"] == "cancelled"
    assert model.is_trained and len(model.history) == 1
    model.train(max_epochs=2, early_stopping=False)
    assert model.train_params["steps"] == 1 + 2 * 6 and model.train_params["stop_reason"] == \
        "max_epochs"


def test_exploding_loss_stops_training_with_a_clear_error(small_sdata):
    """Issue 27 item 7: lr=1e3 made the loss 3e15 without an error; a loss that explodes
    (not only NaN) now stops training before the step that would take it."""
    from napari_causcell import TrainingError

    model = CausCell(small_sdata, CONCEPTS, dag=DAG, seed=0, **TINY)
    with pytest.raises(TrainingError, match=r"diverged|NaN or infinite") as err:
        model.train(max_epochs=20, lr=1e3, ema=0.0)
    assert "Lower the learning rate (lr=1000)" in str(err.value)
    assert len(model.history) < 20
    if model.is_trained:  # kept the last epoch whose losses were all finite and bounded
        assert all(np.isfinite(v) for r in model.history for v in r.values())
        assert model.history[-1]["train_total"] < 1e3


def test_divergence_check_compares_with_the_first_step():
    from napari_causcell.train._plan import loss_problem

    assert loss_problem(4.0, 4.0) is None
    assert loss_problem(3000.0, 4.0) is None  # 750 x the first step: still training
    assert loss_problem(4100.0, 4.0) == "diverged (4.1e+03; 4 at the first step)"
    assert loss_problem(900.0, 0.01) is None  # small first losses: the bound is 1000
    assert loss_problem(float("nan"), 4.0) == "became NaN or infinite"
    assert loss_problem(float("inf"), None) == "became NaN or infinite"


def test_data_that_is_not_anndata_is_a_data_error():
    with pytest.raises(DataError, match="Expected AnnData or SpatialData, got ndarray"):
        CausCell(np.zeros((3, 3)), CONCEPTS)
