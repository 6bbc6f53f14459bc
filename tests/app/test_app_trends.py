"""Trends workflow: validation messages, progress, cancel, the table shown."""

from __future__ import annotations

import pytest

from napari_causcell.app import ALL_OTHERS, Cancelled, TrendsRequest, trends_job
from napari_causcell.app.trends import TABLE_HEADER, table_rows
from napari_causcell.errors import DataError
from napari_causcell.tl._trend_common import MODEL_ONLY


@pytest.mark.parametrize(("kwargs", "text"), [
    (dict(concept="age", source=None), "Choose a concept and the source label."),
    (dict(concept="age", source="4wk", target="4wk"), "The target equals the source."),
    (dict(concept="age", source="4wk", steps=0), "at least one step"),
])
def test_refusals(ready, kwargs, text):
    with pytest.raises(DataError, match=text):
        trends_job(ready, TrendsRequest(**kwargs))


def test_needs_a_model(state):
    with pytest.raises(DataError, match="No model yet"):
        trends_job(state, TrendsRequest("age", "4wk"))


def test_trends_result_and_table(ready):
    job = trends_job(ready, TrendsRequest("age", "4wk", "90wk", steps=3, n_rows=5))
    progress = []
    result = job.run(progress.append)
    assert progress[0].text == "Computing trends age: 4wk -> 90wk..."
    assert progress[-1].fraction == 1.0
    assert set(result.trends["target"]) == {"90wk"} and "causcell_trends" in ready.adata.uns
    n_sig = int(result.trends["significant"].sum())
    tested = int((result.trends["unit"].astype(str) != MODEL_ONLY).sum())
    assert result.message.startswith(f"Trends: {n_sig} significant of {tested} tests")
    assert len(result.top) == (min(5, n_sig) if n_sig else 5)
    rows = table_rows(result.top)
    assert len(rows) == len(result.top) and all(len(r) == len(TABLE_HEADER) for r in rows)


def test_cancel(ready):
    job = trends_job(ready, TrendsRequest("age", "4wk", ALL_OTHERS, steps=3))
    with pytest.raises(Cancelled):
        for p in job:
            if p.fraction:
                job.cancel()
