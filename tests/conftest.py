"""Shared fixtures: a small simulated tissue and a briefly trained model."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

torch.set_num_threads(int(os.environ.get("CAUSCELL_TEST_THREADS", "1")))

CONCEPTS = ["age", "domain", "cell_type"]
DAG = [("age", "cell_type"), ("domain", "cell_type")]


@pytest.fixture(scope="session")
def small_sdata():
    from napari_causcell.datasets import brain_aging

    return brain_aging(n_cells=1500, n_genes=80, seed=0)


@pytest.fixture()
def sdata(small_sdata):
    """A fresh deep copy per test (tests may add tables)."""
    import copy

    return copy.deepcopy(small_sdata)


@pytest.fixture(scope="session")
def trained(small_sdata):
    """A CausCell trained briefly on the small tissue (shared; do not mutate)."""
    from napari_causcell import CausCell

    model = CausCell(small_sdata, CONCEPTS, dag=DAG, seed=0, width=64, hidden=128)
    model.train(max_epochs=25, early_stopping=False)
    return model


@pytest.fixture(scope="module")
def tiny_sdata():
    """300 cells, 60 genes (per module: the safety tests' data)."""
    from napari_causcell.datasets import brain_aging

    return brain_aging(n_cells=300, n_genes=60, seed=0)


@pytest.fixture(scope="module")
def tiny_model(tiny_sdata):
    """A 2-epoch tiny model on ``tiny_sdata`` (per module; do not mutate)."""
    from napari_causcell import CausCell

    model = CausCell(tiny_sdata, CONCEPTS, dag=DAG, seed=0, width=32, hidden=64, token_dim=8)
    model.train(max_epochs=2, batch_size=64)
    return model


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


@pytest.fixture()
def one_uncertain_group():
    """``make(state, iv, gene) -> (faded, extrapolated)``: sets ``iv``'s intervals of
    ``gene`` so that only the first intervened cell's group includes 0, and returns the
    cells an overlay of ``gene`` must fade (that group's, and the extrapolated) and the
    extrapolated alone (issue 26 item 3)."""
    from napari_causcell.app.fading import extrapolated_cells, uncertain_cells

    def make(state, iv, gene):
        of_gene = iv.strata["gene"] == gene
        iv.strata.loc[of_gene, ["lower", "upper"]] = 0.1, 1.0  # none includes 0 ...
        before = extrapolated_cells(state, iv)
        assert not (uncertain_cells(state, iv, gene) & ~before).any()
        group = iv.stratum_of[0]
        iv.strata.loc[of_gene & (iv.strata["group"] == group), "lower"] = -0.5  # ... but one
        low = before.copy()
        low[iv.rows] |= iv.stratum_of == group
        return low, before

    return make


@pytest.fixture(scope="session")
def no_old_microglia(small_sdata):
    """A small model trained without 90wk microglia (an unseen combination; shared, do not
    mutate)."""
    from napari_causcell import CausCell

    table = small_sdata.tables["table"]
    obs = table.obs
    held = (obs["age"] == "90wk").to_numpy() & (obs["cell_type"] == "Microglia").to_numpy()
    model = CausCell(table[~held].copy(), ["age", "domain", "cell_type"],
                     dag=[("age", "cell_type"), ("domain", "cell_type")], seed=0,
                     width=32, hidden=64, token_dim=8)
    model.train(max_epochs=3)
    return model


# -- slow subprocess jobs in the background (tests/_background.py) --------------------------
def pytest_collection_finish(session):
    """Queue the background jobs of the collected modules that define ``background_jobs``."""
    import _background

    if session.config.option.collectonly or not _background.ENABLED:
        return
    selected: dict[object, set[str]] = {}
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "background_jobs"):
            selected.setdefault(module, set()).add(item.originalname)
    factory = session.config._tmp_path_factory
    for module, names in selected.items():
        _background.submit(module.background_jobs(names, factory.mktemp))
    _background.start()


#: tests that keep both cores busy themselves: no background job starts while they run
BOTH_CORES = {"test_two_process_ddp_matches_single_process"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    import _background

    busy = item.get_closest_marker("browser") is not None or item.name in BOTH_CORES
    _background.hold(busy)
    try:
        yield
    finally:
        _background.hold(False)


def pytest_sessionfinish(session):
    import _background

    _background.stop()
