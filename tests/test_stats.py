"""napari_causcell.stats against numbers computed independently: formulas worked by hand,
statsmodels, scipy, and published worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special, stats

from napari_causcell import stats as cs

# Welch's t-test, worked examples 1 and 2 of the Wikipedia article "Welch's t-test"
# (published: t = -2.46, df = 25.0, p = 0.021; t = -1.57, df = 9.9, p = 0.149)
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
B1 = [17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8]
B2 = [21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8, 20.7, 21.7, 21.5, 22.5,
      23.6, 21.5, 22.5, 23.5, 21.5, 21.8]


def _col(x) -> np.ndarray:
    return np.asarray(x, float)[:, None]


# -- t-tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b", "t", "df", "p"), [(A1, A2, -2.46, 25.0, 0.021),
                                                     (B1, B2, -1.57, 9.9, 0.149)])
def test_welch_reproduces_the_published_worked_examples(a, b, t, df, p):
    change, var, dfree = cs.welch(_col(a), _col(b))
    se, lo, hi, stat, pval = cs.t_interval(change, var, dfree, 0.95)
    assert stat[0] == pytest.approx(t, abs=0.005)
    assert dfree[0] == pytest.approx(df, abs=0.05)
    assert pval[0] == pytest.approx(p, abs=0.0005)
    # and scipy's Welch test, to full precision
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert (stat[0], dfree[0], pval[0]) == pytest.approx((ref.statistic, ref.df, ref.pvalue),
                                                         rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert (lo[0], hi[0]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert cs.two_sample(_col(a), _col(b), "t-test")[1][0] == pytest.approx(ref.pvalue)


def test_t_interval_is_the_one_sample_t_test():
    x = np.array([0.3, -0.1, 0.8, 0.45, 0.2, 0.6])
    n = len(x)
    se, lo, hi, stat, p = cs.t_interval(np.array([x.mean()]), np.array([x.var(ddof=1) / n]),
                                        np.array([n - 1.0]), 0.9)
    ref = stats.ttest_1samp(x, 0.0)
    assert (stat[0], p[0]) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12)
    assert (lo[0], hi[0]) == pytest.approx(stats.t.interval(0.9, n - 1, x.mean(), stats.sem(x)))
    # differs from scipy (NaN) on purpose: no spread and no effect says nothing (p = 1),
    # no spread and an effect is certain (p = 0)
    _, lo0, _, stat0, p0 = cs.t_interval(np.array([0.0, 0.5]), np.zeros(2), np.full(2, 3.0),
                                         0.95)
    assert np.isnan(stat0).all() and list(p0) == [1.0, 0.0] and list(lo0) == [0.0, 0.5]


def test_mann_whitney_u_counts_pairs():
    a = np.array([[1.1, 5.0], [2.5, 5.0], [3.7, 5.0], [0.4, 5.0]])
    b = np.array([[0.2, 5.0], [1.1, 5.0], [0.9, 5.0]])
    stat, p = cs.two_sample(a, b, "wilcoxon")
    # U of a: pairs with a > b, ties counted one half (here 9 wins and one tie)
    u = sum((x > y) + 0.5 * (x == y) for x in a[:, 0] for y in b[:, 0])
    assert u == 9.5 and stat[0] == u
    assert p[0] == pytest.approx(stats.mannwhitneyu(a[:, 0], b[:, 0]).pvalue)
    # differs from scipy (U = 6, p = 1) on purpose: one value everywhere is no test at all
    assert np.isnan(stat[1]) and p[1] == 1.0


# -- moderated variances (limma's squeezeVar, Smyth 2004) ----------------------------------------
S2 = np.array([0.05, 0.2, 1.0, 3.0, 0.5, 8.0, 0.1, 2.0, 0.7])
DF = 4.0


def _trigamma_inverse_by_root(x: float) -> float:
    return optimize.brentq(lambda y: special.polygamma(1, y) - x, 1e-8, 1e8, xtol=1e-14)


def test_trigamma_inverse_against_a_root_finder():
    for x in (0.05, 0.8, 2.25, 40.0):
        assert cs.trigamma_inverse(x) == pytest.approx(_trigamma_inverse_by_root(x), rel=1e-7)


def test_moderate_variances_is_squeezevar_by_hand():
    """Smyth (2004), section 6.2: z = log s2, e = z - digamma(d/2) + log(d/2); the prior's
    d0 solves trigamma(d0/2) = var(e) - trigamma(d/2), its s0^2 = exp(mean(e) + digamma(d0/2)
    - log(d0/2)); posterior (d0 s0^2 + d s2) / (d0 + d) on d0 + d degrees of freedom."""
    e = np.log(S2) - special.digamma(DF / 2) + np.log(DF / 2)
    evar = e.var(ddof=1) - special.polygamma(1, DF / 2)
    d0 = 2 * _trigamma_inverse_by_root(evar)
    s0 = np.exp(e.mean() + special.digamma(d0 / 2) - np.log(d0 / 2))
    post_ref = (d0 * s0 + DF * S2) / (d0 + DF)
    assert evar == pytest.approx(2.058861, abs=1e-6)  # this example's numbers, by hand
    assert (d0, s0) == pytest.approx((1.720007, 0.420063), abs=1e-6)
    assert post_ref[[0, 5]] == pytest.approx([0.161278, 5.720712], abs=1e-6)
    post, dpost, prior = cs.moderate_variances(S2, np.full(len(S2), DF))
    assert prior["d0"] == pytest.approx(d0, rel=1e-7) and prior["s0"] == pytest.approx(s0)
    np.testing.assert_allclose(post, post_ref, rtol=1e-7)
    np.testing.assert_allclose(dpost, DF + d0, rtol=1e-7)


def test_moderate_variances_without_spread_takes_the_prior():
    """var(e) below trigamma(d/2): the sample variances spread no more than chance, so
    d0 = Inf and every posterior is the prior s0^2 = exp(mean(e)) (limma's squeezeVar)."""
    s2 = np.array([0.9, 1.0, 1.1, 1.05, 0.95, 1.0])
    e = np.log(s2) - special.digamma(DF / 2) + np.log(DF / 2)
    post, dpost, prior = cs.moderate_variances(s2, np.full(len(s2), DF))
    assert prior["d0"] == np.inf
    np.testing.assert_allclose(post, np.exp(e.mean()), rtol=1e-12)
    # differs from limma (Inf) on purpose: a finite number that t-distributions accept
    assert (dpost == 1e6).all()


def test_moderate_variances_with_a_trend_by_hand():
    """With a covariate the prior follows a trend in it: e fitted by least squares on 1, c,
    c^2 (numpy's polyfit here), var(e) from the residuals on n - 3 degrees of freedom."""
    rng = np.random.default_rng(3)
    c = rng.uniform(0.0, 3.0, 60)
    s2 = np.exp(c + rng.normal(0.0, 1.0, 60)) * 0.05 * rng.chisquare(3, 60) / 3
    e = np.log(s2) - special.digamma(1.5) + np.log(1.5)
    fitted = np.polyval(np.polyfit(c, e, 2), c)
    evar = np.sum((e - fitted) ** 2) / (60 - 3) - special.polygamma(1, 1.5)
    d0 = 2 * _trigamma_inverse_by_root(evar)
    s0 = np.exp(fitted + special.digamma(d0 / 2) - np.log(d0 / 2))
    # differs from limma (a natural spline in the covariate) on purpose: a quadratic trend
    post, _, prior = cs.moderate_variances(s2, np.full(60, 3.0), c)
    assert prior["d0"] == pytest.approx(d0, rel=1e-6)
    np.testing.assert_allclose(post, (d0 * s0 + 3.0 * s2) / (d0 + 3.0), rtol=1e-6)
    # too few tests for the trend's 5 coefficients (3 each): the variances come back as given
    same, df_same, none = cs.moderate_variances(s2[:14], np.full(14, 3.0), c[:14], c[:14] + 5)
    assert none["d0"] == 0.0 and (same == s2[:14]).all() and (df_same == 3.0).all()


# -- the empirical null (Efron 2004, 2007) ------------------------------------------------------
def test_empirical_null_against_statsmodels():
    from statsmodels.stats.multitest import NullDistribution

    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0.1, 0.8, 900), rng.normal(3.0, 1.0, 100)])
    dfree = np.full(z.size, 8.0)
    t = stats.t.isf(stats.norm.sf(z), dfree)  # t statistics with z's tail probabilities
    fit = cs.empirical_null(t, dfree)
    # the central interval by hand: median -/+ b * IQR / 1.349, b = 4.3 exp(-0.26 log10 N)
    zz = stats.norm.ppf(stats.t.cdf(t, dfree))
    q1, q3 = np.percentile(zz, [25, 75])
    b = 4.3 * np.exp(-0.26 * np.log10(zz.size))
    lo, hi = np.median(zz) - b * (q3 - q1) / 1.349, np.median(zz) + b * (q3 - q1) / 1.349
    ref = NullDistribution(zz, null_lb=lo, null_ub=hi, estimate_null_proportion=True)
    # statsmodels also fits the null proportion p0; with p0 < 1 its (mean, sd) maximiser is
    # the truncated-normal one fitted here (the binomial term is then maximised by p0 alone)
    assert 0.85 < ref.null_proportion < 0.99
    assert fit["center"] == pytest.approx(ref.mean, abs=2e-3)  # 0.118 here
    assert fit["scale"] == pytest.approx(ref.sd, abs=2e-3)  # 0.795 here (true 0.8)
    assert fit["n_tests"] == 1000
    with pytest.raises(ValueError, match="at least 200 defined tests; this call has 3"):
        cs.empirical_null([1.0, 2.0, np.nan, 0.5], [3.0, 3.0, 3.0, 3.0])


