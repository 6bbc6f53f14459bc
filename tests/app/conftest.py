"""Fixtures of the application-layer tests (no Qt, no ipywidgets)."""

from __future__ import annotations

import pytest

from napari_causcell.app import AppState


@pytest.fixture()
def state(sdata):
    """A state over a fresh copy of the small tissue, without a model."""
    return AppState(sdata)


@pytest.fixture()
def ready(sdata, trained):
    """A state over a fresh copy of the small tissue with the shared trained model."""
    s = AppState(sdata)
    s.set_model(trained)
    return s


@pytest.fixture()
def events():
    """``events(state)``: a list that records the names of the state's events as emitted."""

    def record(state: AppState) -> list[str]:
        seen: list[str] = []
        for name in state.events:
            state.events[name].connect(lambda *_, _n=name: seen.append(_n))
        return seen

    return record
