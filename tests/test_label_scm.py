"""The categorical label SCM: Gumbel-max abduction and counterfactual labels."""

import numpy as np
import pytest
import torch

from napari_causcell.model.scm import LabelSCM


def _scm(weight_age: float = 2.0, seed: int = 0, n: int = 20_000):
    """age (3) -> type (4) <- domain (2); labels drawn from the SCM itself."""
    g = torch.Generator().manual_seed(seed)
    a = torch.zeros(4, 4)  # 3 concepts + u
    a[0, 2] = a[1, 2] = 1.0
    scm = LabelSCM([3, 2, 4], a)
    scm.bias[2].copy_(torch.tensor([1.0, 0.5, 0.0, -0.5]))
    scm.weight["0_2"].copy_(weight_age * torch.tensor(
        [[0.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    scm.weight["1_2"].copy_(torch.tensor([[0.0, 0.5, 0, 0], [0.5, 0, 0, 0]]))
    y = torch.stack([torch.randint(0, 3, (n,), generator=g),
                     torch.randint(0, 2, (n,), generator=g)], 1)
    gum = -torch.log(-torch.log(torch.rand(n, 4, generator=g)))
    t = (scm.logits(2, torch.cat([y, torch.zeros(n, 1, dtype=torch.long)], 1)) + gum).argmax(-1)
    return scm, torch.cat([y, t[:, None]], 1)


def test_abduction_reproduces_the_factual_labels():
    scm, y = _scm()
    noise = scm.abduct(y, torch.Generator().manual_seed(1))
    same, kept = scm.counterfactual(y, {}, noise)
    assert torch.equal(same, y) and not kept.any()
    # do() that sets every cell's own age: nothing moves
    for age in range(3):
        rows = y[:, 0] == age
        cf, _ = scm.counterfactual(y[rows], {0: age}, {2: noise[2][rows]})
        assert torch.equal(cf, y[rows])


def test_do_on_a_root_without_effect_keeps_every_label():
    scm, y = _scm(weight_age=0.0)
    noise = scm.abduct(y, torch.Generator().manual_seed(2))
    cf, _ = scm.counterfactual(y, {0: 2}, noise)
    assert torch.equal(cf[:, 2], y[:, 2])
    assert (cf[:, 0] == 2).all()


def test_counterfactual_labels_follow_the_interventional_distribution():
    """Gumbel-max counterfactuals have the interventional marginal, and a cell only leaves
    its label for one whose probability rose (counterfactual stability)."""
    scm, y = _scm()
    noise = scm.abduct(y, torch.Generator().manual_seed(3))
    cf, _ = scm.counterfactual(y, {0: 2}, noise)
    want = scm.logits(2, cf).softmax(-1).mean(0)
    got = torch.bincount(cf[:, 2], minlength=4).float() / len(cf)
    assert torch.allclose(got, want, atol=0.015)
    src = y[:, 0] == 0  # age 0 -> 2 raises only type 3's weight
    moved = src & (cf[:, 2] != y[:, 2])
    assert moved.sum() > 0.2 * src.sum()
    assert (cf[moved, 2] == 3).all()


def test_fit_recovers_the_generating_logits():
    scm, y = _scm(seed=4)
    fitted = LabelSCM([3, 2, 4], _adj())
    fitted.fit(y)
    for age in range(3):
        for dom in range(2):
            cell = torch.tensor([[age, dom, 0]])
            p_true = scm.logits(2, cell).softmax(-1)
            p_fit = fitted.logits(2, cell).softmax(-1)
            assert torch.allclose(p_true, p_fit, atol=0.03)


def test_unseen_parent_label_pairs_keep_their_label():
    scm, y = _scm(seed=5)
    keep = ~((y[:, 0] == 2) & (y[:, 2] == 1))  # type 1 never seen at age 2
    fitted = LabelSCM([3, 2, 4], _adj())
    fitted.fit(y[keep])
    src = y[(y[:, 0] == 0) & (y[:, 2] == 1)]
    cf, kept = fitted.counterfactual(src, {0: 2}, fitted.abduct(src))
    assert kept[:, 2].all() and torch.equal(cf[:, 2], src[:, 2])


def _adj():
    a = torch.zeros(4, 4)
    a[0, 2] = a[1, 2] = 1.0
    return a


@pytest.mark.parametrize("seed", [0, 1])
def test_abduction_is_seeded(seed):
    scm, y = _scm()
    n1 = scm.abduct(y[:50], torch.Generator().manual_seed(seed))
    n2 = scm.abduct(y[:50], torch.Generator().manual_seed(seed))
    assert np.allclose(n1[2].numpy(), n2[2].numpy())


def test_unseen_combination_takes_the_transported_change(small_sdata, no_old_microglia):
    """do(age) on a type never seen at the new age: unseen="average" marks the cells
    extrapolated and gives them a change averaged over the measured types; cells of measured
    types get exactly the same output in both modes."""
    import warnings

    from napari_causcell import SettingError

    model = no_old_microglia
    table = small_sdata.tables["table"]
    obs = table.obs
    young = table[(obs["age"] == "4wk").to_numpy()]
    micro = (young.obs["cell_type"] == "Microglia").to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        avg = model.counterfactual(young, do={"age": "90wk"}, seed=1)
        dec = model.counterfactual(young, do={"age": "90wk"}, seed=1, unseen="decoder")
    assert avg.uns["causcell"]["unseen"] == "average"
    assert avg.obs["extrapolated"].to_numpy()[micro].all()
    assert not avg.obs["extrapolated"].to_numpy()[~micro].any()
    assert not dec.obs["extrapolated"].any()
    assert np.isfinite(avg.layers["delta"]).all()
    assert np.array_equal(avg.X[~micro], dec.X[~micro])
    assert not np.allclose(avg.layers["delta"][micro], dec.layers["delta"][micro])
    assert np.allclose(avg.layers["delta"], avg.X - avg.layers["reconstructed"], atol=1e-5)
    with pytest.raises(SettingError, match="unseen"):
        model.counterfactual(young[:3], do={"age": "90wk"}, unseen="pool")
    # the transported change of a cell does not depend on the other cells selected
    few = young[np.flatnonzero(micro)[:3]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        alone = model.counterfactual(few, do={"age": "90wk"}, seed=1, batch_size=2)
    at = [young.obs_names.get_loc(n) for n in few.obs_names]
    assert alone.obs["extrapolated"].all()
    np.testing.assert_allclose(alone.layers["delta"], avg.layers["delta"][at], atol=1e-4)


def test_blend_averages_the_transported_and_the_decoders_change(small_sdata, no_old_microglia):
    """unseen="blend": on the cells of an unseen combination, the mean of the transported
    change and the decoder's own; every other cell as in both other modes."""
    import warnings

    table = small_sdata.tables["table"]
    young = table[(table.obs["age"] == "4wk").to_numpy()]
    micro = (young.obs["cell_type"] == "Microglia").to_numpy()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for mode in ("average", "decoder", "blend"):
            out[mode] = no_old_microglia.counterfactual(young, do={"age": "90wk"}, seed=1,
                                                        unseen=mode)
    blend = out["blend"]
    assert blend.uns["causcell"]["unseen"] == "blend"
    assert blend.obs["extrapolated"].to_numpy()[micro].all()
    np.testing.assert_allclose(
        blend.layers["delta"][micro],
        (out["average"].layers["delta"][micro] + out["decoder"].layers["delta"][micro]) / 2,
        atol=1e-5)
    assert np.array_equal(blend.X[~micro], out["average"].X[~micro])


def test_warning_share_is_never_rounded_to_zero_or_all():
    from napari_causcell.cf import share as _share

    assert _share(0.0004) == "0.04%" and _share(1e-6) == "under 0.01%"
    assert _share(0.5) == "50%" and _share(1.0) == "100%" and _share(0.998) == "over 99.5%"


def test_held_unseen_combination_is_transported(small_sdata, no_old_microglia):
    """hold=["cell_type"] on a type never seen at the new age: the cells keep their type and
    take the transported change (unseen="average"), as the default does for them."""
    import warnings

    model = no_old_microglia
    table = small_sdata.tables["table"]
    obs = table.obs
    micro = table[(obs["age"] == "4wk").to_numpy() & (obs["cell_type"] == "Microglia").to_numpy()]
    with pytest.warns(UserWarning, match="keep a held label .* averaged over the labels"):
        kept = model.counterfactual(micro, do={"age": "90wk"}, seed=1, hold=["cell_type"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        total = model.counterfactual(micro, do={"age": "90wk"}, seed=1)
        raw = model.counterfactual(micro, do={"age": "90wk"}, seed=1, hold=["cell_type"],
                                   unseen="decoder")
    assert kept.uns["causcell"]["held_unseen"] == 1.0 and kept.obs["extrapolated"].all()
    np.testing.assert_allclose(kept.layers["delta"], total.layers["delta"], atol=1e-5)
    assert not raw.obs["extrapolated"].any()
    assert not np.allclose(raw.layers["delta"], kept.layers["delta"])
