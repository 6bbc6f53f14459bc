"""Issue #28 items 9 and 10 in the app layer: shared Train defaults and time limit, the loss
curves drawn like against like, status lines that follow the model, picks off the tissue."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from napari_causcell.app import AppState, cells, train
from napari_causcell.app.forms import readiness_text
from napari_causcell.errors import DataError


def _history_model(select="recon"):
    rec = {"epoch": 1, "train_recon": 0.9, "train_concept": 1.4, "train_kl": 0.1,
           "train_adversary": 1.5, "train_total": 3.9, "val_recon": 0.8, "val_concept": 1.2}
    return SimpleNamespace(history=[rec, {**rec, "epoch": 2, "train_recon": 0.7}],
                           train_params={"select": select}, concepts=["age", "cell_type"],
                           edges=[("age", "cell_type")], is_trained=True)


def test_train_defaults_are_shared_and_the_time_limit_is_checked():
    request = train.TrainRequest(["age"])
    assert request.epochs == train.DEFAULT_EPOCHS and train.DEFAULT_MAX_TIME == 0
    assert request.max_time is None  # 0: no limit
    with pytest.raises(DataError, match="time limit"):
        train.TrainRequest(["age"], max_time=-1.0).validate()
    assert "30 epochs or 60 s, whichever" in train.limit_text(30, 60.0)
    assert "no time limit" in train.limit_text(30, 0)


def test_jupyter_train_panel_starts_with_the_shared_defaults(state):
    pytest.importorskip("ipywidgets")
    from napari_causcell.jupyter import TrainPanel

    panel = TrainPanel(state)
    assert panel.epochs.value == train.DEFAULT_EPOCHS  # the napari form's default too
    assert panel.max_time.value == train.DEFAULT_MAX_TIME


def test_loss_curves_compare_like_with_like():
    # the same quantity on both sides: train recon vs validation recon (not train total)
    losses = {"recon": 0.9, "concept": 1.4, "kl": 0.1, "adversary": 1.5, "total": 3.9}
    assert train.epoch_losses(losses, {"recon": 0.8, "concept": 1.2}) == (0.9, 0.8)
    assert train.epoch_losses(losses, {"recon": 0.8, "concept": 1.2},
                              "recon+concept") == pytest.approx((2.3, 2.0))
    t, v = train.epoch_losses(losses, {})
    assert t == 0.9 and math.isnan(v)
    assert train.loss_labels("recon") == ("train reconstruction", "validation reconstruction",
                                          "reconstruction loss")
    assert train.loss_labels("recon+concept")[2] == "reconstruction + concept loss"
    epochs, tr, val = train.loss_curve(_history_model())
    assert epochs == [1, 2] and tr == [0.9, 0.7] and val == [0.8, 0.8]
    _, tr, val = train.loss_curve(_history_model("recon+concept"))
    assert tr == pytest.approx([2.3, 2.1]) and val == pytest.approx([2.0, 2.0])
    assert train.selected_by(None) == "recon"


def test_epoch_text_names_the_quantities():
    from napari_causcell.train import TrainProgress

    p = TrainProgress(3, 60, 10, {"recon": 1.0, "total": 4.0}, {"recon": 0.5}, 12.0)
    assert train.epoch_text(p) == ("Epoch 3/60: train reconstruction 1.000, validation "
                                   "reconstruction 0.500 (12 s)")


def test_readiness_text_follows_the_model(state):
    assert readiness_text(state).startswith("No model yet")
    state.model = SimpleNamespace(is_trained=False)
    assert "not trained yet" in readiness_text(state)
    state.model = _history_model()
    assert readiness_text(state) == ("Model ready: concepts age, cell_type; graph "
                                     "age -> cell_type.")


def test_pick_off_the_tissue_is_refused(state):
    xy = state.coords
    spacing = cells.typical_spacing(xy)
    assert 0 < spacing < np.ptp(xy[:, 0])
    assert cells.cell_at(state, xy[7] + 0.5 * spacing) == 7
    assert cells.label_at(state, xy[7], "domain") == str(state.adata.obs["domain"].iloc[7])
    far = xy.min(0) - 20 * spacing
    with pytest.raises(DataError, match="No cell there"):
        cells.cell_at(state, far)
    state.model = _history_model()
    with pytest.raises(DataError, match="about .* apart"):
        cells.pick_target(state, "age", xy=far)
    assert isinstance(state, AppState)
