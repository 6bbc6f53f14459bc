"""Warnings point at the user's line, not at our files or torch's decorators (#28 item 10)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_causcell import tl
from napari_causcell._utils import warn_user


def _inner():
    warn_user("from deep inside")


def test_warn_user_points_past_every_frame_of_the_package():
    with pytest.warns(UserWarning, match="from deep inside") as rec:
        _inner()  # this file is not in the package: the warning points here
    assert rec[0].filename == __file__


def test_counterfactual_warnings_point_at_the_callers_line(small_sdata, no_old_microglia):
    table = small_sdata.tables["table"]
    young = table[(table.obs["age"] == "4wk").to_numpy()]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        tl.counterfactual(young, no_old_microglia, do={"age": "90wk"}, copy=True)
        no_old_microglia.counterfactual(young[:50], do={"age": "90wk"},
                                              hold=["cell_type"])
    ours = [w for w in rec if "never seen in training" in str(w.message)]
    assert len(ours) >= 2 and {w.filename for w in ours} == {__file__}
    assert np.isfinite([w.lineno for w in ours]).all()
