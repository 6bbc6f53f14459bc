"""Per-cell random streams: a cell's counterfactual does not depend on the other cells
selected with it, their order or the batch size (issue 27 item 10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from napari_causcell.model import CellNoise, cell_keys


def test_keys_are_fixed_and_distinct():
    keys = cell_keys([f"cell_{i}" for i in range(1000)])
    assert keys.dtype == np.uint64 and len(np.unique(keys)) == 1000
    # pandas' fixed-key SipHash: the same value on every machine and run
    assert np.array_equal(keys, cell_keys([f"cell_{i}" for i in range(1000)]))
    assert int(cell_keys(["AAACCTG-1"])[0]) == int(cell_keys(np.array(["AAACCTG-1"]))[0])


def test_noise_is_per_row_and_well_distributed():
    keys = cell_keys([f"c{i}" for i in range(4000)])
    z = CellNoise(keys, 0, (4,)).randn((4000, 9))
    assert z.dtype == torch.float32 and z.shape == (4000, 9)
    assert stats.kstest(z.numpy().ravel(), "norm").pvalue > 1e-3
    u = CellNoise(keys, 0, (1,)).rand((4000, 3))
    assert 0 < float(u.min()) and float(u.max()) < 1
    assert stats.kstest(u.numpy().ravel(), "uniform").pvalue > 1e-3
    # successive calls, other streams and other seeds are uncorrelated
    noise = CellNoise(keys, 0, (4,))
    a, b = noise.randn((4000, 5)), noise.randn((4000, 5))
    c = CellNoise(keys, 0, (5,)).randn((4000, 5))
    d = CellNoise(keys, 1, (4,)).randn((4000, 5))
    for other in (b, c, d):
        assert abs(np.corrcoef(a.numpy().ravel(), other.numpy().ravel())[0, 1]) < 0.03


def test_a_row_draws_the_same_numbers_in_any_subset_or_order():
    keys = cell_keys([f"c{i}" for i in range(300)])
    full = CellNoise(keys, 7, (2,))
    first = [full.randn((300, 6)), full.rand((300, 2))]
    order = np.random.default_rng(0).permutation(300)[:40]
    part = CellNoise(keys[order], 7, (2,))
    assert torch.equal(part.randn((40, 6)), first[0][order])
    assert torch.equal(part.rand((40, 2)), first[1][order])
    # rows() keeps the counter: the subset of a used stream continues where it was
    used = CellNoise(keys, 7, (2,))
    used.randn((300, 6))
    assert torch.equal(used.rows(order).rand((40, 2)), first[1][order])
    with pytest.raises(ValueError, match="rows"):
        full.randn((10, 6))


@pytest.mark.parametrize("sampler", ["mean", "ddim"])
def test_counterfactual_of_a_cell_ignores_the_rest_of_the_selection(trained, small_sdata,
                                                                    sampler):
    table = small_sdata.tables["table"]
    young = table[table.obs["age"] == "4wk"]
    alone = young[:10]
    mixed = young[np.random.default_rng(1).permutation(100)]  # the 10 among 90 others
    kw = dict(do={"age": "90wk"}, seed=11, n_samples=2, sampler=sampler, steps=5)
    a = trained.counterfactual(alone, batch_size=4, **kw)
    b = trained.counterfactual(mixed, batch_size=64, **kw)
    b = b[b.obs["source_id"].isin(alone.obs_names)]
    a = a[np.lexsort((a.obs["source_id"], a.obs["sample"]))]
    b = b[np.lexsort((b.obs["source_id"], b.obs["sample"]))]
    # equal up to float32 rounding (a matrix product sums in another order per batch size)
    np.testing.assert_allclose(a.X, b.X, atol=1e-4, rtol=0)
    np.testing.assert_allclose(a.layers["delta"], b.layers["delta"], atol=1e-4, rtol=0)
    assert list(a.obs["cell_type"]) == list(b.obs["cell_type"])
    # reconstruct pairs with the counterfactual's own reference, whatever the selection
    rec = trained.reconstruct(mixed, seed=11, sampler=sampler, steps=5, batch_size=7)
    first = b[b.obs["sample"] == 0]
    np.testing.assert_allclose(first.layers["reconstructed"],
                               rec[list(first.obs["source_id"])].X, atol=1e-4, rtol=0)
    other = trained.counterfactual(alone, batch_size=4, **{**kw, "seed": 12})
    assert not np.array_equal(other.X, trained.counterfactual(alone, **kw).X)


def test_hold_keeps_the_type(trained, small_sdata):
    """hold=["cell_type"]: do(age) answers "this cell, with its type, older": no type
    switches, no donor for the type: its own exogenous token, moved by the new age through
    the token SCM (for this one-descendant graph the same as propagate="tokens")."""
    from napari_causcell import ConceptError, cf

    table = small_sdata.tables["table"]
    young = table[table.obs["age"] == "4wk"][:200]
    total = trained.counterfactual(young, do={"age": "90wk"}, seed=2)
    direct = trained.counterfactual(young, do={"age": "90wk"}, seed=2, hold=["cell_type"])
    assert total.uns["causcell"]["switched"] > 0 and direct.uns["causcell"]["switched"] == 0
    assert list(direct.obs["cell_type"]) == list(young.obs["cell_type"])
    assert direct.uns["causcell"]["hold"] == ["cell_type"]
    np.testing.assert_array_equal(direct.layers["reconstructed"], total.layers["reconstructed"])
    ab = cf.abduct(trained, young, trained._source(young))
    k = trained.concepts.index("cell_type")
    kw = dict(desc_k=[k], donor="random", hard=True, seed=2)
    held = cf.act(trained, ab, {"age": "90wk"}, propagate="labels", hold=("cell_type",), **kw)
    tokens = cf.act(trained, ab, {"age": "90wk"}, propagate="tokens", **kw)
    assert torch.equal(held.eps[:, k], ab.eps0[:, k]) and torch.equal(held.z, tokens.z)
    assert not torch.equal(held.z[:, k], ab.z0[:, k])  # the new age reaches the type token
    with pytest.raises(ConceptError, match="not a concept"):
        trained.counterfactual(young[:3], do={"age": "90wk"}, hold=["celltype"])
    with pytest.raises(ConceptError, match="both intervened on and held"):
        trained.counterfactual(young[:3], do={"age": "90wk"}, hold="age")
