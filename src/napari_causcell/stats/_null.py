"""The empirical null of many test statistics (Efron 2004, 2007)."""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats


def empirical_null(statistic: np.ndarray, df: np.ndarray,
                   min_tests: int = 200) -> dict[str, float]:
    """Centre and scale of the null distribution of many test statistics, estimated from
    the statistics themselves (Efron 2004, 2007: the "empirical null").

    Each t statistic is mapped to a z-value of the same tail probability; a normal
    ``N(center, scale²)`` is fitted by maximum likelihood to the z-values in the central
    interval ``median ± b · IQR / 1.349`` with ``b = 4.3 exp(-0.26 log10 N)`` (truncated-normal
    likelihood; the interval and ``b`` are the defaults of Efron's ``locfdr``), where most
    tests are assumed null. ``scale < 1`` says the theoretical null overstates the spread of
    null statistics (a conservative test), ``> 1`` that it understates it.

    Parameters
    ----------
    statistic, df
        t statistics and their degrees of freedom (non-finite entries are ignored).
    min_tests
        Fewest finite statistics to fit from.

    Returns
    -------
    dict
        ``center``, ``scale`` and ``n_tests`` (finite statistics used).

    Raises
    ------
    ValueError
        Fewer than ``min_tests`` finite statistics.
    """
    t = np.asarray(statistic, float)
    dfree = np.asarray(df, float)
    ok = np.isfinite(t) & np.isfinite(dfree) & (dfree > 0)
    if ok.sum() < min_tests:
        raise ValueError(f"An empirical null needs at least {min_tests} defined tests; this "
                         f"call has {int(ok.sum())}.")
    z = z_values(t[ok], dfree[ok])
    lo, hi, med, sd = central_interval(z)
    center, scale = _truncated_normal_fit(z[(z >= lo) & (z <= hi)], lo, hi, med, sd)
    return {"center": center, "scale": scale, "n_tests": len(z)}


def z_values(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """z-values of the same two-sided tail probability as t statistics (finite ones only)."""
    z = np.sign(t) * stats.norm.isf(stats.t.sf(np.abs(t), df))
    return z[np.isfinite(z)]


def central_interval(z: np.ndarray) -> tuple[float, float, float, float]:
    """``(lo, hi, median, sd)``: locfdr's central interval ``median ± b · sd`` with the
    robust ``sd = IQR / 1.349`` and ``b = 4.3 exp(-0.26 log10 N)`` (1 above 500,000 z)."""
    n = len(z)
    b = 4.3 * np.exp(-0.26 * np.log10(n)) if n <= 500_000 else 1.0
    med, sd = float(np.median(z)), float(stats.iqr(z) / (2 * stats.norm.ppf(0.75)))
    return med - b * sd, med + b * sd, med, sd


def _truncated_normal_fit(zc: np.ndarray, lo: float, hi: float, med: float,
                          sd: float) -> tuple[float, float]:
    """Maximum-likelihood ``(center, scale)`` of a normal truncated to ``[lo, hi]`` from the
    z-values inside it (Nelder-Mead on centre and log scale, from the median and sd)."""

    def nll(par: np.ndarray) -> float:
        c, s = par[0], np.exp(par[1])
        mass = stats.norm.cdf((hi - c) / s) - stats.norm.cdf((lo - c) / s)
        return -(stats.norm.logpdf(zc, c, s).sum() - len(zc) * np.log(max(mass, 1e-300)))

    fit = optimize.minimize(nll, [med, np.log(max(sd, 1e-6))], method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-8})
    return float(fit.x[0]), float(np.exp(fit.x[1]))