def test_empirical_null_of_theoretical_nulls_is_standard():
    rng = np.random.default_rng(1)
    dfree = rng.integers(3, 30, 20_000).astype(float)
    fit = cs.empirical_null(rng.standard_t(dfree), dfree)
    assert fit["center"] == pytest.approx(0.0, abs=0.03)
    assert fit["scale"] == pytest.approx(1.0, abs=0.03)


# -- pooled variance, jackknife, combined components ---------------------------------------------
def test_pooled_variance_is_the_textbook_pooled_estimate():
    rng = np.random.default_rng(2)
    samples = [rng.normal(size=(n, 3)) for n in (4, 2, 7, 1)]
    s2, dfree = cs.pooled_variance(samples, 3)
    used = [x for x in samples if len(x) >= 2]
    ref = sum((len(x) - 1) * x.var(0, ddof=1) for x in used) / sum(len(x) - 1 for x in used)
    assert dfree == 3 + 1 + 6
    np.testing.assert_allclose(s2, ref, rtol=1e-12)
    nothing, df0 = cs.pooled_variance([samples[3]], 3)
    assert df0 == 0 and np.isnan(nothing).all()


def test_jackknife_variance_of_a_mean_is_s2_over_n():
    """Efron & Tibshirani (1993), ch. 11: for the mean, the delete-one jackknife variance
    (n - 1) / n * sum (mean_(i) - mean_(.))^2 equals s^2 / n exactly."""
    x = np.array([[2.0, 0.1], [4.5, -0.3], [3.1, 0.8], [6.0, 0.2], [1.7, 0.0]])
    n = len(x)
    leave_one_out = (x.sum(0) - x) / (n - 1)
    strata = np.array(["s"] * n, dtype=object)
    var, dfree = cs.jackknife_variance(leave_one_out, strata)
    np.testing.assert_allclose(var, x.var(0, ddof=1) / n, rtol=1e-12)
    assert dfree == n - 1


