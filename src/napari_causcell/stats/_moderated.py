"""Empirical Bayes variance moderation (Smyth 2004, as limma's ``squeezeVar``)."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, polygamma


def trigamma_inverse(x: float) -> float:
    """The ``y`` with ``trigamma(y) = x``: Newton's method from ``0.5 + 1/x`` (as limma's
    ``trigammaInverse``), at most 50 steps, relative step below 1e-8."""
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = float(polygamma(1, y))
        dif = tri * (1 - tri / x) / float(polygamma(2, y))
        y += dif
        if -dif / y < 1e-8:
            break
    return y


def moderate_variances(s2: np.ndarray, df: np.ndarray, covariate: np.ndarray | None = None,
                       cells: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Empirical Bayes moderated variances (limma's ``squeezeVar`` with a trend, Smyth 2004).

    The sample variances ``s2`` (with ``df`` degrees of freedom each) of many tests are
    shrunk towards a prior ``s0^2`` with prior degrees of freedom ``d0`` estimated from their
    spread: ``post = (d0 s0^2 + df s2) / (d0 + df)`` with ``d0 + df`` degrees of freedom. The
    prior's log follows a trend: quadratic in ``covariate`` (mean expression) and, when
    ``cells`` (cells per replicate) is given, linear in its log and its product with the
    covariate (a mean of fewer cells varies more). This is how few replicates (2 mice per age)
    still give usable tests: each variance borrows strength from all the others.

    Returns the moderated variances, their degrees of freedom and ``{"d0", "s0"}`` (the prior
    degrees of freedom, and the median prior variance). With fewer than three usable tests
    per trend coefficient the variances come back unchanged (``d0 = 0``).
    """
    s2 = np.asarray(s2, float)
    df = np.asarray(df, float)
    design = _trend_design(len(s2), covariate, cells)
    ok = np.isfinite(s2) & (s2 > 0) & (df > 0) & np.isfinite(design).all(1)
    if ok.sum() < 3 * design.shape[1]:
        return s2, df, {"d0": 0.0, "s0": np.nan}
    d0, s0 = _fit_prior(s2, df, design, ok)
    post, d_post = _posterior(s2, df, d0, s0)
    return post, d_post, {"d0": float(d0), "s0": float(np.median(s0))}


def _trend_design(n: int, covariate: np.ndarray | None,
                  cells: np.ndarray | None) -> np.ndarray:
    """Columns of the prior's trend: 1, c, c^2 and, with cells, log(cells), c log(cells)."""
    cols = [np.ones(n)]
    if covariate is not None:
        c = np.asarray(covariate, float)
        cols += [c, c ** 2]
        if cells is not None:
            ln = np.log(np.maximum(np.asarray(cells, float), 1.0))
            cols += [ln, c * ln]
    return np.column_stack(cols)


def _fit_prior(s2: np.ndarray, df: np.ndarray, design: np.ndarray,
               ok: np.ndarray) -> tuple[float, np.ndarray]:
    """Prior degrees of freedom ``d0`` and each test's prior variance ``s0^2`` (limma's
    ``fitFDist``, its log-linear trend fitted by least squares on the ``ok`` tests)."""
    e = np.log(s2[ok]) - digamma(df[ok] / 2) + np.log(df[ok] / 2)
    coef, *_ = np.linalg.lstsq(design[ok], e, rcond=None)
    emean_all = design @ coef
    resid = e - emean_all[ok]
    evar = float(np.sum(resid ** 2) / (ok.sum() - design.shape[1])
                 - np.mean(polygamma(1, df[ok] / 2)))
    if evar > 0:
        d0 = 2 * trigamma_inverse(evar)
        return d0, np.exp(emean_all + digamma(d0 / 2) - np.log(d0 / 2))
    return np.inf, np.exp(emean_all)


def _posterior(s2: np.ndarray, df: np.ndarray, d0: float,
               s0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior variances and degrees of freedom; an infinite ``d0`` gives the prior (its
    degrees of freedom capped at 1e6)."""
    s2c = np.where(np.isfinite(s2), s2, 0.0)
    if np.isfinite(d0):
        return (d0 * s0 + df * s2c) / (d0 + df), df + d0
    return s0, np.full(len(s2), 1e6)
