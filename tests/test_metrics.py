"""napari_causcell.metrics on small cases whose answers are known."""

import numpy as np
import pandas as pd
import pytest

from napari_causcell import metrics


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(0)
    n = 600
    a = rng.integers(0, 3, n)
    b = rng.integers(0, 2, n)  # independent of a
    centers = rng.normal(size=(3, 8)) * 4
    emb_a = centers[a] + rng.normal(size=(n, 8))  # knows a only
    emb_b = np.c_[b * 5.0, np.zeros(n)] + rng.normal(size=(n, 2))  # knows b only
    noise = rng.normal(size=(n, 4))  # knows nothing
    labels = pd.DataFrame({"a": a.astype(str), "b": np.where(b, "x", "y")})
    return {"a": emb_a, "b": emb_b, "u": noise}, labels


def test_probe_own_label_and_leakage(labelled):
    emb, labels = labelled
    t = metrics.probe(emb, labels, folds=3)
    assert len(t) == 6 and set(t.columns) >= {"accuracy", "macro_f1", "chance", "own"}
    acc = t.set_index(["embedding", "label"])["accuracy"]
    assert acc["a", "a"] > 0.97 and acc["b", "b"] > 0.97
    chance = t.set_index(["embedding", "label"])["chance"]
    for e, lab in [("a", "b"), ("b", "a"), ("u", "a"), ("u", "b")]:  # near chance
        assert abs(acc[e, lab] - chance[e, lab]) < 0.1
    s = metrics.leakage_summary(t)
    assert s["own_accuracy"] > 0.97 and s["own_f1"] > 0.97
    assert abs(s["leakage"]) < 0.1


def test_probe_detects_leak(labelled):
    emb, labels = labelled
    leaky = {"a": np.c_[emb["a"], emb["b"]], "b": emb["b"]}  # token a also carries b
    s = metrics.leakage_summary(metrics.probe(leaky, labels, folds=3))
    assert s["leakage"] > 0.4


def test_probe_seeded_and_bad_input(labelled):
    emb, labels = labelled
    t1 = metrics.probe(emb, labels, folds=3, seed=1)
    t2 = metrics.probe(emb, labels, folds=3, seed=1)
    pd.testing.assert_frame_equal(t1, t2)
    with pytest.raises(ValueError, match="rows"):
        metrics.probe({"a": emb["a"][:10]}, labels)
    with pytest.raises(ValueError, match="one class"):
        metrics.probe(emb, labels.assign(a="same"))
    with pytest.raises(ValueError, match="No embeddings"):
        metrics.probe({}, labels)


def test_cluster_consistency(labelled):
    emb, labels = labelled
    good = metrics.cluster_consistency(emb["a"], labels["a"])
    bad = metrics.cluster_consistency(emb["u"], labels["a"])
    assert good["nmi"] > 0.9 and good["ari"] > 0.9
    assert bad["nmi"] < 0.05 and abs(bad["ari"]) < 0.05


def test_per_cell_pearson_and_mse():
    real = np.array([[1.0, 2, 3], [1, 0, 1], [2, 2, 2]])
    gen = np.array([[2.0, 4, 6], [0, 1, 0], [1, 2, 3]])
    r = metrics.per_cell_pearson(real, gen)
    np.testing.assert_allclose(r[:2], [1.0, -1.0])
    assert np.isnan(r[2])  # constant real row
    np.testing.assert_allclose(metrics.per_cell_mse(real, gen), [14 / 3, 1.0, 2 / 3])
    with pytest.raises(ValueError, match="one shape"):
        metrics.per_cell_pearson(real, gen[:2])


def test_cluster_agreement():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 20)) * 5
    lab = rng.integers(0, 4, 400)
    real = centers[lab] + rng.normal(size=(400, 20))
    same = metrics.cluster_agreement(real, real + rng.normal(size=real.shape) * 0.1,
                                     n_clusters=4)
    shuffled = metrics.cluster_agreement(real, real[rng.permutation(400)], n_clusters=4)
    assert same["ari"] > 0.95 and same["nmi"] > 0.95
    assert abs(shuffled["ari"]) < 0.05


def test_marker_overlap():
    rng = np.random.default_rng(0)
    n, g = 300, 80
    groups = np.repeat(["A", "B", "C"], n // 3)
    real = rng.normal(size=(n, g))
    for i, grp in enumerate("ABC"):  # 10 marker genes per group
        real[groups == grp, i * 10:(i + 1) * 10] += 3
    genes = [f"g{j}" for j in range(g)]
    copy = metrics.marker_overlap(real, real + rng.normal(size=real.shape) * 0.1, groups,
                                  genes=genes, n_top=10)
    assert copy["mean"] == pytest.approx(1.0)
    noise = metrics.marker_overlap(real, rng.normal(size=real.shape), groups, n_top=10)
    assert noise["mean"] < 0.4  # chance overlap of 10 of 80 genes is 10/80
    with pytest.raises(ValueError, match="two or more groups"):
        metrics.marker_overlap(real, real, np.repeat("A", n))


def test_group_change_correlation_auroc():
    change = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    m = metrics.group_mean_change(change, ["t1", "t1", "t2"], order=["t2", "t1", "t3"])
    assert list(m.index) == ["t2", "t1"]
    np.testing.assert_allclose(m.to_numpy(), [[0, 2], [2, 0]])
    true = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert metrics.change_correlation(m, true) == pytest.approx(1.0)
    assert metrics.change_correlation(-m.to_numpy(), true) == pytest.approx(-1.0)
    assert metrics.change_correlation(np.zeros((2, 2)), true) == 0.0  # no-change foil
    assert metrics.responsive_auroc(m, true, threshold=0.5) == pytest.approx(1.0)
    assert metrics.responsive_auroc(-m.to_numpy(), true, threshold=0.5) == 1.0  # sizes only
    assert metrics.responsive_auroc(np.array([[2.0, 0], [0, 2]]), true, threshold=.5) == 0.0
    assert np.isnan(metrics.responsive_auroc(m, np.zeros((2, 2))))


def test_energy_distance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 10))
    same = metrics.energy_distance(x, rng.normal(size=(500, 10)), n_pcs=None)
    shifted = metrics.energy_distance(x, rng.normal(size=(500, 10)) + 1.0, n_pcs=None)
    assert 0 <= same < 0.1
    assert shifted > 0.5
    assert metrics.energy_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="same genes"):
        metrics.energy_distance(x, x[:, :3])
