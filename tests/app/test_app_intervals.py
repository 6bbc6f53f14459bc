"""Issue 26 item 3: every intervention carries the intervals of its pooled change, and its
top changed genes carry them (what both front ends show)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_causcell.app import InterveneRequest, intervene_job, select
from napari_causcell.app.intervals import (
    INTERVAL_COLUMNS,
    SPANS_ZERO_NOTE,
    change_header,
    change_texts,
)
from napari_causcell.app.overlay import top_genes
from napari_causcell.tl import _intervals

FAST = dict(sampler="mean", steps=3)


@pytest.fixture()
def counted(ready, monkeypatch):
    """``ready`` whose model records the cells of each counterfactual call."""
    calls = []
    model = ready.model
    original = model.counterfactual

    def counting(cells, *args, **kwargs):
        calls.append(list(cells.obs_names))
        return original(cells, *args, **kwargs)

    monkeypatch.setattr(model, "counterfactual", counting)
    return ready, calls


def test_intervention_keeps_the_pooled_intervals(counted):
    state, calls = counted
    iv = intervene_job(state, InterveneRequest("age", "90wk", "cell_type", "Astro",
                                               **FAST)).run().intervention
    # the intervals reuse the intervention's counterfactual; the one more call measures
    # the model's error on its validation cells only
    assert len(calls) == 2 and len(calls[0]) == iv.delta.shape[0]
    assert set(calls[1]) <= set(state.model.val_names)
    df = iv.intervals
    assert iv.intervals_note == "" and df is not None
    assert list(df["group"].unique()) == ["all"] and list(df["gene"]) == iv.genes
    # the pooled change is the mean paired change over the intervened cells
    np.testing.assert_allclose(df["change"], iv.delta.astype(float).mean(0), atol=1e-5)
    assert (df["lower"] <= df["change"]).all() and (df["change"] <= df["upper"]).all()
    assert (df["upper"] > df["lower"]).any() and df["reliability"].between(0, 1).all()
    assert df.attrs["calibration"]["level"] == 0.9
    # the same numbers as tl's function given the same counterfactual
    want = _intervals.change_intervals(state.model, state.data, iv.do,
                                       cells=iv.selection.mask, groupby=None,
                                       counterfactual=iv.table)
    pd.testing.assert_frame_equal(df, want)
    # and per stratum (what the overlay fades by): change_intervals grouped by it
    by = iv.strata.attrs["calibration"]["stratum"]
    strata = _intervals.change_intervals(state.model, state.data, iv.do,
                                         cells=iv.selection.mask, groupby=by,
                                         counterfactual=iv.table)
    pd.testing.assert_frame_equal(iv.strata, strata, check_like=False)
    np.testing.assert_array_equal(iv.stratum_of,
                                  state.adata.obs[by].astype(str).to_numpy()[iv.rows])


def test_top_genes_carry_the_intervals(ready):
    iv = intervene_job(ready, InterveneRequest("age", "90wk", "cell_type", "Astro",
                                               keep=True, **FAST)).run().intervention
    top = top_genes(ready, iv.name, n=8)
    assert list(top.columns) == ["gene", "mean_factual", "mean_counterfactual", "mean_change",
                                 *INTERVAL_COLUMNS]
    rows = iv.intervals.set_index("gene").loc[top["gene"]]
    np.testing.assert_allclose(top["lower"], rows["lower"])
    np.testing.assert_allclose(top["upper"], rows["upper"])
    np.testing.assert_allclose(top["reliability"], rows["reliability"])
    np.testing.assert_allclose(top["mean_change"], rows["change"], atol=1e-5)
    spans = (top["lower"] <= 0) & (top["upper"] >= 0)
    np.testing.assert_array_equal(top["spans_zero"], spans)
    # held cell type: the intervals are those of the direct effect (hold passed on)
    held = _intervals.change_intervals(ready.model, ready.data, iv.do, cells=iv.selection.mask,
                                       groupby=None, hold=["cell_type"],
                                       counterfactual=iv.table)
    pd.testing.assert_frame_equal(iv.intervals, held)
    # over a part of the intervened cells the pooled intervals do not apply: none shown
    part = select(ready, "domain", ready.labels("domain")[0])
    assert "lower" not in top_genes(ready, iv.name, n=8, selection=part)


def test_failed_intervals_keep_the_intervention(ready, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("no validation cells")

    monkeypatch.setattr(_intervals, "pooled_and_strata", fail)
    with pytest.warns(UserWarning, match="No intervals for do\\(age=90wk\\): RuntimeError"):
        result = intervene_job(ready, InterveneRequest("age", "90wk", "cell_type", "Astro",
                                                       keep=True, **FAST)).run()
    iv = result.intervention
    assert iv.intervals is None and iv.intervals_note == "RuntimeError: no validation cells"
    assert iv.strata is None and iv.cell_uncertain(iv.genes[0]) is None
    assert list(ready.interventions) == [iv.name]
    assert result.message.endswith(" No intervals: RuntimeError: no validation cells")
    top = top_genes(ready, iv.name, n=5)
    assert not set(INTERVAL_COLUMNS) & set(top.columns) and len(top) == 5
    assert change_header(top) == "mean change"
    assert change_texts(top) == [f"{d:+.3f}" for d in top["mean_change"]]


def test_change_texts_line_up():
    top = pd.DataFrame({"gene": ["a", "b", "c"], "mean_change": [1.372, -0.05, 12.5],
                        "lower": [0.9, -0.3, 10.0], "upper": [1.8, 0.2, 15.04],
                        "spans_zero": [False, True, False], "reliability": [0.5, 0.2, 0.4]})
    assert change_texts(top) == [" +1.37 [ +0.90,  +1.80]",
                                 " -0.05 [ -0.30,  +0.20]",
                                 "+12.50 [+10.00, +15.04]"]
    assert len({len(t) for t in change_texts(top)}) == 1
    assert change_header(top) == "change [90 % interval]"
    assert SPANS_ZERO_NOTE == "grey: 90 % interval includes 0"
    assert change_texts(top.iloc[:0]) == []


def test_cell_uncertain_is_the_stratum_s(ready):
    iv = intervene_job(ready, InterveneRequest("age", "90wk", "domain",
                                               ready.labels("domain")[0], keep=True,
                                               **FAST)).run().intervention
    assert len(set(iv.stratum_of)) > 1  # several strata in this selection
    for gene in iv.genes[:10]:
        at = iv.strata[iv.strata["gene"] == gene].set_index("group")
        spans = (at["lower"] <= 0) & (at["upper"] >= 0)
        np.testing.assert_array_equal(iv.cell_uncertain(gene),
                                      spans.loc[iv.stratum_of].to_numpy())
