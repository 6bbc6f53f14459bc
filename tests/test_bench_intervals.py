"""benchmarks.intervals' pooled scores (issue 26): the reliable half of the groups and the
oracle half that the truth picks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.intervals import reliable_half


def _pairs() -> pd.DataFrame:
    """Four groups of 50 genes; groups c and d carry large errors; reliability says so for
    group c only (and wrongly rates group b low)."""
    rng = np.random.default_rng(0)
    rows = []
    for group, noise, rel in [("a", 0.05, 0.9), ("b", 0.05, 0.2), ("c", 1.0, 0.1),
                              ("d", 1.0, 0.8)]:
        true = rng.normal(size=50)
        rows.append(pd.DataFrame({
            "task": "t", "method": "m", "group": group, "true": true,
            "change": true + rng.normal(scale=noise, size=50), "reliability": rel,
            "covered": noise < 0.5}))
    return pd.concat(rows, ignore_index=True)


def test_reliable_half_against_the_oracle_half():
    d = _pairs()
    out = reliable_half(d).iloc[0]

    def r(groups):
        keep = d["group"].isin(list(groups))
        return np.corrcoef(d.loc[keep, "change"], d.loc[keep, "true"])[0, 1]

    assert out["r all"] == pytest.approx(r("abcd"))
    assert out["r reliable half"] == pytest.approx(r("ad"))  # mean reliability >= median
    assert out["gain"] == pytest.approx(r("ad") - r("abcd"))
    assert out["oracle gain"] == pytest.approx(r("ab") - r("abcd"))
    assert out["oracle gain"] > 0.1 > abs(out["gain"])  # c and d are equally bad
    assert out["coverage pooled"] == pytest.approx(0.5)


def test_prior_check_scores_each_task_with_the_other_tasks_scale():
    from benchmarks.intervals import prior_check
    from napari_causcell.tl._interval_error import shape

    rng = np.random.default_rng(1)
    frames, oracle = [], {}
    for task, c in [("x", 0.1), ("y", 0.3), ("z", 0.9)]:
        change = rng.normal(size=(3, 40))
        sh = shape(change)
        true = change + rng.normal(size=change.shape) * np.sqrt(c * sh)
        oracle[task] = np.mean((change - true) ** 2) / sh.mean()
        frames.append(pd.DataFrame({
            "task": task, "group": np.repeat(["g0", "g1", "g2"], 40),
            "change": change.ravel(), "true": true.ravel(), "se_true": 0.0}))
    out = prior_check(pd.concat(frames, ignore_index=True)).set_index("task")
    assert out["oracle c"].to_dict() == pytest.approx(oracle)
    assert out.loc["y", "c0 (other tasks)"] == pytest.approx(np.median([oracle["x"],
                                                                        oracle["z"]]))
    # the task with the largest errors, scored with the others' smaller scale, covers least
    assert out["coverage"].idxmin() == "z" and out.loc["x", "coverage"] > 0.95
