"""Overlay workflow: what is drawn on the cells, with which colours and messages."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causcell.app import InterveneRequest, OverlayRequest, intervene_job
from napari_causcell.app.overlay import top_genes
from napari_causcell.errors import DataError


@pytest.fixture()
def with_iv(ready):
    job = intervene_job(ready, InterveneRequest("age", "90wk", "cell_type", "Astro",
                                                sampler="mean", steps=3))
    return ready, job.run().intervention


def test_factual_view_without_interventions(ready):
    gene = ready.genes[0]
    ov, text = OverlayRequest(gene=gene).run(ready)
    assert ov.titles == ["factual"] and text == f"Showing {gene}: log-expression (factual) for 1 panel(s)."
    np.testing.assert_allclose(ov.values[0], ready.factual_expression(gene))
    with pytest.raises(DataError, match="The difference view needs an intervention"):
        OverlayRequest(gene=gene, view="difference").run(ready)
    with pytest.raises(DataError, match="Choose a gene."):
        OverlayRequest().run(ready)
    with pytest.raises(DataError, match="Choose the concept to colour by."):
        OverlayRequest("concept").run(ready)


def test_counterfactual_panels_share_one_scale(with_iv):
    state, iv = with_iv
    gene = str(top_genes(state, iv.name, n=1)["gene"].iloc[0])
    ov, _ = OverlayRequest.preset("factual | counterfactual", gene, iv.name).run(state)
    assert ov.titles == ["factual", iv.name]
    # #28 item 6: panels are named A/B (never left/right: that is where sections sit) and
    # the colour bar of a factual | counterfactual pair says both, not "counterfactual"
    assert ov.caption(True).endswith(f"panel B (lower, all sections): {iv.name}")
    assert "left" not in ov.caption(True) and "right" not in ov.caption(True)
    assert "factual and counterfactual panels, one colour scale" in ov.label
    fact, cf = ov.values
    off = np.setdiff1d(np.arange(state.n_cells), iv.rows)
    np.testing.assert_allclose(fact[off], cf[off])
    ov, _ = OverlayRequest.preset("difference", gene, iv.name).run(state)
    lo, hi = ov.limits
    assert lo == -hi and ov.cmap == "RdBu_r" and np.isnan(ov.values[0][off]).all()
    assert ov.rgba(0).shape == (state.n_cells, 4)


def test_labels_and_magnitude(with_iv):
    state, iv = with_iv
    ov, _ = OverlayRequest("concept", concept="age", panels=[iv.name]).run(state)
    assert set(ov.values[0][iv.rows]) == {"90wk"} and ov.kind == "categorical"
    assert {lab for lab, _ in ov.legend()} <= set(ov.palette)
    ov, _ = OverlayRequest("predicted", concept="age").run(state)
    assert len(ov.values[0]) == state.n_cells
    ov, _ = OverlayRequest("magnitude", panels=[iv.name]).run(state)
    assert (ov.values[0][iv.rows] > 0).all()
    with pytest.raises(DataError, match="magnitude of change needs an intervention"):
        OverlayRequest("magnitude").run(state)


def test_top_genes(with_iv):
    state, iv = with_iv
    df = top_genes(state, iv.name, n=5)
    assert len(df) == 5 and df["mean_change"].abs().is_monotonic_decreasing
    with pytest.raises(DataError, match="No intervention named"):
        top_genes(state, "nope")


def test_extrapolated_cells_are_faded_with_a_note(sdata, no_old_microglia, with_iv):
    """#26 item 3: cells whose label combination was never measured (obs['extrapolated'])
    are faded in the panels that show the model's output, said in the caption and header."""
    from napari_causcell.app import AppState
    from napari_causcell.app.overlay import FADE_ALPHA, FADE_NOTE, top_genes_title

    state = AppState(sdata)
    state.set_model(no_old_microglia)  # trained without 90wk microglia
    iv = intervene_job(state, InterveneRequest("age", "90wk", "label", "4wk", column="age",
                                               sampler="mean", steps=3)).run().intervention
    extra = iv.table.obs["extrapolated"].to_numpy(bool)
    gene = state.genes[0]
    only = dict(fade_uncertain=False)  # the extrapolated only
    ov, text = OverlayRequest.preset("factual | counterfactual", gene, iv.name,
                                     **only).run(state)
    fact, cf = ov.faded
    assert not fact.any() and extra.any() and not extra.all()
    np.testing.assert_array_equal(cf[state.source_rows(iv.table)], extra)
    assert cf.sum() == extra.sum()  # none outside the intervened cells
    micro = (state.adata.obs["cell_type"] == "Microglia").to_numpy()
    np.testing.assert_array_equal(cf[iv.rows], micro[iv.rows])
    assert ov.caption(True).endswith("\n" + FADE_NOTE) and FADE_NOTE in text.lower()
    np.testing.assert_allclose(ov.rgba(1)[cf, 3], FADE_ALPHA)
    np.testing.assert_allclose(ov.rgba(1)[~cf, 3], 1.0)
    np.testing.assert_allclose(ov.rgba(0)[:, 3], 1.0)
    for request in (OverlayRequest("magnitude", panels=[iv.name]),
                    OverlayRequest("predicted", concept="cell_type", panels=[iv.name]),
                    OverlayRequest.preset("difference", gene, iv.name, **only)):
        np.testing.assert_array_equal(request.run(state)[0].faded[0], cf)
    # a do() target and the factual view are no model output: not faded, no note
    for request in (OverlayRequest("concept", concept="age", panels=[iv.name]),
                    OverlayRequest(gene=gene, panels=[iv.name])):
        ov = request.run(state)[0]
        assert not ov.faded[0].any() and ov.note == "" and FADE_NOTE not in ov.caption()
    assert top_genes_title(state, iv.name) == (
        f"Top changed genes of {iv.name} ({extra.sum()} of {len(iv.rows)} cells extrapolated)")
    # a model that saw every combination: nothing faded, the header says nothing of it
    ready, measured = with_iv
    assert not measured.extrapolated.any()
    assert top_genes_title(ready, measured.name) == f"Top changed genes of {measured.name}"


