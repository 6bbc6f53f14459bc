"""Train workflow: validation messages, per-epoch progress, cancel, results, save/load."""

from __future__ import annotations

import math

import pytest

from napari_causcell.app import TrainRequest, train_job
from napari_causcell.app.train import load_model, loss_curve, save_model
from napari_causcell.errors import CausCellError, DAGError, DataError

TINY = "tiny (tests, demos)"
PARENTS = {"cell_type": ["age", "domain"]}


@pytest.mark.parametrize(("request_kwargs", "error", "text"), [
    ({"concepts": []}, DataError, "Choose at least one concept column."),
    ({"concepts": ["age", "cell_type"], "parents": {"age": ["cell_type"],
                                                    "cell_type": ["age"]}}, DAGError, "cycle"),
    ({"concepts": ["age"], "size": "huge"}, DataError, "Model size must be one of"),
    ({"concepts": ["age"], "epochs": 0}, DataError, "at least one epoch"),
])
def test_refusals(state, request_kwargs, error, text):
    with pytest.raises(error, match=text):
        train_job(state, TrainRequest(**request_kwargs))
    assert state.model is None  # refused before any model is built


def test_trains_with_progress_and_events(state, events):
    seen = events(state)
    request = TrainRequest(["age", "domain", "cell_type"], PARENTS, epochs=3, size=TINY,
                           device="cpu")
    job = train_job(state, request)
    assert job.total == 3
    progress = []
    result = job.run(progress.append)
    assert progress[0].text.startswith("Training on 1500 cells: concepts ['age', 'domain', "
                                       "'cell_type'], DAG age -> cell_type, domain -> cell_type")
    epochs = [p for p in progress if p.data is not None]
    assert [p.data.epoch for p in epochs] == [1, 2, 3]
    assert [p.fraction for p in epochs] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert epochs[0].text.startswith("Epoch 1/3: train reconstruction ")
    assert result.message.startswith("Trained 3 epochs (ended by max_epochs); best ")
    assert state.ready and state.model.edges == [("age", "cell_type"), ("domain", "cell_type")]
    assert seen == ["model", "trained"]
    epochs_, train, val = loss_curve(state.model)
    assert epochs_ == [1, 2, 3] and all(math.isfinite(v) for v in train)


def test_cancel_keeps_the_best_weights(state):
    job = train_job(state, TrainRequest(["age", "cell_type"], epochs=500, size=TINY,
                                        device="cpu"))
    assert "best weights" in job.cancel_text
    n = 0
    for p in job:
        if p.data is not None:
            n += 1
            job.cancel()
    assert state.ready and state.model.train_params["stop_reason"] == "cancelled"
    assert 1 <= len(state.model.history) < 500 and n == len(state.model.history)
    assert job.result.message.startswith(f"Trained {n} epochs (ended by cancelled)")


def test_cancel_before_the_model_exists(state):
    job = train_job(state, TrainRequest(["age", "cell_type"], epochs=500, size=TINY,
                                        device="cpu"))
    job.cancel()
    job.run()
    assert state.model.train_params["stop_reason"] == "cancelled"
    # Stop right after Train: training ends after its first step (issue 27 item 11; the
    # whole first epoch ran before)
    assert len(state.model.history) == 1 and state.model.train_params["steps"] == 1


def test_save_and_load(ready, tmp_path, events):
    assert save_model(ready, tmp_path / "m") == f"Saved the model to {tmp_path / 'm'}."
    seen = events(ready)
    assert load_model(ready, tmp_path / "m").startswith("Loaded a model of ['age', 'domain',")
    assert seen == ["model", "trained"] and ready.ready
    with pytest.raises(CausCellError):
        load_model(ready, tmp_path / "missing")


def test_save_needs_a_model(state, tmp_path):
    with pytest.raises(DataError, match="No model to save"):
        save_model(state, tmp_path / "m")
