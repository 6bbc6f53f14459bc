"""Issue #28: the Intervene dock's generation settings are a magicgui form
(:class:`~napari_causcell._napari._intervene_settings.GenerationSettings`); its values reach
the InterveneRequest, the run and the stored table, and invalid values cannot be entered.

Needs an X server like test_plugin.py (pytest-xvfb or ``xvfb-run -a``); skips otherwise.
"""

from __future__ import annotations

import pytest

from _qt_env import why_not

if why_not():
    pytest.skip(why_not(), allow_module_level=True)

from magicgui.widgets import ComboBox, Container, SpinBox  # noqa: E402

from napari_causcell._constants import DEFAULT_STEPS  # noqa: E402
from napari_causcell._keys import Key  # noqa: E402
from napari_causcell._napari import InterveneWidget  # noqa: E402
from napari_causcell._napari._intervene_settings import (  # noqa: E402
    MAX_STEPS,
    GenerationSettings,
)
from napari_causcell.app.intervene import DONORS, SAMPLERS  # noqa: E402


def test_form_defaults_choices_and_bounds(qtbot):
    form = GenerationSettings()
    assert isinstance(form, Container)
    assert isinstance(form.sampler, ComboBox) and isinstance(form.steps, SpinBox)
    assert list(form.sampler.choices) == list(SAMPLERS)
    assert list(form.donor.choices) == list(DONORS)
    assert form.sampling() == {"sampler": "mean", "steps": DEFAULT_STEPS, "seed": 0,
                               "donor": "random"}
    assert [w.label for w in form] == ["Sampler", "Steps", "Seed", "Donor token"]
    assert all(w.tooltip for w in form)
    # out-of-range values cannot be typed in: the spin boxes clamp them
    assert (form.steps.min, form.steps.max) == (1, MAX_STEPS)
    form.steps.native.setValue(0)
    assert form.steps.value == 1
    form.steps.native.setValue(MAX_STEPS + 5)
    assert form.steps.value == MAX_STEPS
    form.seed.native.setValue(-4)
    assert form.seed.value == 0
    # magicgui refuses them when set in code, and a sampler that does not exist
    with pytest.raises(ValueError):
        form.steps.value = 0
    with pytest.raises(ValueError):
        form.seed.value = -1
    with pytest.raises(ValueError):
        form.sampler.value = "euler"
    # psygnal-evented: an edit fires ``changed``
    seen = []
    form.changed.connect(lambda *a: seen.append(a))
    form.steps.value = 9
    assert seen


def test_form_values_reach_the_request_and_the_stored_counterfactual(
        qtbot, make_napari_viewer, brain_aging_with_model):
    viewer = make_napari_viewer(show=True)
    s = brain_aging_with_model(viewer, 300)
    w = InterveneWidget(viewer)
    s.model.train(1)
    s.trained()
    qtbot.waitUntil(lambda: w.run_btn.isEnabled(), timeout=10_000)
    assert w.sampler is w.generation.sampler and w.gen_seed is w.generation.seed
    w.concept_combo.setCurrentText("age")
    w.target_combo.setCurrentText("90wk")
    w.set_mode("label")
    w.column_combo.setCurrentText("age")
    w.label_combo.setCurrentText("4wk")
    w.sampler.value, w.steps.value, w.gen_seed.value, w.donor.value = "ddim", 7, 3, "mean"
    request = w.request()
    assert (request.sampler, request.steps, request.seed, request.donor) == ("ddim", 7, 3,
                                                                            "mean")
    # the Trends section samples with the same form
    trends = w.trends.request()
    assert (trends.sampler, trends.steps, trends.seed, trends.donor) == ("ddim", 7, 3, "mean")
    w.run()
    qtbot.waitUntil(lambda: not w.busy, timeout=120_000)
    (iv,) = s.interventions.values()
    uns = s.data.tables[iv.key].uns[Key.uns.CAUSCELL]
    assert uns["sampler"] == "ddim" and uns["steps"] == 7 and uns["donor"] == "mean"
    assert uns["output"] == "sample"
    assert iv.params["seed"] == 3 and iv.params["steps"] == 7
