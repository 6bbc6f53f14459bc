"""The ipywidgets panels, driven from Python (no browser, no Qt): wiring checks.

What the workflows compute, their messages, progress and cancelling are tested once, without
any widget, in ``tests/app``; these tests check that the panels copy their controls into the
requests, start the jobs and show what comes back."""

from __future__ import annotations

import copy
import io
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from napari_causcell.jupyter import (
    CausCellPanel,
    IntervenePanel,
    OverlayPanel,
    TrainPanel,
    TrendsPanel,
)
from napari_causcell.app import AppState
from napari_causcell.app.intervals import SPANS_ZERO_NOTE
from napari_causcell.app.overlay import top_genes
from napari_causcell.app.trends import top_trends
from napari_causcell.jupyter._overlay_panel import GREY, grey_css

TIMEOUT = 300


def _png_array(data: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(data), format="png")


def test_jupyter_imports_no_qt_or_napari():
    code = (
        "import sys, napari_causcell.jupyter\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_panel_dag_ticks_and_errors(sdata):
    panel = TrainPanel(AppState(sdata))
    assert panel.concepts.value == ("age", "domain", "cell_type")
    panel.set_parents({"cell_type": ["age", "domain"]})
    assert panel.parents() == {"age": [], "domain": [], "cell_type": ["age", "domain"]}
    assert panel.edges() == [("age", "cell_type"), ("domain", "cell_type")]
    # dropping a concept drops its ticks, the rest survive
    panel.concepts.value = ("age", "cell_type")
    assert panel.parents() == {"age": [], "cell_type": ["age"]}
    # a cycle is refused before any model is built
    panel.set_parents({"cell_type": ["age"], "age": ["cell_type"]})
    assert panel.train() is False
    assert "cycle" in panel.status_text.lower()
    assert panel.state.model is None
    panel.concepts.value = ()
    assert panel.train() is False and "at least one concept" in panel.status_text


def test_train_panel_trains_streams_and_stops(sdata):
    session = AppState(sdata)
    panel = TrainPanel(session)
    panel.set_parents({"cell_type": ["age", "domain"]})
    panel.size.value = "tiny (tests, demos)"
    panel.epochs.value = 3
    seen = []
    session.events.model.connect(lambda *_: seen.append("model"))
    session.events.trained.connect(lambda *_: seen.append("training"))
    assert panel.train() is True
    assert panel.train_button.disabled and not panel.stop_button.disabled
    panel.wait(TIMEOUT)
    assert session.model.is_trained and len(session.model.history) == 3
    assert session.model.edges == [("age", "cell_type"), ("domain", "cell_type")]
    assert panel.progress.value == 3 and panel.progress.max == 3
    assert "Trained 3 epochs" in panel.status_text
    assert not panel.train_button.disabled and panel.stop_button.disabled
    img = _png_array(panel.loss_image.value)
    assert img.shape[0] > 100 and img[..., :3].std() > 0.05  # a drawn plot, not blank
    assert "model" in seen and "training" in seen

    # stop: a long training ends early and keeps a usable model
    panel.epochs.value = 500
    assert panel.train()
    panel.stop()
    panel.wait(TIMEOUT)
    assert session.model.is_trained
    assert len(session.model.history) < 500
    assert session.model.train_params["stop_reason"] == "cancelled"


def test_save_and_load_through_panel(sdata, trained, tmp_path):
    session = AppState(sdata)
    session.set_model(trained)
    panel = TrainPanel(session)
    panel.path.value = str(tmp_path / "m")
    panel.save()
    assert (tmp_path / "m" / "model.pt").exists() and "Saved" in panel.status_text
    panel.path.value = str(tmp_path / "missing")
    panel.load()
    assert "Refused" in panel.status_text
    panel.path.value = str(tmp_path / "m")
    panel.load()
    assert session.model is not trained and session.model.concepts == trained.concepts


@pytest.fixture()
def panel(sdata, trained):
    return CausCellPanel(sdata, model=trained)


def test_full_panel_intervene_and_overlay(panel):
    s, iv_panel, ov_panel = panel.state, panel.intervene_panel, panel.overlay_panel
    assert panel.tabs.selected_index == 1  # a trained model opens on Intervene
    assert iv_panel.concept.options[0] == "age"  # time first
    iv_panel.target.value = "90wk"
    iv_panel.cells.value = "cells with a label"
    assert iv_panel.cells_column.value == "cell_type"  # a first choice; any column can be
    assert "Astro" in iv_panel.cells_label.options
    iv_panel.cells_label.value = "Astro"
    assert iv_panel.run() is True
    iv_panel.wait(TIMEOUT)
    n_astro = int((s.adata.obs["cell_type"] == "Astro").sum())
    (name, iv), = s.interventions.items()
    assert name == "do(age=90wk) on cell_type=Astro" and iv.selection.n_cells == n_astro
    assert iv.key in s.data.tables  # written back into the SpatialData
    assert iv_panel.progress.value == 1.0 and "Kept" in iv_panel.status_text
    # the result is shown in Overlay, on the top changed gene, factual | counterfactual
    assert panel.tabs.selected_index == 2
    top = top_genes(s, name, n=20)
    assert ov_panel.gene.value == top["gene"].iloc[0]
    assert [v for _, v in ov_panel.top.options] == list(top["gene"])
    # names and changes in columns: one width, each change with its 90 % interval
    # ("+1.37 [+0.90, +1.80]") right-aligned at the end
    labels = [lab for lab, _ in ov_panel.top.options]
    assert len({len(lab) for lab in labels}) == 1
    numbers = [[float(x) for x in re.findall(r"[+-]\d+\.\d\d", lab)] for lab in labels]
    np.testing.assert_allclose(numbers, top[["mean_change", "lower", "upper"]], atol=0.0051)
    # the genes whose interval includes 0 are grey, and the note under the list says so
    assert ov_panel.grey_css.value == grey_css(ov_panel.scope, list(top["spans_zero"]))
    assert ov_panel.top_note.value == (SPANS_ZERO_NOTE if top["spans_zero"].any() else "")
    ov = ov_panel.overlay
    assert ov.titles == ["factual", name]
    # what the values are is tested in tests/app/test_app_overlay.py; here: what is drawn
    # one shared colour scale: both panels' scatters use the same limits
    clims = {c.get_clim() for ax in ov_panel.figure.axes for c in ax.collections
             if c.get_array() is not None and ax.get_label() != "<colorbar>"}
    assert clims == {ov.limits}
    assert len(ov_panel.figure.axes) == 3  # two tissue panels + one colour bar
    img = _png_array(ov_panel.image.value)
    assert img[..., :3].std() > 0.05 and len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 50

    # the view toggle reaches the request: the difference view
    ov_panel.view.value = "difference"
    assert ov_panel.overlay.cmap == "RdBu_r" and ov_panel.overlay.titles == [name]
    # near-zero (white) changes keep a grey rim on the white axes
    cells = ov_panel.figure.axes[0].collections[-1]
    assert cells.get_linewidths()[0] > 0 and np.allclose(cells.get_edgecolors()[:, :3], 0.55)
    # clicking a gene in the top list shows that gene
    second = ov_panel.top.options[1][1]
    ov_panel.top.value = second
    assert ov_panel.gene.value == second and ov_panel.overlay.label.startswith(second)


def test_intervene_refusals(sdata, trained):
    untrained = IntervenePanel(AppState(sdata))
    assert untrained.run() is False and "No model" in untrained.status_text
    s = AppState(sdata)
    s.set_model(trained)
    p = IntervenePanel(s)
    p.concept.value = "domain"
    assert "D0" in p.target.options or len(p.target.options) >= 2
    p.cells.value = "cells with a label"
    p.cells_column.value = "domain"
    # a label with no cells left in this table: an empty selection is refused
    s.adata.obs["domain"] = s.adata.obs["domain"].cat.add_categories(["nowhere"])
    p.cells_label.options = [*p.cells_label.options, "nowhere"]
    p.cells_label.value = "nowhere"
    assert p.run() is False and "empty" in p.status_text
    assert s.interventions == {}


def test_overlay_panel_layout_fits_labels(sdata):
    """The view buttons size to their labels ("factual | counterfactual" was cut), and the
    top-changed list is in a fixed-width font with right-aligned changes."""
    from napari_causcell.jupyter._overlay_panel import TOP_CSS, top_labels

    labels = top_labels(["C4b", "Ifi27", "Agpat4", "Penk"], [1.3619, 0.677, 0.4634, -0.467])
    assert labels == ["C4b    +1.362", "Ifi27  +0.677", "Agpat4 +0.463", "Penk   -0.467"]
    assert top_labels([], []) == []
    assert top_labels(["A", "Bcl2"], [12.5, -0.25]) == ["A    +12.500", "Bcl2  -0.250"]
    # with intervals (app.intervals.change_texts: one width already) the texts as given
    assert top_labels(["A", "Bcl2"], [" +1.37 [+0.90, +1.80]", "-12.05 [-9.00, +0.20]"]) == [
        "A     +1.37 [+0.90, +1.80]", "Bcl2 -12.05 [-9.00, +0.20]"]
    assert "monospace" in TOP_CSS and ".causcell-top" in TOP_CSS
    p = OverlayPanel(AppState(sdata))
    assert p.view.style.button_width == "auto"
    assert "causcell-top" in p.top._dom_classes
    assert p.top_css in p.children and p.top_css.value == TOP_CSS


def test_overlay_panel_greys_genes_whose_interval_includes_zero(sdata, trained):
    """#26 item 3: the top list greys (a style scoped to this panel's list) the genes whose
    90 % interval includes 0, with the note under it; without intervals it says why."""
    from napari_causcell.app import InterveneRequest, intervene_job

    assert grey_css("s", [False, True, False, True]) == (
        f"<style>.s option:nth-child(2), .s option:nth-child(4) {{ color: {GREY}; }}</style>")
    assert grey_css("s", [False]) == ""
    s = AppState(sdata)
    s.set_model(trained)
    iv = intervene_job(s, InterveneRequest("age", "90wk", "cell_type", "Astro",
                                           sampler="mean", steps=3)).run().intervention
    top = top_genes(s, iv.name, n=20)
    iv.intervals["lower"], iv.intervals["upper"] = 1e-3, 1.0  # none includes 0
    p = OverlayPanel(s)  # (a panel reads the list when it shows an intervention)
    assert p.scope in p.top._dom_classes and p.scope != OverlayPanel(s).scope
    assert p.grey_css.value == "" and p.top_note.value == ""
    at = iv.intervals["gene"].isin(top["gene"].iloc[[0, 2]])
    iv.intervals.loc[at, "lower"] = -1.0
    p = OverlayPanel(s)
    assert p.grey_css.value == grey_css(p.scope, [True, False, True] + [False] * 17)
    assert p.top_note.value == SPANS_ZERO_NOTE and p.grey_css in p.children
    iv.intervals, iv.intervals_note = None, "RuntimeError: no validation cells"
    p = OverlayPanel(s)
    assert p.grey_css.value == "" and p.top_note.value == (
        "No intervals: RuntimeError: no validation cells")
    assert [lab.split()[-1] for lab, _ in p.top.options] == [
        f"{d:+.3f}" for d in top["mean_change"]]


def test_overlay_needs_an_intervention(sdata, trained):
    s = AppState(sdata)
    s.set_model(trained)
    p = OverlayPanel(s)
    assert p.gene.value == trained.genes[0]
    p.view.value = "difference"
    assert "needs an intervention" in p.status_text
    p.view.value = "factual"
    assert p.overlay.titles == ["factual"]
    np.testing.assert_allclose(p.overlay.values[0], s.factual_expression(p.gene.value))


def test_overlay_panel_fades_extrapolated_cells(sdata, no_old_microglia):
    """#26 item 3: the header counts the extrapolated cells, the figure fades them."""
    from napari_causcell.app import InterveneRequest, intervene_job
    from napari_causcell.app.overlay import FADE_ALPHA, FADE_NOTE, top_genes_title

    s = AppState(sdata)
    s.set_model(no_old_microglia)  # trained without 90wk microglia
    iv = intervene_job(s, InterveneRequest("age", "90wk", "label", "4wk", column="age",
                                           sampler="mean", steps=3)).run().intervention
    p = OverlayPanel(s)
    p.fade.value = False  # only the extrapolated
    p.show(iv.name)
    assert p.top_title.value == top_genes_title(s, iv.name)
    assert p.top_title.value.endswith(f"of {len(iv.rows)} cells extrapolated)")
    assert FADE_NOTE in p.status_text.lower()
    alpha = p.figure.axes[1].collections[-1].get_facecolors()[:, 3]  # panel B, do()
    assert np.isclose(alpha, FADE_ALPHA).sum() == iv.extrapolated.sum()


def test_overlay_panel_fades_uncertain_cells(sdata, trained, one_uncertain_group):
    """#26 item 3: cells of a group whose interval of the gene's change includes 0 are
    faded; the checkbox turns it off."""
    from napari_causcell.app import InterveneRequest, intervene_job
    from napari_causcell.app.fading import extrapolated_cells
    from napari_causcell.app.overlay import FADE_ALPHA, UNCERTAIN_NOTE

    s = AppState(sdata)
    s.set_model(trained)
    iv = intervene_job(s, InterveneRequest("age", "90wk", "domain", s.labels("domain")[0],
                                           sampler="mean", steps=3)).run().intervention
    gene = iv.genes[0]
    low, before = one_uncertain_group(s, iv, gene)
    p = OverlayPanel(s)
    p.show(iv.name, gene)
    assert p.fade.value and UNCERTAIN_NOTE.removeprefix("faded: ") in p.status_text
    alpha = p.figure.axes[1].collections[-1].get_facecolors()[:, 3]  # panel B, do()
    assert np.isclose(alpha, FADE_ALPHA).sum() == low.sum() > before.sum()
    p.fade.value = False  # redraws
    alpha = p.figure.axes[1].collections[-1].get_facecolors()[:, 3]
    assert np.isclose(alpha, FADE_ALPHA).sum() == extrapolated_cells(s, iv).sum()
    assert UNCERTAIN_NOTE.removeprefix("faded: ") not in p.status_text


def test_train_panel_suggests_the_graph():
    """On 6000 cells the tests recover the true graph (docs/causal_graph.md): ticks filled."""
    import anndata as ad

    from napari_causcell.datasets import brain_aging

    table = brain_aging(n_cells=6000, n_genes=60, seed=0).tables["table"]
    adata = ad.AnnData(obs=table.obs[["age", "domain", "cell_type"]].copy(),
                       obsm={"spatial": table.obsm["spatial"]})
    panel = TrainPanel(AppState(adata))
    assert panel.dag_image.layout.display == "none"
    assert panel.suggest() is True
    panel.wait(TIMEOUT)
    assert panel.parents() == {"age": [], "domain": [], "cell_type": ["age", "domain"]}
    assert panel.undirected_pending() == []
    assert "Suggested 2 edge(s)" in panel.status_text and "age < domain" in panel.status_text
    assert "oriented" in panel.undirected_label.value
    assert panel.dag_image.layout.display is None and _png_array(panel.dag_image.value).size
    assert not panel.suggest_button.disabled and not panel.train_button.disabled


def test_train_panel_lists_undirected_edges_until_decided():
    """Without tiers two dependent labels stay undirected; ticking one direction settles it."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 3000)
    b = np.where(rng.random(3000) < 0.8, a, rng.integers(0, 3, 3000))
    obs = pd.DataFrame({"colour": a.astype(str), "shape": b.astype(str)}).astype("category")
    adata = ad.AnnData(obs=obs, obsm={"spatial": rng.random((3000, 2))})
    panel = TrainPanel(AppState(adata))
    panel.concepts.value = ("colour", "shape")
    panel.suggest()
    panel.wait(TIMEOUT)
    assert panel.undirected_pending() == [("colour", "shape")]
    assert "colour -- shape" in panel.undirected_label.value
    assert "decide the marked edges" in panel.status_text
    panel.set_parents({"shape": ["colour"]})
    assert panel.undirected_pending() == [] and "oriented" in panel.undirected_label.value
    panel.concepts.value = ("colour",)
    assert panel.suggest() is False and "at least two" in panel.status_text


def test_trends_panel(sdata, trained):
    session = AppState(sdata)
    session.set_model(trained)
    panel = TrendsPanel(session, n_rows=5)
    assert panel.concept.value == "age" and panel.source.options[0] == "4wk"
    assert panel.target.options[0] == "all other labels"
    panel.target.value = "4wk"
    assert panel.run() is False and "equals the source" in panel.status_text
    panel.target.value = "90wk"
    panel.steps.value = 5
    assert panel.run() is True
    panel.wait(TIMEOUT)
    res = panel.result
    assert set(res["target"]) == {"90wk"} and "causcell_trends" in session.adata.uns
    assert panel.progress.value == 1.0
    n_sig = int(res["significant"].sum())
    tested = int((res["unit"].astype(str) != "model-only (no donor replication)").sum())
    assert f"{n_sig} significant of {tested} tests" in panel.status_text
    top = top_trends(res, 5)
    assert len(top) == (min(5, n_sig) if n_sig else 5)
    assert list(top.columns) == ["target", "group", "gene", "mean_change",
                                                   "ci_low", "ci_high", "padj", "unit",
                                                   "one_donor"]
    assert (top["ci_low"] <= top["mean_change"]).all() and "unit" in panel.table.value
    assert top["mean_change"].abs().is_monotonic_decreasing
    for gene in top["gene"]:
        assert gene in panel.table.value
    from napari_causcell import tl

    if tl.trend_matrix(res).shape[1]:  # significant calls at the finest level: a heatmap
        assert panel.heatmap.layout.display is None and _png_array(panel.heatmap.value).size
    else:  # none (calls only on marginal rows, or none at all): the heatmap is hidden
        assert panel.heatmap.layout.display == "none"


def test_trends_panel_needs_a_model(sdata):
    panel = TrendsPanel(AppState(sdata))
    assert panel.run_button.disabled and panel.run() is False
    assert "Refused" in panel.status_text


def test_intervene_keep_box_follows_the_concept(sdata, trained):
    """One click keeps the cell type (issue 28 item 1, issue 26 item 1)."""
    s = AppState(sdata)
    s.set_model(trained)
    p = IntervenePanel(s)
    p.concept.value = "age"
    assert p.keep.description == "Keep each cell's cell_type (direct effect)"
    assert not p.keep.disabled
    p.keep.value = True
    assert p.request().keep is True
    p.concept.value = "cell_type"
    assert p.keep.disabled and p.request().keep is False


def test_intervene_cells_by_any_column_and_a_second_one(sdata, trained):
    """Issue 28 item 7: any label of any column, AND-ed with another; rows; the user's own
    column names (``celltype``, ``region``, ``age_group``) offered, none hard-coded."""
    s = AppState(sdata)
    s.set_model(trained)
    p = IntervenePanel(s)
    p.concept.value = "age"
    p.target.value = "90wk"
    p.cells.value = "cells with a label"
    p.cells_column.value = "cell_type"
    p.cells_label.value = "Astro"
    p.and_column.value = "age"
    p.and_label.value = "4wk"
    req = p.request()
    assert (req.mode, req.column, req.label, req.where) == ("label", "cell_type", "Astro",
                                                          {"age": "4wk"})
    assert p.run() is True
    p.wait(TIMEOUT)
    (name, iv), = s.interventions.items()
    obs = s.adata.obs
    want = int(((obs["cell_type"] == "Astro") & (obs["age"] == "4wk")).sum())
    assert iv.selection.n_cells == want and name == "do(age=90wk) on cell_type=Astro and age=4wk"
    p.cells.value = "cells by row"
    p.rows.value = "0-9, 20"
    assert p.request().label == "0-9, 20"

    from napari_causcell.datasets import merfish_brain_aging

    real = merfish_brain_aging(as_anndata=True)
    real.obs = real.obs.rename(columns={"cell_type": "celltype", "domain": "tissue_zone",
                                        "age": "age_group"})
    q = IntervenePanel(AppState(real))
    q.cells.value = "cells with a label"
    assert {"celltype", "tissue_zone", "age_group"} <= set(q.cells_column.options)
    assert q.cells_column.value == "celltype"
    q.cells_column.value = "tissue_zone"
    assert "CC/ACO" in q.cells_label.options and "error" not in q.status.value
