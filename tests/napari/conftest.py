"""Shared fixtures of the napari plugin tests (see test_plugin.py for how they run)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_sessions():
    """Each test starts with no CausCell sessions kept from another test."""
    try:
        from napari_causcell._napari._layers import forget_sessions
    except ImportError:  # napari / Qt missing: the test module skips itself
        yield
        return
    forget_sessions()
    yield
    forget_sessions()


@pytest.fixture
def laptop(make_napari_viewer):
    """A shown viewer whose window is a laptop screen (:data:`_qt_env.SCREEN`)."""
    from _qt_env import SCREEN

    v = make_napari_viewer(show=True)
    v.window._qt_window.resize(*SCREEN)
    return v


@pytest.fixture
def brain_aging_with_model():
    """``make(viewer, n_cells)``: the built-in sample (one mouse per age) as the viewer's
    cells layer and its session with an untrained tiny DAG model (age, domain ->
    cell_type, CPU); returns the session."""

    def make(viewer, n_cells: int):
        from napari_causcell._napari._layers import state_for
        from napari_causcell._napari._sample import brain_aging_sample
        from napari_causcell.app.train import MODEL_SIZES, build_model

        data, kwargs, _ = brain_aging_sample(n_cells=n_cells, n_mice_per_age=1)[0]
        state = state_for(viewer.add_points(data, **kwargs))
        build_model(state, ["age", "domain", "cell_type"],
                    [("age", "cell_type"), ("domain", "cell_type")],
                    device="cpu", **MODEL_SIZES["tiny (tests, demos)"])
        return state

    return make
