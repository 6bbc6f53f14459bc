"""A trend call's last step: empirical null, q-values, calls, and where the result goes."""

from __future__ import annotations


import anndata as ad
import numpy as np
import pandas as pd

from .._utils import warn_user
from .. import stats
from ..errors import DataError
from ._trend_common import MIN_EMPIRICAL_TESTS, MODEL_ONLY, RESULT_COLUMNS
from ._utils import added


def empirical_null(statistic: np.ndarray, df: np.ndarray) -> dict[str, float]:
    """Centre and scale of the null distribution of many t statistics, estimated from the
    statistics themselves (Efron's empirical null; the method is
    :func:`napari_causcell.stats.empirical_null`).

    Returns ``{"center", "scale", "n_tests"}``; raises :class:`~napari_causcell.DataError`
    with fewer than :data:`MIN_EMPIRICAL_TESTS` finite statistics.
    """
    try:
        return stats.empirical_null(statistic, df, min_tests=MIN_EMPIRICAL_TESTS)
    except ValueError as err:
        raise DataError(f"{err} Test more genes or groups, or use null='theoretical'.") from None


def apply_empirical_null(df: pd.DataFrame, level: float) -> None:
    """Rescale ``se`` (and the interval, statistic and p-value) of every defined test by the
    empirical null's scale, in place."""
    ok = np.isfinite(df["pvalue"].to_numpy(float)) & np.isfinite(df["se"].to_numpy(float))
    fit = empirical_null(df["statistic"].to_numpy(float)[ok], df["df"].to_numpy(float)[ok])
    sub = df.loc[ok]
    se = sub["se"].to_numpy(float) * fit["scale"]
    se_, lo, hi, stat, p = stats.t_interval(sub["mean_change"].to_numpy(float), se ** 2,
                                            sub["df"].to_numpy(float), level)
    for k, v in (("se", se_), ("ci_low", lo), ("ci_high", hi), ("statistic", stat),
                 ("pvalue", p)):
        df.loc[ok, k] = v
    df.attrs["null"] = {"null": "empirical", **fit}


def finish(df: pd.DataFrame, groupby: list[str], alpha: float, min_effect: float,
           null: str = "theoretical", level: float = 0.95) -> pd.DataFrame:
    """Benjamini-Hochberg over all defined tests, direction, significance, one-donor flag.

    With ``null="empirical"`` the standard errors are first rescaled by the empirical null's
    scale (:func:`empirical_null`); ``df.attrs['null']`` records it."""
    from scipy.stats import false_discovery_control

    if not np.isfinite(df["pvalue"].to_numpy(float)).any():
        null = "theoretical"  # nothing tested (e.g. no donor replication): no null to fit
    df.attrs["null"] = {"null": null}
    if null == "empirical":
        apply_empirical_null(df, level)
    p = df["pvalue"].to_numpy(float)
    ok = np.isfinite(p)  # undefined tests (no replicate spread) are not tested, not evidence
    q = np.full(len(p), np.nan)
    if ok.any():
        q[ok] = false_discovery_control(p[ok], method="bh")
    df["padj"] = q
    change = df["mean_change"].to_numpy(float)
    df["direction"] = np.where(change > 0, "up", np.where(change < 0, "down", "none"))
    df["significant"] = ok & (np.nan_to_num(q, nan=1.0) < alpha) & (np.abs(change) >= min_effect)
    nt = df["n_donors_target"].to_numpy(float)
    df["one_donor"] = (df["n_donors_source"].to_numpy(float) < 2) | (np.isfinite(nt) & (nt < 2))
    cols = ["method", "target", *groupby] + [c for c in RESULT_COLUMNS
                                             if c not in ("method", "target")]
    return df[cols].reset_index(drop=True)


def null_params(df: pd.DataFrame) -> dict:
    """``null`` and, for an empirical null, its fit (``null_center``, ``null_scale``,
    ``null_tests``) for a call's ``params``."""
    info = df.attrs.get("null", {"null": "theoretical"})
    out = {"null": info["null"]}
    if info["null"] == "empirical":
        out.update(null_center=info["center"], null_scale=info["scale"],
                   null_tests=info["n_tests"])
    return out


def store(table: ad.AnnData, key: str, df: pd.DataFrame, params: dict,
          skipped: list[dict], **extra: pd.DataFrame) -> None:
    """Write ``uns[key]`` (results, params, skipped and ``extra``) and log it."""
    skipped_df = pd.DataFrame(skipped).astype({"target": str}) if skipped else pd.DataFrame(
        {"target": pd.Series(dtype=str)})
    table.uns[key] = {"results": df, "params": params, "skipped": skipped_df, **extra}
    added(f"uns[{key!r}]")


def warn_one_donor(df: pd.DataFrame, what: str) -> None:
    """Warn about rows on one donor (mouse) at an age: for the counterfactual test they are
    effect sizes with model-only intervals (no p/q-value); for the direct test pseudo-
    replicated cell-level tests."""
    if not df["one_donor"].any():
        return
    n = int(df["one_donor"].sum())
    head = (f"{n} of {len(df)} {what} rows rest on one donor (mouse) at an age (fewer than "
            "two donors with enough cells in the group): donor and age are confounded there, "
            "and no population-level test can separate them. ")
    if what == "trend":
        tail = (f"They are effect sizes with model-only intervals (unit '{MODEL_ONLY}': the "
                "spread over the models' seeds, or one model's per-cell spread), with no "
                "p- or q-value and never significant.")
    else:
        tail = ("Their intervals and p-values reflect only cell-to-cell variation "
                "(pseudo-replicated); read them as effect sizes (column one_donor).")
    warn_user(head + tail, UserWarning)
