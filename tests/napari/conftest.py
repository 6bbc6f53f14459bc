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
