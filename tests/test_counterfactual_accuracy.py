"""Counterfactual accuracy against the simulator's truth, and label propagation."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import _background

from napari_causcell import CausCell
from napari_causcell.metrics import counterfactual_accuracy
from napari_causcell.datasets import brain_aging

CONCEPTS = ["age", "domain", "cell_type"]
DAG = [("age", "cell_type"), ("domain", "cell_type")]


@pytest.fixture(scope="module")
def tissue():
    return brain_aging(n_cells=3000, n_genes=100, seed=0)


#: train the model of ``model`` (40 epochs on the 3000-cell tissue) and save it in ``argv[1]``
TRAIN = f"""import os, sys, torch
torch.set_num_threads(int(os.environ.get("CAUSCELL_TEST_THREADS", "1")))
from napari_causcell import CausCell
from napari_causcell.datasets import brain_aging
m = CausCell(brain_aging(n_cells=3000, n_genes=100, seed=0), {CONCEPTS!r}, dag={DAG!r}, seed=0)
m.train(max_epochs=40, early_stopping=False)
m.save(sys.argv[1])"""


def _train(folder) -> _background.Job:
    return _background.Job("counterfactual_accuracy_model",
                           [sys.executable, "-c", TRAIN, str(folder / "model")], folder)


def background_jobs(selected, mktemp):
    """The model trains in a subprocess in the background (tests/_background.py) once
    collected (the saved model predicts exactly what the trained one does)."""
    uses = {"test_do_age_beats_no_change_and_gets_the_strong_signs",
            "test_labels_switch_in_about_the_true_share",
            "test_token_propagation_keeps_labels_and_is_seeded"}
    return [_train(mktemp("cf_model"))] if uses & selected else []


@pytest.fixture(scope="module")
def model(tissue, tmp_path_factory):
    job = _background.result("counterfactual_accuracy_model",
                             lambda: _train(tmp_path_factory.mktemp("cf_model")))
    assert job.result.returncode == 0, job.result.stderr[-4000:]
    return CausCell.load(job.folder / "model", data=tissue)


@pytest.fixture(scope="module")
def result(tissue, model):
    table = tissue.tables["table"]
    source = (table.obs["age"] == "4wk").to_numpy()
    cf = model.counterfactual(table[source], do={"age": "90wk"}, seed=0)
    return cf, counterfactual_accuracy(tissue, cf, {"age": "90wk"}, source)


def test_do_age_beats_no_change_and_gets_the_strong_signs(result):
    cf, acc = result
    assert acc["mse"]["causcell"] < acc["mse"]["no_change"]
    assert acc["pearson"]["causcell"] > acc["pearson"]["mean_shift"]
    strongest = sorted(acc["planted"], key=lambda r: -abs(r["true"]))[:5]
    assert all(r["sign_agrees"] for r in strongest), strongest


def test_labels_switch_in_about_the_true_share(result):
    cf, acc = result
    assert "factual_cell_type" in cf.obs
    true, pred = acc["switched"]["true"], acc["switched"]["causcell"]
    assert 0.02 < true < 0.2
    # Gumbel-max couples labels less tightly than the simulator's minimal-switch design:
    # somewhat more cells switch, but the share has the right size
    assert 0.5 * true < pred < 2 * true
    assert cf.uns["causcell"]["switched"] == pytest.approx(pred)
    moved = cf.obs["cell_type"] != cf.obs["factual_cell_type"]
    # oligodendrocytes gain most cells with age: the most common destination. (Gumbel-max
    # also moves some cells between types whose odds changed little, which the simulator's
    # minimal-switch design never does, so not every move goes to a growing type.)
    dest = cf.obs.loc[moved, "cell_type"].astype(str).value_counts()
    assert dest.index[0] == "Oligo"


def test_token_propagation_keeps_labels_and_is_seeded(tissue, model):
    table = tissue.tables["table"]
    cells = table[(table.obs["age"] == "4wk").to_numpy()][:200]
    a = model.counterfactual(cells, do={"age": "90wk"}, propagate="tokens", seed=3)
    assert (a.obs["cell_type"] == a.obs["factual_cell_type"]).all()
    assert a.uns["causcell"]["switched"] == 0.0
    b = model.counterfactual(cells, do={"age": "90wk"}, seed=3)
    c = model.counterfactual(cells, do={"age": "90wk"}, seed=3)
    assert np.array_equal(b.X, c.X) and b.obs["cell_type"].equals(c.obs["cell_type"])
    assert b.uns["causcell"]["output"] == "expected"
    with pytest.raises(ValueError, match="propagate"):
        model.counterfactual(cells, do={"age": "90wk"}, propagate="both")


def test_unseen_parent_label_pair_is_kept_with_a_warning(tissue):
    table = tissue.tables["table"]
    # no 90wk oligodendrocytes in training: do(age=90wk) cannot say what happens to them
    keep = ~((table.obs["age"] == "90wk") & (table.obs["cell_type"] == "Oligo")).to_numpy()
    m = CausCell(table[keep].copy(), CONCEPTS, dag=DAG, seed=0, width=32, hidden=64)
    m.train(max_epochs=2, early_stopping=False)
    oligo = table[((table.obs["age"] == "4wk") & (table.obs["cell_type"] == "Oligo")).to_numpy()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cf = m.counterfactual(oligo, do={"age": "90wk"})
    assert any("never seen in training" in str(w.message) for w in caught)
    assert (cf.obs["cell_type"] == "Oligo").all()
    assert cf.uns["causcell"]["unsupported"] == 1.0
