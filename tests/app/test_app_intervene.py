"""Intervene workflow: validation messages, progress, cancel, the kept result."""

from __future__ import annotations

import pytest

from napari_causcell.app import Cancelled, InterveneRequest, intervene_job, select
from napari_causcell.app.cells import pick_target
from napari_causcell.app.intervene import intervention_key, intervention_name
from napari_causcell.errors import DataError
from napari_causcell import tl
from napari_causcell.tl._switches import confound_note

FAST = dict(sampler="mean", steps=3)


@pytest.mark.parametrize(("kwargs", "text"), [
    (dict(concept="age", value=""), "Choose a concept and a target value."),
    (dict(concept="age", value="90wk", mode="cell_type", label=""),
     "Choose a label of 'cell_type'."),
    (dict(concept="age", value="90wk", mode="indices", label=[]),
     "The cell selection is empty: select some points first."),
    (dict(concept="age", value="90wk", mode="polygon", polygons=[]),
     "The cell selection is empty: draw a shape around cells first."),
    (dict(concept="age", value="90wk", sampler="euler"), "The sampler must be one of"),
    (dict(concept="age", value="90wk", steps=0), "at least one step"),
])
def test_refusals(ready, kwargs, text):
    with pytest.raises(DataError, match=text.replace("(", r"\(").replace(")", r"\)")):
        intervene_job(ready, InterveneRequest(**kwargs))


def test_needs_a_trained_model(state):
    with pytest.raises(DataError, match="No model yet"):
        intervene_job(state, InterveneRequest("age", "90wk"))


def test_intervention_is_generated_kept_and_written(ready, events):
    seen = events(ready)
    request = InterveneRequest("age", "90wk", "cell_type", "Astro", **FAST)
    job = intervene_job(ready, request)
    progress = []
    result = job.run(progress.append)
    n_astro = int((ready.adata.obs["cell_type"] == "Astro").sum())
    assert progress[0].text == f"Generating do(age=90wk) on cell_type=Astro for {n_astro} cells..."
    fractions = [p.fraction for p in progress]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    iv = result.intervention
    assert iv.name == "do(age=90wk) on cell_type=Astro" and iv.key in ready.data.tables
    assert iv.key == "causcell_age_90wk_cell_type_Astro"
    switches = tl.switch_summary(iv.table)
    assert switches  # some astrocytes change type under do(age=90wk): the message says so
    confounds = tl.switch_confounds(iv.table, ready.data, warn=False)  # by: 'mouse'
    note = confound_note(iv.table, ready.data)
    assert (note != "") == bool(confounds["confounded"].any())  # #28 item 1: the confound
    assert result.message == (f"Kept {iv.name} ({n_astro} cells) as table {iv.key!r}. "
                              f"Show it with Overlay. Labels changed: {switches}. Tick 'Keep "
                              "each cell's ...' to hold them." + note)
    assert list(ready.interventions) == [iv.name] and seen == ["interventions"]
    assert iv.delta.shape == (n_astro, len(iv.genes)) and len(iv.rows) == n_astro
    # the same again gets a new key
    assert intervention_key(ready, iv.do, iv.selection) == iv.key + "_2"


def test_keep_holds_the_descendants(ready):
    """The forms' one-click "keep cell type": do(age) with each cell's own type."""
    from napari_causcell.app.intervene import keep_text, keepable

    assert keepable(ready, "age") == ["cell_type"] and keepable(ready, "cell_type") == []
    assert keep_text(ready, "age") == "Keep each cell's cell_type (direct effect)"
    assert "nothing downstream" in keep_text(ready, "cell_type")
    request = InterveneRequest("age", "90wk", "cell_type", "Astro", keep=True, **FAST)
    result = intervene_job(ready, request).run(lambda p: None)
    cf = result.intervention.table
    assert cf.uns["causcell"]["hold"] == ["cell_type"]
    assert (cf.obs["cell_type"].astype(str) == "Astro").all()
    assert "Labels changed" not in result.message
    assert result.intervention.params["hold"] == ["cell_type"]


def test_cancel_keeps_nothing(ready):
    job = intervene_job(ready, InterveneRequest("age", "90wk", sampler="ddim", steps=50))
    with pytest.raises(Cancelled):
        for p in job:
            if p.fraction is not None and p.fraction > 0:
                job.cancel()
    assert ready.interventions == {}


def test_cells_and_targets_from_the_tissue(ready):
    assert select(ready).description == "all cells"
    sel = select(ready, "domain", ready.labels("domain")[0])
    assert intervention_name({"age": "90wk"}, sel).startswith("do(age=90wk) on domain=")
    xy = ready.coords[0]
    label, text = pick_target(ready, "domain", xy=xy)
    assert label == str(ready.adata.obs["domain"].iloc[0]) and text.startswith(
        f"Target from the tissue: domain={label}")
    with pytest.raises(DataError, match="Draw a shape first"):
        pick_target(ready, "domain", polygons=None)
    x0, y0 = ready.coords.min(0) - 1
    x1, y1 = ready.coords.max(0) + 1
    label, text = pick_target(ready, "domain", polygons=[[[x0, y0], [x1, y0], [x1, y1],
                                                          [x0, y1]]])
    assert text.endswith("(most common label).")
