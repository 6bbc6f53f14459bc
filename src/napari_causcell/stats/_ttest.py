"""t-intervals and two-sample tests, column by column."""

from __future__ import annotations

import numpy as np
from scipy import stats


def t_interval(effect: np.ndarray, var: np.ndarray, df: np.ndarray,
               level: float) -> tuple[np.ndarray, ...]:
    """SE, interval, t statistic and two-sided p from an estimate, its variance and df.

    Returns ``(se, low, high, statistic, pvalue)``: ``se = sqrt(var)``, the ``level``
    t-interval ``effect -/+ t_{(1+level)/2, df} se``, ``t = effect / se`` and
    ``p = 2 P(T_df > |t|)``. Where ``var`` is 0 the interval is the point, the statistic NaN
    and ``p`` 1 for a zero effect, else 0.
    """
    with np.errstate(all="ignore"):
        se = np.sqrt(var)
        tq = stats.t.ppf(0.5 + level / 2, df)
        stat = effect / se
        p = 2 * stats.t.sf(np.abs(stat), df)
        # no spread at all: the interval is the point and the test says nothing new
        zero = np.isfinite(var) & (var <= 0)
        stat = np.where(zero, np.nan, stat)
        p = np.where(zero, np.where(effect == 0, 1.0, 0.0), p)
    return se, effect - tq * se, effect + tq * se, stat, p


def welch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference of means (a - b) per column, its variance and Welch-Satterthwaite df.

    Where the df is undefined (no spread on either side) it is ``min(n_a, n_b) - 1``.
    """
    with np.errstate(all="ignore"):
        va, vb = a.var(0, ddof=1) / len(a), b.var(0, ddof=1) / len(b)
        var = va + vb
        df = var ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    df = np.where(np.isfinite(df), df, min(len(a), len(b)) - 1.0)
    return a.mean(0) - b.mean(0), var, df


def two_sample(a: np.ndarray, b: np.ndarray, test: str) -> tuple[np.ndarray, np.ndarray]:
    """Test per column that ``a`` and ``b`` (rows: observations) differ.

    ``test="t-test"``: Welch's t-test; ``"wilcoxon"``: two-sided Mann-Whitney U (a column
    holding one value on both sides gets statistic NaN and p 1). Returns (statistic, p).
    """
    with np.errstate(all="ignore"):
        if test == "t-test":
            res = stats.ttest_ind(a, b, axis=0, equal_var=False)
            return np.asarray(res.statistic, float), np.asarray(res.pvalue, float)
        stat = np.full(a.shape[1], np.nan)
        p = np.ones(a.shape[1])
        ok = ~(np.all(a == a[:1], axis=0) & np.all(b == a[:1], axis=0))  # not all one value
        if ok.any():
            res = stats.mannwhitneyu(a[:, ok], b[:, ok], axis=0, alternative="two-sided")
            stat[ok], p[ok] = res.statistic, res.pvalue
        return stat, p