def test_uncertain_cells_are_faded_with_a_note(with_iv):
    """#26 item 3: cells whose group's interval of the shown gene's change includes 0 are
    faded where the model's output shows, unless turned off."""
    from napari_causcell.app.overlay import FADE_ALPHA, UNCERTAIN_NOTE

    state, iv = with_iv
    gene, other = iv.genes[0], iv.genes[1]
    rows = iv.strata["gene"].isin([gene, other])
    iv.strata.loc[rows, "lower"], iv.strata.loc[rows, "upper"] = 0.1, 1.0  # none spans 0
    ov, _ = OverlayRequest.preset("difference", gene, iv.name).run(state)
    assert not ov.faded[0].any() and ov.note == ""
    low = iv.stratum_of == iv.stratum_of[0]  # one group's change of gene: uncertain
    at = (iv.strata["group"] == iv.stratum_of[0]) & (iv.strata["gene"] == gene)
    iv.strata.loc[at, "lower"] = -0.5
    ov, text = OverlayRequest.preset("difference", gene, iv.name).run(state)
    np.testing.assert_array_equal(ov.faded[0][iv.rows], low)
    assert ov.faded[0].sum() == low.sum()  # none outside the intervened cells
    np.testing.assert_allclose(ov.rgba(0)[iv.rows[low], 3], FADE_ALPHA)
    np.testing.assert_allclose(ov.rgba(0)[iv.rows[~low], 3], 1.0)
    assert ov.caption().endswith("\n" + UNCERTAIN_NOTE)
    assert UNCERTAIN_NOTE.removeprefix("faded: ") in text
    # per gene: another gene of the same cells is not faded; nor is the factual view
    assert not OverlayRequest.preset("difference", other, iv.name).run(state)[0].faded[0].any()
    fact, cf = OverlayRequest.preset("factual | counterfactual", gene, iv.name).run(state)[0].faded
    assert not fact.any() and cf.sum() == low.sum()
    # the user can turn it off; the magnitude and label views are not per gene: not faded
    off = OverlayRequest.preset("difference", gene, iv.name, fade_uncertain=False)
    assert not off.run(state)[0].faded[0].any()
    for request in (OverlayRequest("magnitude", panels=[iv.name]),
                    OverlayRequest("predicted", concept="cell_type", panels=[iv.name])):
        assert not request.run(state)[0].faded[0].any()