def test_stratified_jackknife_by_the_textbook_formula():
    rng = np.random.default_rng(4)
    theta = rng.normal(size=(9, 4))
    strata = np.array([None, None, "a", "a", "a", "b", "b", "c", "b"], dtype=object)
    var, dfree = cs.jackknife_variance(theta, strata)
    ref = np.zeros(4)
    for h in ("a", "b"):  # "c" has one model: no spread; the None rows are not jackknife rows
        th = theta[strata == h]
        n_h = len(th)
        ref += (n_h - 1) / n_h * sum((row - th.mean(0)) ** 2 for row in th)
    np.testing.assert_allclose(var, ref, rtol=1e-12)
    assert dfree == 2 + 2


def test_combine_variances_is_welch_satterthwaite():
    """Two unmoderated components s_a^2 / n_a and s_b^2 / n_b (too few tests to moderate)
    are Welch's t-test of a - b: scipy's statistic, df and p, and the hand formula."""
    pairs = [(np.array(A1), np.array(A2)), (np.array(B1), np.array(B2))]
    effect = np.array([a.mean() - b.mean() for a, b in pairs])
    s2_a, s2_b = (np.array([p[i].var(ddof=1) for p in pairs]) for i in (0, 1))
    n_a, n_b = (np.array([len(p[i]) for p in pairs], float) for i in (0, 1))
    st = cs.combine_variances(effect, s2_a, n_a - 1, 1 / n_a, s2_b, n_b - 1, n_b, 0.95,
                              np.zeros(2), np.ones(2), np.ones(2))
    va, vb = s2_a / n_a, s2_b / n_b
    df_ws = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    np.testing.assert_allclose(st["df"], df_ws, rtol=1e-12)
    np.testing.assert_allclose(st["se"], np.sqrt(va + vb), rtol=1e-12)
    for i, (a, b) in enumerate(pairs):
        ref = stats.ttest_ind(a, b, equal_var=False)
        assert st["statistic"][i] == pytest.approx(ref.statistic, rel=1e-12)
        assert st["pvalue"][i] == pytest.approx(ref.pvalue, rel=1e-10)
    assert list(st["unit"]) == ["donors+models"] * 2
    assert st["prior"]["donors"]["d0"] == st["prior"]["models"]["d0"] == 0.0
    # one component alone, or none (no p-value)
    one = cs.combine_variances(effect, s2_a, n_a - 1, 1 / n_a, np.full(2, np.nan),
                               np.zeros(2), np.ones(2), 0.95, np.zeros(2), np.ones(2),
                               np.ones(2))
    np.testing.assert_allclose(one["df"], n_a - 1)
    assert list(one["unit"]) == ["donors"] * 2
    none = cs.combine_variances(effect, np.full(2, np.nan), np.zeros(2), np.ones(2),
                                np.full(2, np.nan), np.zeros(2), np.ones(2), 0.95,
                                np.zeros(2), np.ones(2), np.ones(2))
    assert list(none["unit"]) == ["none"] * 2 and np.isnan(none["pvalue"]).all()


def test_the_module_needs_only_numpy_and_scipy():
    import ast
    from pathlib import Path

    allowed = {"numpy", "scipy", "__future__", "collections"}
    for path in Path(cs.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = set() if node.level else {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, (path.name, roots)
