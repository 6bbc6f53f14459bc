"""Brain-aging trend workflow: statistics on toy data with known answers, then the real model."""

from __future__ import annotations

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

matplotlib.use("Agg")

from napari_causcell import pl, tl  # noqa: E402
from napari_causcell.data import ConceptError, DataError, expression  # noqa: E402
from napari_causcell.datasets import PLANTED_AGE_EFFECTS  # noqa: E402


# -- a toy tissue with planted differences ----------------------------------------------------
def _toy(seed: int = 0, n: int = 400) -> ad.AnnData:
    """Two ages x two cell types; gene A triples in T1 at 90wk, gene B drops 4x in T2 at 90wk,
    genes C..F never change. Counts are Poisson around fixed means (1,000 per cell-ish)."""
    rng = np.random.default_rng(seed)
    age = np.array(["4wk", "90wk"])[np.arange(n) % 2]
    ctype = np.array(["T1", "T2"])[(np.arange(n) // 2) % 2]
    base = np.array([6.0, 6.0, 200.0, 200.0, 300.0, 300.0])
    mu = np.tile(base, (n, 1))
    mu[(age == "90wk") & (ctype == "T1"), 0] *= 3.0
    mu[(age == "90wk") & (ctype == "T2"), 1] /= 4.0
    counts = rng.poisson(mu).astype(np.float32)
    obs = pd.DataFrame({
        "age": pd.Categorical(age, categories=["4wk", "90wk"]),
        "cell_type": pd.Categorical(ctype),
        "donor": [f"d{(i % 2)}_{(i // 2) % 3}" for i in range(n)],
    }, index=[f"c{i}" for i in range(n)])
    return ad.AnnData(sp.csr_matrix(counts), obs=obs,
                      var=pd.DataFrame(index=list("ABCDEF")))


def _calls(df: pd.DataFrame) -> set:
    sig = df[df["significant"] & (df["cell_type"] != "all")]
    return set(zip(sig["gene"], sig["cell_type"], sig["direction"]))


@pytest.mark.parametrize("test", ["t-test", "wilcoxon"])
def test_direct_trends_finds_exactly_the_planted_differences(test):
    adata = _toy()
    assert tl.direct_trends(adata, source="4wk", targets="90wk", groupby="cell_type",
                            test=test, unit="cells") is None
    df = adata.uns["causcell_direct_trends"]["results"]
    assert set(df["unit"]) == {"cells"} and not df["one_donor"].any()  # 3 donors per age
    assert _calls(df) == {("A", "T1", "up"), ("B", "T2", "down")}
    # effect = difference of mean log-normalised expression, computed by hand
    x = expression(adata, list("ABCDEF")).toarray()
    m = adata.obs["cell_type"].to_numpy() == "T1"
    old = adata.obs["age"].to_numpy() == "90wk"
    row = df[(df["gene"] == "A") & (df["cell_type"] == "T1")].iloc[0]
    assert row["mean_change"] == pytest.approx(x[m & old, 0].mean() - x[m & ~old, 0].mean())
    assert row["n_source"] == row["n_target"] == 100
    assert np.log(3) * 0.8 < row["mean_change"] < np.log(3) * 1.2  # log-scale fold change
    # BH-adjusted p-values are >= raw ones; direction is the sign of the change
    assert (df["padj"] >= df["pvalue"] - 1e-12).all()
    assert ((df["mean_change"] > 0) == (df["direction"] == "up")).all()
    # marginal rows (cell_type == "all") are there, stored in uns with the params
    assert set(df["cell_type"]) == {"T1", "T2", "all"} and len(df) == 3 * 6
    assert adata.uns["causcell_direct_trends"]["params"]["test"] == test


def test_effect_threshold_and_alpha_decide_calls():
    adata = _toy()
    df = tl.direct_trends(adata, "age", "4wk", ["90wk"], "cell_type", min_effect=5.0,
                          copy=True)
    assert not df["significant"].any()  # no effect is that large
    assert (df["padj"] < 0.05).sum() >= 2  # while the p-values still are small
    df0 = tl.direct_trends(adata, "age", "4wk", ["90wk"], "cell_type", min_effect=0.0,
                           alpha=0.999, copy=True)
    assert df0["significant"].sum() > df["significant"].sum()


def test_direct_trends_on_donors_is_a_pseudobulk_welch_contrast():
    """unit='auto' with 3 donors per age: donors are the replicates (pseudobulk means); the
    effect is the difference of donor means, the interval covers it, the planted changes are
    called and nothing else."""
    adata = _toy()
    df = tl.direct_trends(adata, source="4wk", targets="90wk", groupby="cell_type", copy=True)
    assert set(df["unit"]) == {"donors"} and not df["one_donor"].any()
    assert (df["n_donors_source"] == 3).all() and (df["n_donors_target"] == 3).all()
    assert (df["n_models"] == 0).all()
    assert _calls(df) == {("A", "T1", "up"), ("B", "T2", "down")}
    x = expression(adata, list("ABCDEF")).toarray()
    obs = adata.obs
    m = (obs["cell_type"] == "T1").to_numpy()
    means = {a: [x[m & (obs["age"] == a).to_numpy() & (obs["donor"] == d).to_numpy(), 0].mean()
                 for d in sorted(set(obs.loc[obs["age"] == a, "donor"]))]
             for a in ("4wk", "90wk")}
    row = df[(df["gene"] == "A") & (df["cell_type"] == "T1")].iloc[0]
    assert row["mean_change"] == pytest.approx(np.mean(means["90wk"]) - np.mean(means["4wk"]))
    assert row["ci_low"] < row["mean_change"] < row["ci_high"] and row["ci_low"] > 0
    assert (df["ci_low"] <= df["mean_change"]).all() and (df["mean_change"] <= df["ci_high"]).all()
    assert (df["padj"] >= df["pvalue"] - 1e-12).all()
    # a forced donor unit without donors is refused; a forced cell unit is labelled so
    with pytest.raises(DataError, match="donor column"):
        tl.direct_trends(adata, targets="90wk", groupby="cell_type", unit="donors",
                         donor_key=False)
    with pytest.raises(ValueError, match="unit must be"):
        tl.direct_trends(adata, targets="90wk", groupby="cell_type", unit="mice")


def test_direct_trends_one_donor_per_age_is_flagged_and_warned():
    adata = _toy()
    adata.obs["donor"] = np.where(adata.obs["age"] == "4wk", "young", "old")
    with pytest.warns(UserWarning, match="one donor"):
        df = tl.direct_trends(adata, source="4wk", targets="90wk", groupby="cell_type",
                              copy=True)
    assert df["one_donor"].all() and set(df["unit"]) == {"cells"}
    assert (df["n_donors_source"] == 1).all() and (df["n_donors_target"] == 1).all()


class _FakeModel:
    """Stands in for a trained CausCell: its counterfactual adds a known shift per cell type
    (gene g0 +0.5 in T1, g1 -0.3 in T2) plus small noise, so age_trends' statistics can be
    checked without training."""

    is_trained = True
    table_key = None

    def __init__(self, genes, noise=0.05, bias=0.0, model_seed=0, effect=1.0):
        self.genes = list(genes)
        self.concepts = ["age", "cell_type"]
        self.noise = noise
        self.effect = effect
        # a per-model, per-gene error shared by all cells (what differs between training
        # seeds): no number of generated cells averages it away
        self.bias = np.random.default_rng(1000 + model_seed).normal(0.0, bias, len(genes))

        class Space:
            categories = {"age": ["4wk", "24wk", "90wk"], "cell_type": ["T1", "T2"]}

        self.concept_space = Space()

    def counterfactual(self, data, do, seed=0, progress=None, **kwargs):
        rng = np.random.default_rng(seed)
        x = expression(data, self.genes).toarray()
        scale = {"24wk": 0.4, "90wk": 1.0}[do["age"]]
        delta = rng.normal(0.0, self.noise, size=x.shape) + self.bias
        t1 = data.obs["cell_type"].to_numpy() == "T1"
        delta[t1, 0] += 0.5 * scale * self.effect
        delta[~t1, 1] -= 0.3 * scale * self.effect
        out = ad.AnnData(x + delta, obs=data.obs.copy(), var=pd.DataFrame(index=self.genes))
        out.obs["age"] = do["age"]
        out.obs["source_id"] = data.obs_names.astype(str)
        out.layers["factual"] = x
        out.layers["reconstructed"] = x
        out.layers["delta"] = delta
        out.uns["causcell"] = {"do": dict(do)}
        return out


def _toy3() -> ad.AnnData:
    """Three ages x two cell types x three donors per age, genes A..F, no observed trend (the
    fake model plants its own)."""
    adata = _null_toy(n_genes=6, n=900)
    adata.var_names = list("ABCDEF")
    return adata


def test_age_trends_statistics_on_a_known_counterfactual():
    adata = _toy3()
    model = _FakeModel(list("ABCDEF"))
    assert tl.age_trends(model, adata, source="4wk", groupby="cell_type", steps=3) is None
    df = adata.uns["causcell_trends"]["results"]
    assert list(dict.fromkeys(df["target"])) == ["24wk", "90wk"]  # default: all other labels
    assert _calls(df[df["target"] == "90wk"]) == {("A", "T1", "up"), ("B", "T2", "down")}
    # one model, 3 donors per age: the donors' spread is the only uncertainty
    assert set(df["unit"]) == {"donors"} and (df["n_models"] == 1).all()
    assert not df["one_donor"].any() and (df["n_donors_source"] == 3).all()
    row = df[(df["target"] == "90wk") & (df["gene"] == "A") & (df["cell_type"] == "T1")]
    assert row["mean_change"].iloc[0] == pytest.approx(0.5, abs=0.03)
    assert row["mean_target"].iloc[0] == pytest.approx(
        row["mean_source"].iloc[0] + row["mean_change"].iloc[0])
    assert row["ci_low"].iloc[0] < 0.5 < row["ci_high"].iloc[0]
    # the effect is the mean of the per-donor mean changes (donors weigh equally)
    rep = adata.uns["causcell_trends"]["replicates"]
    r = rep[(rep["target"] == "90wk") & (rep["gene"] == "A") & (rep["cell_type"] == "T1")]
    assert len(r) == 3 and row["mean_change"].iloc[0] == pytest.approx(r["mean_delta"].mean())
    # with min_effect above the 24wk shift of B (0.12) it is not called there
    df2 = tl.age_trends(model, adata, source="4wk", groupby="cell_type", min_effect=0.2,
                        copy=True)
    assert ("B", "T2", "down") not in _calls(df2[df2["target"] == "24wk"])
    # stored: results, params, the counterfactuals (AnnData -> uns['causcell'])
    store = adata.uns["causcell_trends"]
    assert store["params"]["counterfactuals"] == {"24wk": "causcell_trends_age_24wk",
                                                  "90wk": "causcell_trends_age_90wk"}
    assert set(adata.uns["causcell"]) == {"causcell_trends_age_24wk", "causcell_trends_age_90wk"}
    pd.testing.assert_frame_equal(store["results"], df)  # copy=True wrote nothing
    # per-cell noise averages out within donors: it does not create calls
    noisy = tl.age_trends(_FakeModel(list("ABCDEF"), noise=20.0), adata, source="4wk",
                          targets="90wk", groupby="cell_type", copy=True)
    assert not noisy.loc[noisy["gene"].isin(list("CDEF")), "significant"].any()



@pytest.mark.parametrize("kind", ["anndata", "spatialdata"])
def test_trends_scverse_convention(kind, caplog):
    """In place by default (None returned, every key written logged); copy=True returns the
    results table and leaves the data untouched."""
    import logging

    adata = _toy3()
    if kind == "spatialdata":
        import spatialdata as sd

        data = sd.SpatialData(tables={"table": adata})
    else:
        data = adata

    def snapshot():
        tables = sorted(data.tables) if kind == "spatialdata" else None
        return sorted(adata.uns), list(adata.obs.columns), tables

    def logged():
        return [r.getMessage() for r in caplog.records if r.name == "napari_causcell.tl"]

    kw = {"source": "4wk", "targets": "90wk", "groupby": "cell_type"}
    before = snapshot()
    with caplog.at_level(logging.INFO, logger="napari_causcell.tl"):
        df = tl.age_trends(_FakeModel(list("ABCDEF")), data, copy=True, **kw)
        direct = tl.direct_trends(data, copy=True, **kw)
    assert isinstance(df, pd.DataFrame) and isinstance(direct, pd.DataFrame) and len(df)
    assert snapshot() == before and not logged()
    with caplog.at_level(logging.INFO, logger="napari_causcell.tl"):
        assert tl.age_trends(_FakeModel(list("ABCDEF")), data, **kw) is None
        assert tl.direct_trends(data, **kw) is None
    pd.testing.assert_frame_equal(adata.uns["causcell_trends"]["results"], df)
    pd.testing.assert_frame_equal(adata.uns["causcell_direct_trends"]["results"], direct)
    cf = ("table 'causcell_trends_age_90wk'" if kind == "spatialdata"
          else "uns['causcell']['causcell_trends_age_90wk']")
    assert logged() == [f"Added {cf}", "Added uns['causcell_trends']",
                        "Added uns['causcell_direct_trends']"]

def _null_toy(n_genes: int = 40, n: int = 1200, donors_per_age: int = 3,
              seed: int = 0) -> ad.AnnData:
    """Three ages x two cell types, donors with a small random offset, no age effect at all."""
    rng = np.random.default_rng(seed)
    ages = np.array(["4wk", "24wk", "90wk"])[np.arange(n) % 3]
    donor_i = (np.arange(n) // 3) % donors_per_age
    donor = np.array([f"{a}_{d}" for a, d in zip(ages, donor_i)])
    ctype = np.array(["T1", "T2"])[(np.arange(n) // (3 * donors_per_age)) % 2]
    base = rng.uniform(5, 200, n_genes)
    offsets = {d: np.exp(rng.normal(0, 0.1, n_genes)) for d in set(donor)}
    mu = np.array([base * offsets[d] for d in donor])
    obs = pd.DataFrame({
        "age": pd.Categorical(ages, categories=["4wk", "24wk", "90wk"]),
        "cell_type": pd.Categorical(ctype), "donor": donor,
    }, index=[f"c{i}" for i in range(n)])
    return ad.AnnData(sp.csr_matrix(rng.poisson(mu).astype(np.float32)), obs=obs,
                      var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))


def test_null_effects_are_not_called_however_many_cells_are_generated():
    """Every model is wrong by its own per-gene error (sd 0.15, shared by all its cells) and
    there is no true effect: the old cell-level test called most of these; with models and
    donors as the replicates, next to none is called."""
    adata = _null_toy()
    genes = list(adata.var_names)
    ensemble = [_FakeModel(genes, noise=0.05, bias=0.15, model_seed=m, effect=0.0)
                for m in range(5)]
    df = tl.age_trends(ensemble, adata, source="4wk", targets="90wk", groupby="cell_type",
                       min_effect=0.0, alpha=0.1, copy=True)
    assert set(df["unit"]) == {"donors+models"} and (df["n_models"] == 5).all()
    assert df["significant"].sum() <= 1  # of 120 null tests
    # the same errors, one model at a time, and cells as replicates: nearly all "significant"
    from scipy import stats

    one = ensemble[0].counterfactual(adata[adata.obs["age"] == "4wk"], {"age": "90wk"})
    p = stats.ttest_1samp(one.layers["delta"], 0.0, axis=0).pvalue
    assert (p < 0.001).mean() > 0.8


def test_planted_effects_are_called_with_intervals_that_cover_them():
    adata = _null_toy(n_genes=12)
    adata.obs_names_make_unique()
    genes = list(adata.var_names)
    rename = {"g0": "A", "g1": "B"}
    adata.var_names = [rename.get(g, g) for g in genes]
    genes = list(adata.var_names)
    ensemble = [_FakeModel(genes, noise=0.05, bias=0.05, model_seed=m) for m in range(5)]
    df = tl.age_trends(ensemble, adata, source="4wk", targets="90wk", groupby="cell_type",
                       alpha=0.1, copy=True)
    assert _calls(df) == {("A", "T1", "up"), ("B", "T2", "down")}
    for gene, ctype, true in (("A", "T1", 0.5), ("B", "T2", -0.3)):
        row = df[(df["gene"] == gene) & (df["cell_type"] == ctype)].iloc[0]
        assert row["ci_low"] < true < row["ci_high"]
        assert row["pvalue"] < 0.01 and row["padj"] < 0.1
    # a wider interval at a higher level
    df99 = tl.age_trends(ensemble, adata, source="4wk", targets="90wk", groupby="cell_type",
                         level=0.99, copy=True)
    assert ((df99["ci_high"] - df99["ci_low"]) > (df["ci_high"] - df["ci_low"])).all()


def test_one_donor_per_age_gives_model_only_effects_without_significance():
    """#28 item 3: one donor per age has no population-level test, however many seeds. The
    rows are effect sizes with model-only intervals (spread over the seeds; one model: its
    per-cell spread), labelled so, p/q NaN and never significant."""
    from napari_causcell.tl._trend_common import MODEL_ONLY

    adata = _null_toy(n_genes=10, donors_per_age=1)
    genes = list(adata.var_names)
    ensemble = [_FakeModel(genes, bias=0.05, model_seed=m) for m in range(4)]
    with pytest.warns(UserWarning, match="one donor.*model-only intervals"):
        df = tl.age_trends(adata, ensemble, source="4wk", targets="90wk", groupby="cell_type",
                           copy=True)
    assert df["one_donor"].all() and set(df["unit"]) == {MODEL_ONLY}
    assert (df["n_donors_source"] == 1).all() and (df["n_donors_target"] == 1).all()
    assert df[["pvalue", "padj", "statistic"]].isna().all().all()
    assert not df["significant"].any()
    assert (df["df"] >= 3.0 - 1e-9).all()  # moderated: >= M - 1
    assert np.isfinite(df["ci_low"]).all() and (df["ci_low"] <= df["mean_change"]).all()
    assert df.attrs["replication"].startswith(MODEL_ONLY)
    assert "spread over 4 models" in df.attrs["replication"]
    # the planted effect (gene 0 in T1: +0.5 at 90wk) is still the effect size
    a = df[(df["gene"] == genes[0]) & (df["cell_type"] == "T1")].iloc[0]
    assert a["mean_change"] == pytest.approx(0.5, abs=0.1)
    # three seeds that agree (no bias) used to call nearly every row; now none
    agree = [_FakeModel(genes, model_seed=m) for m in range(3)]
    with pytest.warns(UserWarning, match="one donor"):
        three = tl.age_trends(adata, agree, source="4wk", targets="90wk",
                              groupby="cell_type", copy=True)
    assert not three["significant"].any() and three["padj"].isna().all()
    # one model and one donor: the interval from its cells' spread of the change
    with pytest.warns(UserWarning, match="one donor") as rec:
        one = tl.age_trends(adata, ensemble[0], source="4wk", targets="90wk",
                            groupby="cell_type", copy=True)
    assert not any("One model:" in str(w.message) for w in rec)  # no p-values to be small
    assert set(one["unit"]) == {MODEL_ONLY} and one["pvalue"].isna().all()
    assert not one["significant"].any() and np.isfinite(one["ci_low"]).all()
    assert "one model: spread of its per-cell changes" in one.attrs["replication"]
    # noise sd 0.05 per cell: se = 0.05 / sqrt(cells), the cells of the group (the 'all'
    # rows of the two planted genes also carry the cell types' different changes)
    same = (one["cell_type"] != "all") | ~one["gene"].isin(genes[:2])
    se_hand = 0.05 / np.sqrt(one.loc[same, "n_source"].to_numpy(float))
    np.testing.assert_allclose(one.loc[same, "se"].to_numpy(float), se_hand, rtol=0.15)
    assert ((one["ci_low"] < one["mean_change"]) & (one["mean_change"] < one["ci_high"])).all()


def test_trend_statistics_by_hand_and_moderation():
    """Two models x two donors, no donor variance given: the model term alone, by hand."""
    rows = []
    for m, shift in enumerate((0.4, 0.6)):
        for d in ("a", "b"):
            for g, extra in (("x", 0.0), ("y", -0.2)):
                rows.append({"model": m, "target": "old", "cell_type": "T", "donor": d,
                             "gene": g, "n_cells": 20, "mean_delta": shift + extra,
                             "mean_factual": 1.0})
    res = tl.trend_statistics(pd.DataFrame(rows), level=0.95)
    row = res[res["gene"] == "x"].iloc[0]
    assert row["mean_change"] == pytest.approx(0.5) and row["unit"] == "models"
    assert row["se"] == pytest.approx(np.std([0.4, 0.6], ddof=1) / np.sqrt(2))
    from scipy import stats

    assert row["ci_high"] == pytest.approx(0.5 + stats.t.ppf(0.975, 1) * row["se"])
    assert row["pvalue"] == pytest.approx(2 * stats.t.sf(0.5 / row["se"], 1))
    # moderation: equal-scale variances give a large prior df and keep the scale
    rng = np.random.default_rng(0)
    s2 = 0.04 * rng.chisquare(3, 2000) / 3
    post, dpost, prior = tl.moderate_variances(s2, np.full(2000, 3.0))
    assert prior["d0"] > 30 and np.median(post) == pytest.approx(0.04, rel=0.1)
    assert (dpost > 30).all()
    # a variance that depends on the mean expression is followed by the trend
    mean = rng.uniform(0, 3, 2000)
    s2t = np.exp(mean) * 0.01 * rng.chisquare(3, 2000) / 3
    post, _, prior = tl.moderate_variances(s2t, np.full(2000, 3.0), mean)
    assert prior["d0"] > 30
    hi, lo = mean > 2.5, mean < 0.5
    assert np.median(post[hi]) > 5 * np.median(post[lo])


def _conservative_replicates(seed: int = 0, n_genes: int = 400, n_true: int = 40):
    """Replicates of 3 models x 2 source donors for ``n_genes`` genes of one group, and a
    donor variance 4x the one that actually moves the effects (an overstated donor term, as
    the observed donors' variance is for the model's pooled effects)."""
    rng = np.random.default_rng(seed)
    true = np.zeros(n_genes)
    true[:n_true] = rng.choice([-0.35, 0.35], n_true)
    shared = rng.normal(0.0, 0.1, n_genes)  # donor sampling, variance 0.01 (c_d = 1)
    rows = []
    for m in range(3):
        eff = true + shared + rng.normal(0.0, 0.05, n_genes)
        for d in ("a", "b"):
            rows.append(pd.DataFrame({
                "model": m, "target": "old", "cell_type": "T", "donor": d,
                "gene": [f"g{j}" for j in range(n_genes)], "n_cells": 50,
                "mean_delta": eff, "mean_factual": 1.0}))
    dv = pd.DataFrame({"cell_type": "T", "gene": [f"g{j}" for j in range(n_genes)],
                       "donor_s2": 0.04 * rng.chisquare(3, n_genes) / 3, "donor_df": 3.0,
                       "donor_cells": 50.0})
    n_target = pd.DataFrame({"target": ["old"], "cell_type": ["T"], "n_donors_target": [2]})
    return pd.concat(rows, ignore_index=True), dv, n_target, true


def test_empirical_null_calibrates_an_overstated_donor_term():
    """The donor term is 4x too large: the theoretical null calls too little, the empirical
    null (Efron) finds the scale (~0.5) from the tests themselves, so the null genes' p-values
    become uniform and more true effects are called."""
    reps, dv, nt, true = _conservative_replicates()
    kw = dict(n_donors_target=nt, alpha=0.1, min_effect=0.0)
    theo = tl.trend_statistics(reps, dv, null="theoretical", **kw)
    emp = tl.trend_statistics(reps, dv, null="empirical", **kw)
    assert theo.attrs["null"] == {"null": "theoretical"}
    # the default ("auto") is the empirical null for an ensemble with donors and 400 tests
    auto = tl.trend_statistics(reps, dv, **kw)
    assert auto.attrs["null"] == emp.attrs["null"] and np.allclose(auto["pvalue"], emp["pvalue"])
    one_model = tl.trend_statistics(reps[reps["model"] == 0], dv, **kw)
    assert one_model.attrs["null"] == {"null": "theoretical"}
    fit = emp.attrs["null"]
    assert fit["null"] == "empirical" and fit["n_tests"] == 400
    assert 0.35 < fit["scale"] < 0.7 and abs(fit["center"]) < 0.2
    null = true == 0.0
    p_theo, p_emp = theo["pvalue"].to_numpy()[null], emp["pvalue"].to_numpy()[null]
    assert (p_theo <= 0.1).mean() < 0.03
    assert 0.04 < (p_emp <= 0.1).mean() < 0.18
    assert emp["significant"].to_numpy()[~null].sum() > theo["significant"].to_numpy()[~null].sum()
    # the interval is rescaled with the same factor, and still covers the estimate
    assert np.allclose(emp["se"], theo["se"] * fit["scale"])
    assert (emp["ci_low"] < emp["mean_change"]).all() and (emp["mean_change"] < emp["ci_high"]).all()
    # effects and everything but the uncertainty are unchanged
    assert np.allclose(emp["mean_change"], theo["mean_change"])


def test_empirical_null_adds_the_donors_shared_offsets():
    """With null='empirical' the counterfactual test also carries the donors' shared
    (gene-level) variance, times 1/D_s + 1/D_t, before the scale is calibrated; the
    helper finds a donor offset that every cell type shares."""
    reps, dv, nt, _ = _conservative_replicates()
    kw = dict(n_donors_target=nt, alpha=0.1, min_effect=0.0)
    theo = tl.trend_statistics(reps, dv, null="theoretical", **kw)
    emp = tl.trend_statistics(reps, dv.assign(shared_s2=0.01, shared_df=3.0), null="empirical",
                              **kw)
    c_d = 1 / 2 + 1 / 2
    shared = tl.moderate_variances(np.full(400, 0.01), np.full(400, 3.0))[0]  # one per gene
    assert np.allclose(emp["se"], emp.attrs["null"]["scale"]
                       * np.sqrt(theo["se"] ** 2 + c_d * shared), rtol=1e-6)
    from napari_causcell.tl._pseudobulk import donor_variance as _donor_variance
    from napari_causcell.tl._pseudobulk import shared_donor_variance as _shared_donor_variance

    rng = np.random.default_rng(0)
    n, genes = 2400, 30
    age = np.array(["young", "old"])[np.arange(n) % 2]
    donor = np.array([f"{a}{i}" for a, i in zip(age, (np.arange(n) // 2) % 3)])
    ctype = np.array(["T1", "T2", "T3"])[(np.arange(n) // 6) % 3]
    offset = {d: rng.normal(0, [0.5] + [0.02] * (genes - 1)) for d in set(donor)}
    x = np.stack([offset[d] for d in donor]) + rng.normal(0, 0.3, (n, genes))
    obs = pd.DataFrame({"cell_type": ctype})
    dvar = _donor_variance(x, obs, age, donor, ["cell_type"], True, 5)
    s2, dfree = _shared_donor_variance(dvar, genes)
    assert dfree == 4.0  # 3 donors at each of 2 ages
    assert 0.05 < s2[0] < 0.8 and s2[0] > 20 * np.median(s2[1:])
    one_group = _donor_variance(x, obs[[]], age, donor, [], True, 5)
    assert np.isnan(_shared_donor_variance(one_group, genes)[0]).all()


def test_empirical_null_bad_inputs():
    reps, dv, nt, _ = _conservative_replicates(n_genes=150)
    with pytest.raises(DataError, match="at least 200 defined tests; this call has 150"):
        tl.trend_statistics(reps, dv, n_donors_target=nt, null="empirical")
    with pytest.raises(ValueError, match="null must be one of"):
        tl.trend_statistics(reps, dv, null="bayes")
    with pytest.raises(DataError, match="at least 200"):
        tl.empirical_null(np.array([1.0, np.nan, 2.0]), np.array([3.0, 3.0, 3.0]))
    adata = _toy()
    with pytest.raises(ValueError, match="null must be one of"):
        tl.direct_trends(adata, targets="90wk", groupby="cell_type", null="locfdr")
    with pytest.raises(ValueError, match="'theoretical' \\(default\\) or 'empirical'"):
        tl.direct_trends(adata, targets="90wk", groupby="cell_type", null="auto")
    with pytest.raises(ValueError, match="use test='t-test'"):
        tl.direct_trends(adata, targets="90wk", groupby="cell_type", unit="cells",
                         test="wilcoxon", null="empirical")
    with pytest.raises(DataError, match="at least 200 defined tests"):  # 6 genes x 3 groups
        tl.direct_trends(adata, targets="90wk", groupby="cell_type", null="empirical")
    with pytest.raises(ValueError, match="null must be one of"):
        tl.age_trends(_FakeModel(list("ABCDEF")), _toy3(), groupby="cell_type", null="x")


def test_pseudobulk_means_equal_a_loop_over_donors():
    """Donor means through scanpy.get.aggregate equal the plain loop they replaced."""
    from napari_causcell.tl._pseudobulk import donor_variance, pseudobulk

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 4))
    keys = np.stack([rng.integers(0, 3, 300), rng.integers(0, 5, 300)], 1)
    uniq, (means,), counts = pseudobulk([x], keys)
    for k, m, n in zip(uniq, means, counts):
        rows = (keys == k).all(1)
        assert n == rows.sum()
        np.testing.assert_allclose(m, x[rows].mean(0), rtol=1e-12)
    obs = pd.DataFrame({"cell_type": np.array(["T1", "T2"])[keys[:, 0] % 2]})
    labels = np.array(["old", "young"])[rng.integers(0, 2, 300)]
    donors = np.array([f"d{i}" for i in keys[:, 1]])
    dvar = donor_variance(x, obs, labels, donors, ["cell_type"], True, 5)
    v = dvar[("T1",)]
    for lab in ("old", "young"):
        loop = [x[(obs["cell_type"] == "T1").to_numpy() & (labels == lab) & (donors == d)]
                for d in sorted(set(donors))]
        loop = np.array([c.mean(0) for c in loop if len(c) >= 5])
        np.testing.assert_allclose(v["means"][lab], loop, rtol=1e-12)
    pooled = sum(((m - m.mean(0)) ** 2).sum(0) for m in v["means"].values())
    np.testing.assert_allclose(v["s2"], pooled / v["df"], rtol=1e-12)


def test_age_trends_with_an_empirical_null_records_its_fit():
    adata = _null_toy(n_genes=80)  # 80 genes x (2 types + all) = 240 tests
    genes = list(adata.var_names)
    ensemble = [_FakeModel(genes, noise=0.05, bias=0.15, model_seed=m, effect=0.0)
                for m in range(3)]
    tl.age_trends(ensemble, adata, source="4wk", targets="90wk", groupby="cell_type",
                  null="empirical", store_counterfactuals=False)
    params = adata.uns["causcell_trends"]["params"]
    assert params["null"] == "empirical" and params["null_tests"] == 240
    assert params["null_scale"] > 0 and np.isfinite(params["null_center"])
    tl.direct_trends(adata, source="4wk", targets="90wk", groupby="cell_type")
    assert adata.uns["causcell_direct_trends"]["params"]["null"] == "theoretical"


def test_compare_trends_counts_k_of_n():
    adata = _toy3()
    df = tl.age_trends(_FakeModel(list("ABCDEF")), adata, source="4wk", groupby="cell_type",
                       copy=True)
    ref = pd.DataFrame({"gene": ["A", "B", "C", "A", "Z"],
                        "cell_type": ["T1", "T2", "T1", "T2", "T1"],
                        "direction": ["up", "down", "up", "up", "up"]})
    cmp = tl.compare_trends(df, ref)
    assert (cmp.k, cmp.n, cmp.wrong_direction, cmp.target) == (2, 5, 0, "90wk")
    assert list(cmp.table["recovered"]) == [True, True, False, False, False]
    assert list(cmp.table["tested"]) == [True, True, True, True, False]  # Z is not a gene
    # A/T1, B/T2 and the marginal rows (cell_type all) that are significant
    assert cmp.n_significant == int(df.loc[df["target"] == "90wk", "significant"].sum()) >= 2
    assert "2 of 5" in str(cmp)
    # a wrong expected direction counts as wrong, not recovered
    wrong = tl.compare_trends(df, ref.assign(direction=["down", "down", "up", "up", "up"]))
    assert (wrong.k, wrong.wrong_direction) == (1, 1)
    # a reference without cell type matches the marginal ("all") rows
    marg = tl.compare_trends(df, pd.DataFrame({"gene": ["A"], "direction": ["up"]}),
                             target="24wk")
    assert marg.table["tested"].iloc[0]
    with pytest.raises(DataError, match="direction"):
        tl.compare_trends(df, ref.drop(columns="direction"))
    with pytest.raises(DataError, match="'up' or 'down'"):
        tl.compare_trends(df, ref.assign(direction="rising"))
    with pytest.raises(DataError, match="Target"):
        tl.compare_trends(df, ref, target="12wk")
    with pytest.raises(DataError, match="groups by 'domain'"):
        tl.compare_trends(df, ref.assign(domain="Striatum"))


def test_bad_inputs_give_clear_errors():
    adata = _toy3()
    model = _FakeModel(list("ABCDEF"))
    with pytest.raises(ConceptError, match="Unknown concept"):
        tl.age_trends(model, adata, concept="time", groupby="cell_type")
    with pytest.raises(ConceptError, match="Unknown age label '12wk'"):
        tl.age_trends(model, adata, source="12wk", groupby="cell_type")
    with pytest.raises(ConceptError, match="Unknown age label"):
        tl.age_trends(model, adata, targets=["90wk", "1y"], groupby="cell_type")
    with pytest.raises(ConceptError, match="equals the source"):
        tl.age_trends(model, adata, source="4wk", targets="4wk", groupby="cell_type")
    with pytest.raises(DataError, match="tl.spatial_domains"):
        tl.age_trends(model, adata, groupby=["cell_type", "domain"])
    with pytest.raises(DataError, match="No cells with age='4wk' among the chosen"):
        tl.age_trends(model, adata, groupby="cell_type", cells={"age": "90wk"})
    with pytest.raises(DataError, match="No group has 1000"):
        tl.age_trends(model, adata, groupby="cell_type", min_cells=1000)
    with pytest.raises(DataError, match="not modelled"):
        tl.age_trends(model, adata, groupby="cell_type", genes=["A", "Nope"])
    with pytest.raises(ValueError, match="test must be"):
        tl.age_trends(model, adata, groupby="cell_type", test="anova")
    no_source = adata[adata.obs["age"] != "4wk"].copy()
    with pytest.raises(DataError, match="No cells with age='4wk'"):
        tl.age_trends(model, no_source, groupby="cell_type")
    with pytest.raises(ConceptError, match="Unknown age label '24wk'"):  # no such cells
        tl.direct_trends(adata[adata.obs["age"] != "24wk"].copy(), targets="24wk",
                         groupby="cell_type")
    with pytest.raises(ConceptError, match="equals the source"):
        tl.direct_trends(adata, targets="4wk", groupby="cell_type")
    untrained = _FakeModel(list("ABCDEF"))
    untrained.is_trained = False
    with pytest.raises(RuntimeError, match="Train"):
        tl.age_trends(untrained, adata, groupby="cell_type")


def test_subsample_donors_by_cell_count():
    obs = pd.DataFrame({
        "age": ["4wk"] * 9 + ["90wk"] * 6,
        "mouse": ["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"] * 1 + ["e"] * 2 + ["f"] * 3,
    }, index=[f"c{i}" for i in range(15)])
    adata = ad.AnnData(np.ones((15, 2), np.float32), obs=obs)
    high = tl.subsample_donors(adata, per_age=2)
    assert high.uns["causcell_subsample"]["donors"] == {"4wk": ["a", "b"], "90wk": ["e", "f"]}
    assert high.n_obs == 4 + 3 + 2 + 3
    low = tl.subsample_donors(adata, per_age=2, which="lowest", donor_key="mouse")
    assert low.uns["causcell_subsample"]["donors"] == {"4wk": ["b", "c"], "90wk": ["d", "e"]}
    r1 = tl.subsample_donors(adata, per_age=1, by="random", seed=3)
    r2 = tl.subsample_donors(adata, per_age=1, by="random", seed=3)
    assert r1.uns["causcell_subsample"]["donors"] == r2.uns["causcell_subsample"]["donors"]
    with pytest.raises(DataError, match="fewer than per_age=4"):
        tl.subsample_donors(adata, per_age=4)
    with pytest.raises(DataError, match="donor_key"):
        tl.subsample_donors(ad.AnnData(np.ones((2, 1)), obs=pd.DataFrame(
            {"age": ["4wk", "90wk"]}, index=["x", "y"])))
    with pytest.raises(ValueError, match="which"):
        tl.subsample_donors(adata, which="middle")


# -- with the trained model of conftest.py ------------------------------------------------------
@pytest.fixture(scope="module")
def trends(trained, small_sdata):
    """age_trends 4wk -> 24wk, 90wk on a copy of the small tissue (shared by the tests)."""
    import copy

    sdata = copy.deepcopy(small_sdata)
    tl.age_trends(trained, sdata, source="4wk", targets=["24wk", "90wk"], steps=5, seed=0,
                  min_cells=5)
    return sdata, sdata.tables["table"].uns["causcell_trends"]["results"]


def test_age_trends_with_the_model(trained, trends):
    sdata, df = trends
    table = sdata.tables["table"]
    # counterfactual tables written into the SpatialData, result in uns
    assert {"causcell_trends_age_24wk", "causcell_trends_age_90wk"} <= set(sdata.tables)
    store = table.uns["causcell_trends"]
    assert store["params"]["source"] == "4wk" and store["params"]["groupby"] == [
        "cell_type", "domain"]
    # mean change per cell type = the mean over the source mice of the stored paired delta of
    # their cells that stay oligodendrocytes (cells switched by the label SCM left out)
    cf = sdata.tables["causcell_trends_age_90wk"]
    gene = "C4b"
    j = list(cf.var_names).index(gene)
    stay = (cf.obs["cell_type"].astype(str) == cf.obs["factual_cell_type"].astype(str)
            if "factual_cell_type" in cf.obs else np.ones(cf.n_obs, bool))
    m = (cf.obs["cell_type"].astype(str).to_numpy() == "Oligo") & np.asarray(stay)
    delta = np.asarray(cf.layers["delta"])[:, j]
    mice = cf.obs["mouse"].astype(str).to_numpy()
    per_mouse = [delta[m & (mice == d)].mean() for d in sorted(set(mice[m]))
                 if (m & (mice == d)).sum() >= 5]
    row = df[(df["target"] == "90wk") & (df["cell_type"] == "Oligo") & (df["domain"] == "all")
             & (df["gene"] == gene)].iloc[0]
    assert row["mean_change"] == pytest.approx(np.mean(per_mouse), rel=1e-4)
    assert row["n_source"] == m.sum() and row["n_donors_source"] == len(per_mouse) == 2
    assert row["unit"] == "donors" and row["n_models"] == 1 and not row["one_donor"]
    assert row["ci_low"] <= row["mean_change"] <= row["ci_high"]
    # every kept group has >= min_cells cells; significance follows its definition
    assert (df["n_source"] >= 5).all()
    expect = (df["padj"] < 0.05) & (df["mean_change"].abs() >= 0.1)
    assert (df["significant"] == expect).all()
    assert len(df) % len(trained.genes) == 0
    cmp = tl.compare_trends(df, PLANTED_AGE_EFFECTS[["gene", "cell_type", "direction"]])
    assert cmp.n == 15 and 0 <= cmp.k <= 15


def test_trend_plots(trends):
    sdata, df = trends
    fig = pl.age_trends(sdata, genes=["C4b", "Gpc5"], cell_types=["Astro", "Oligo", "Endo"])
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(axes) == 6 and axes[0].get_title() == "C4b in Astro"
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["4wk", "24wk", "90wk"]
    # the means written above the boxes: observed 4wk Astro C4b first
    table = sdata.tables["table"]
    cf = sdata.tables["causcell_trends_age_90wk"]
    x = expression(table, list(cf.var_names)).toarray()[:, list(cf.var_names).index("C4b")]
    m = ((table.obs["age"] == "4wk") & (table.obs["cell_type"] == "Astro")).to_numpy()
    assert axes[0].texts[0].get_text() == f"{x[m].mean():.2f}"
    mat = tl.trend_matrix(df)
    if mat.shape[1]:
        heat = pl.age_trends(sdata, kind="heatmap")
        img = heat.axes[0].images[0].get_array()
        assert img.shape[0] <= mat.shape[0] and img.shape[1] == min(30, mat.shape[1])
    else:  # a briefly trained model may have no significant trend at all
        with pytest.raises(DataError, match="No significant trend"):
            pl.age_trends(sdata, kind="heatmap")
    ax = pl.spatial_trend(sdata, "C4b", target="90wk")
    delta = np.asarray(cf.layers["delta"])[:, list(cf.var_names).index("C4b")]
    np.testing.assert_allclose(ax.collections[1].get_array(), delta)
    with pytest.raises(DataError, match="gene and one cell type"):
        pl.age_trends(sdata, genes=[], cell_types=["Astro"])
    with pytest.raises(DataError, match="Unknown cell types"):
        pl.age_trends(sdata, genes=["C4b"], cell_types=["Neuron"])
    with pytest.raises(DataError, match="run tl.age_trends"):
        pl.spatial_trend(sdata, "C4b", key="nothing_here")
    import matplotlib.pyplot as plt

    plt.close("all")


def test_app_age_trends_and_domains_per_slice(trained, sdata):
    from napari_causcell.app import AppState, cells, intervene, trends

    s = AppState(sdata)
    s.set_model(trained)
    iv = s.add_intervention(intervene.compute_intervention(
        s, {"age": "90wk"}, cells.select(s, "label", "4wk", column="age"), steps=3))
    df = trends.age_trends(s, "4wk", ["90wk"], steps=5, min_cells=5)
    assert sdata.tables[iv.key] is iv.table  # the trends' counterfactual has its own key
    assert "causcell_trends_age_90wk" in sdata.tables
    assert list(df.columns[:4]) == ["method", "target", "cell_type", "domain"]
    assert set(df["target"]) == {"90wk"}
    with pytest.raises(DataError, match="equals the source"):
        trends.age_trends(s, "4wk", "4wk")
    table = sdata.tables["table"]
    tab = tl.domains_per_slice(sdata, slice_key="mouse")
    assert tab.to_numpy().sum() == table.n_obs
    assert set(tab.columns) == set(table.obs["mouse"].astype(str))


def test_trend_plots_show_intervals_and_mark_one_donor():
    adata = _null_toy(n_genes=6, n=900, donors_per_age=1)
    adata.var_names = list("ABCDEF")
    ensemble = [_FakeModel(list("ABCDEF"), bias=0.02, model_seed=m) for m in range(4)]
    with pytest.warns(UserWarning, match="one donor"):
        tl.age_trends(ensemble, adata, source="4wk", targets="90wk", groupby="cell_type")
    df = adata.uns["causcell_trends"]["results"]
    assert df["one_donor"].all() and not df["significant"].any()  # #28 item 3: no test
    fig = pl.age_trends(adata, genes=["A"], cell_types=["T1", "T2"])
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert axes[0].get_title() == "A in T1 (1 donor/age)"
    row = df[(df["gene"] == "A") & (df["cell_type"] == "T1")].iloc[0]
    bars = axes[0].containers  # the errorbar: estimate and interval at the 90wk box
    assert len(bars) == 1
    y = bars[0].lines[0].get_ydata()[0]
    assert y == pytest.approx(row["mean_source"] + row["mean_change"])
    seg = bars[0].lines[2][0].get_segments()[0]
    assert seg[0][1] == pytest.approx(row["mean_source"] + row["ci_low"])
    assert seg[1][1] == pytest.approx(row["mean_source"] + row["ci_high"])
    # no donor replication: effect sizes with model-only intervals, no significance marks,
    # and the title says why (it used to raise "No significant trend")
    heat = pl.trend_heatmap(df)
    ax = heat.axes[0]
    assert ax.get_title().startswith("mean_change at 90wk:")
    assert "model-only intervals (no donor replication" in ax.get_title()
    assert "no significance test" in ax.get_title()
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 12 and all(".." in t and "*" not in t for t in texts)  # 6 genes x 2
    img = ax.images[0].get_array()
    assert img.shape == (2, 6) and not np.ma.getmaskarray(img).any()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert img[rows.index("T1"), labels.index("A")] == pytest.approx(row["mean_change"])
    import matplotlib.pyplot as plt

    plt.close("all")


def test_train_ensemble_with_the_real_tissue_flags_one_donor(small_sdata):
    """Two tiny models on the shipped real data (one mouse per age): an ensemble whose
    trends carry model-uncertainty intervals and the one-donor flag everywhere."""
    from napari_causcell.datasets import merfish_brain_aging

    sdata = merfish_brain_aging()
    models = tl.train_ensemble(sdata, ["age", "domain", "cell_type"],
                               [("age", "cell_type"), ("domain", "cell_type")], n_models=2,
                               max_epochs=2, width=32, hidden=64, max_genes=200)
    assert [m.seed for m in models] == [0, 1] and all(m.is_trained for m in models)
    with pytest.warns(UserWarning, match="one donor"):
        df = tl.age_trends(models, sdata, source="young", targets="old", groupby="cell_type",
                           marginal=False, genes=["C4b", "Gfap", "B2m", "H2-K1"], copy=True)
    assert df["one_donor"].all() and set(df["unit"]) == {tl._trend_common.MODEL_ONLY}
    assert (df["n_models"] == 2).all() and np.isfinite(df["ci_low"]).all()
    assert df["padj"].isna().all() and not df["significant"].any()
    with pytest.raises(ValueError, match="n_models"):
        tl.train_ensemble(sdata, ["age"], n_models=0)
