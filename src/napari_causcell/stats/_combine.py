"""Two variance components of an effect, each moderated, added into one t-test."""

from __future__ import annotations

import numpy as np

from ._moderated import moderate_variances
from ._ttest import t_interval


def combine_variances(effect: np.ndarray, s2_d: np.ndarray, df_d: np.ndarray, c_d: np.ndarray,
                      s2_m: np.ndarray, df_m: np.ndarray, n_models: np.ndarray, level: float,
                      covariate: np.ndarray, cells_d: np.ndarray,
                      cells_m: np.ndarray) -> dict:
    """Moderate both variance components over all tests, add them, t-interval and p.

    ``var = c_d * s2_d + s2_m / M`` (donor sampling and model seeds), each sample variance
    shrunk by :func:`moderate_variances` (trend on ``covariate`` and the component's cells);
    Welch-Satterthwaite degrees of freedom ``var^2 / (a^2 / df_a + b^2 / df_b)`` (capped at
    1e6). Returns ``se``, ``ci_low``, ``ci_high``, ``df``, ``statistic``, ``pvalue`` (NaN
    where neither component exists), ``unit`` (``"donors+models"``, ``"donors"``,
    ``"models"`` or ``"none"``) and ``prior`` (each moderation's ``{"d0", "s0"}``).
    """
    has_d = np.isfinite(s2_d) & (df_d > 0)
    has_m = np.isfinite(s2_m) & (df_m > 0)
    a, da, b, db = (np.zeros(len(effect)), np.full(len(effect), np.inf),
                    np.zeros(len(effect)), np.full(len(effect), np.inf))
    prior = {}
    if has_d.any():
        post, dpost, prior["donors"] = moderate_variances(s2_d[has_d], df_d[has_d],
                                                          covariate[has_d], cells_d[has_d])
        a[has_d], da[has_d] = c_d[has_d] * post, dpost
    if has_m.any():
        post, dpost, prior["models"] = moderate_variances(s2_m[has_m], df_m[has_m],
                                                          covariate[has_m], cells_m[has_m])
        b[has_m], db[has_m] = post / n_models[has_m], dpost
    var = np.where(has_d | has_m, a + b, np.nan)
    with np.errstate(all="ignore"):
        dfree = var ** 2 / (np.where(has_d, a ** 2 / da, 0) + np.where(has_m, b ** 2 / db, 0))
    dfree = np.where(np.isfinite(dfree), np.minimum(dfree, 1e6), np.nan)
    unit = np.where(has_d & has_m, "donors+models", np.where(
        has_d, "donors", np.where(has_m, "models", "none")))
    se, lo, hi, stat, p = t_interval(effect, var, dfree, level)
    p = np.where(np.isfinite(var), p, np.nan)
    return {"se": se, "ci_low": lo, "ci_high": hi, "df": dfree, "statistic": stat,
            "pvalue": p, "unit": unit, "prior": prior}
