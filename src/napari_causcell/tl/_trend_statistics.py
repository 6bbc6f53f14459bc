"""Trend rows from replicates: effects, moderated variances, t-tests and the null."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stats
from ..errors import DataError
from ._trend_common import DEFAULT_MIN_EFFECT, MIN_EMPIRICAL_TESTS, MODEL_ONLY, check_null
from ._trend_docs import TREND_STATISTICS_INTRO, TREND_STATISTICS_PARAMETERS, fill_doc
from ._trend_results import finish

_REPLICATE_COLUMNS = {"model", "target", "donor", "gene", "n_cells", "mean_delta",
                      "mean_factual"}
_OPTIONAL_COLUMNS = {"var_delta"}  # the cells' variance of the change (one model's interval)


@fill_doc(intro=TREND_STATISTICS_INTRO, parameters=TREND_STATISTICS_PARAMETERS)
def trend_statistics(
    replicates: pd.DataFrame, donor_variance: pd.DataFrame | None = None, *,
    level: float = 0.95, alpha: float = 0.05, min_effect: float = DEFAULT_MIN_EFFECT,
    min_donor_cells: int = 5, n_donors_target: pd.DataFrame | None = None,
    jackknife: pd.DataFrame | None = None, null: str = "auto",
) -> pd.DataFrame:
    """Trend rows (effect, interval, p, BH q) from per-model, per-donor mean changes.

    {intro}

    Parameters
    ----------
    {parameters}

    Returns
    -------
    pandas.DataFrame
        See :func:`age_trends`.
    """
    check_null(null)
    missing = _REPLICATE_COLUMNS - set(replicates.columns)
    if missing:
        raise DataError(f"Replicates lack columns {sorted(missing)}.")
    groupby = [c for c in replicates.columns
               if c not in _REPLICATE_COLUMNS | _OPTIONAL_COLUMNS]
    jk = ({} if jackknife is None
          else dict(zip(jackknife["model"], jackknife["stratum"].astype(str))))
    keys = ["target", *groupby]
    frames = [_group_effects(key, sub, keys, jk, min_donor_cells)
              for key, sub in replicates.groupby(keys, sort=False, observed=True)]
    if not frames:
        raise DataError("No replicate rows to test.")
    df = _merge_donor_tables(pd.concat(frames, ignore_index=True), keys, groupby,
                             n_donors_target, donor_variance)
    st, c_d = _test(df, jk, level)
    norep = no_replication(df)
    if norep.any():
        st = _model_only(st, df, norep, level)
    null = _choose_null(null, st, df, jk)
    if null == "empirical" and not jk and "shared_s2" in df:
        st = _with_shared_term(st, df, c_d, level)
    _set_tests(df, st, jk)
    out = finish(df, groupby, alpha, min_effect, null, level)
    out.attrs["prior"] = st["prior"]
    out.attrs["replication"] = replication_note(norep, df)
    return out


def no_replication(df: pd.DataFrame) -> np.ndarray:
    """Rows without two donors at the source or at the target label (``one_donor``): no
    population-level test exists there."""
    nt = df["n_donors_target"].to_numpy(float)
    return (df["n_donors_source"].to_numpy(float) < 2) | (np.isfinite(nt) & (nt < 2))


def replication_note(norep: np.ndarray, df: pd.DataFrame) -> str:
    """How the rows were tested, in words (``attrs['replication']``, ``params``)."""
    if not norep.any():
        return "donor replication: population-level test"
    many = int(df["n_models"].max()) >= 2
    source = (f"spread over {int(df['n_models'].max())} models (seeds)" if many
              else "one model: spread of its per-cell changes")
    what = (f"{MODEL_ONLY}: effect sizes, intervals from the {source}, no p/q-values"
            if norep.all() else f"{int(norep.sum())} of {len(norep)} rows {MODEL_ONLY} "
            f"(intervals from the {source}, no p/q-values); the others tested over donors")
    return what


def _model_only(st: dict, df: pd.DataFrame, norep: np.ndarray, level: float) -> dict:
    """Rows without donor replication: the interval from the model-only term (spread over
    the models, or one model's per-cell spread), moderated over those rows; no statistic,
    no p-value, ``unit`` :data:`MODEL_ONLY`."""
    sub = df.loc[norep]
    n = int(norep.sum())
    mo = stats.combine_variances(
        sub["mean_change"].to_numpy(float), np.full(n, np.nan), np.zeros(n), np.ones(n),
        sub["s2_mo"].to_numpy(float), sub["df_mo"].to_numpy(float),
        sub["n_mo"].to_numpy(float), level, sub["mean_source"].to_numpy(float),
        np.full(n, np.nan), sub["n_mo"].to_numpy(float))
    out = {k: np.array(v, dtype=float, copy=True) for k, v in st.items()
           if k not in ("unit", "prior")}
    for k in ("se", "ci_low", "ci_high", "df"):
        out[k][norep] = mo[k]
    out["statistic"][norep] = np.nan
    out["pvalue"][norep] = np.nan
    unit = np.asarray(st["unit"], dtype=object).copy()
    unit[norep] = MODEL_ONLY
    prior = dict(st["prior"])
    if "models" in mo["prior"]:
        prior["model-only"] = mo["prior"]["models"]
    return {**out, "unit": unit, "prior": prior}


def _replicate_array(sub: pd.DataFrame) -> tuple:
    """One group's replicates as arrays: models, genes, the models x donors x genes mean
    changes, each donor's cells, the donors x genes mean factual expression (donors in
    every model only) and the models x donors x genes cells' variance of the change (NaN
    without ``var_delta``)."""
    models = pd.unique(sub["model"])
    per_donor = sub.groupby("donor", sort=False)["model"].nunique()
    donors = per_donor.index[per_donor == len(models)].to_numpy()  # in every model
    genes = pd.unique(sub["gene"])
    idx = pd.MultiIndex.from_product([models, donors, genes])
    s = sub.set_index(["model", "donor", "gene"])
    shape = (len(models), len(donors), len(genes))
    e = s["mean_delta"].reindex(idx).to_numpy(float).reshape(shape)
    if np.isnan(e).any() or not len(donors):
        raise DataError("Every model needs a row for every gene of a group's donors.")
    n_cells = s["n_cells"].reindex(idx).to_numpy(float).reshape(shape)[0, :, 0]
    fact = s["mean_factual"].reindex(idx).to_numpy(float).reshape(shape)[0]
    var = (s["var_delta"].reindex(idx).to_numpy(float).reshape(shape) if "var_delta" in s
           else np.full(shape, np.nan))
    return models, genes, e, n_cells, fact, var


def _group_effects(key: tuple | str, sub: pd.DataFrame, keys: list[str], jk: dict,
                   min_donor_cells: int) -> pd.DataFrame:
    """Effect, source mean and the model and jackknife terms of one target and group."""
    key = key if isinstance(key, tuple) else (key,)
    models, genes, e, n_cells, fact, var = _replicate_array(sub)
    w_cells = n_cells / max(n_cells.sum(), 1)
    elig = n_cells >= min_donor_cells
    if elig.any():
        per_model = e[:, elig, :].mean(1)  # donors weigh equally
    else:
        per_model = np.einsum("mdg,d->mg", e, w_cells)
    base = np.einsum("dg,d->g", fact, w_cells)
    strata = np.array([jk.get(mm) for mm in models], dtype=object)
    full_rows = np.flatnonzero([s_ is None for s_ in strata])
    if not len(full_rows):
        raise DataError("Every model left a donor out: the ensemble needs models trained "
                        "on all donors for the effect.")
    s2_j, df_j = stats.jackknife_variance(per_model, strata)
    e, per_model = e[full_rows], per_model[full_rows]
    s2_m, df_m, n_m = _model_term(e, per_model, elig)
    s2_mo, df_mo, n_mo = _model_only_term(per_model, var[full_rows[0]], n_cells, elig)
    return pd.DataFrame({
        "method": "causcell", **dict(zip(keys, map(str, key))), "gene": genes,
        "n_source": int(n_cells.sum()), "n_target": int(n_cells.sum()),
        "n_donors_source": int(elig.sum()), "n_models": len(full_rows),
        "mean_source": base, "mean_target": base + per_model.mean(0),
        "mean_change": per_model.mean(0),
        "s2_model": s2_m, "df_model": df_m, "n_model_term": n_m,
        "s2_jack": s2_j, "df_jack": df_j, "s2_mo": s2_mo, "df_mo": df_mo, "n_mo": n_mo,
    })


def _model_term(e: np.ndarray, per_model: np.ndarray, elig: np.ndarray) -> tuple:
    """``(s2, df, n)`` of the model term: the effect's spread over the models, or with one
    model the spread of its change over the eligible source donors; else none."""
    m = len(per_model)
    if m >= 2:  # model uncertainty: the effect's spread over the models
        return per_model.var(0, ddof=1), m - 1.0, float(m)
    if elig.sum() >= 2:  # one model: the spread of its change over the source donors
        return e[0, elig].var(0, ddof=1), elig.sum() - 1.0, float(elig.sum())
    return np.nan, 0.0, 1.0


def _model_only_term(per_model: np.ndarray, var: np.ndarray, n_cells: np.ndarray,
                     elig: np.ndarray) -> tuple:
    """``(s2, df, n)`` of the model-only term (no donors): the effect's spread over the
    models, or with one model its cells' spread of the change, pooled within the donors
    that make the effect (``n`` their effective cells); else none."""
    m = len(per_model)
    if m >= 2:
        return per_model.var(0, ddof=1), m - 1.0, float(m)
    use = elig if elig.any() else np.ones(len(n_cells), dtype=bool)
    n, v = n_cells[use], var[use]
    dfree = float(np.clip(n - 1, 0, None).sum())
    if dfree <= 0 or not np.isfinite(v[n > 1]).all():
        return np.full(var.shape[1], np.nan), 0.0, 1.0
    s2 = np.nansum(np.clip(n - 1, 0, None)[:, None] * v, 0) / dfree
    n_eff = len(n) ** 2 / np.sum(1.0 / n) if elig.any() else float(n.sum())
    return s2, dfree, float(n_eff)


def _merge_donor_tables(df: pd.DataFrame, keys: list[str], groupby: list[str],
                        n_donors_target: pd.DataFrame | None,
                        donor_variance: pd.DataFrame | None) -> pd.DataFrame:
    """Add the donors per target (``n_donors_target``) and the observed donors' variance."""
    if n_donors_target is not None and len(n_donors_target):
        df = df.merge(n_donors_target.astype({c: str for c in keys}), on=keys, how="left")
    else:
        df["n_donors_target"] = np.nan
    if donor_variance is not None and len(donor_variance):
        dv = donor_variance.astype({c: str for c in [*groupby, "gene"]})
        extra = [c for c in ("shared_s2", "shared_df") if c in dv]
        df = df.merge(dv[[*groupby, "gene", "donor_s2", "donor_df", "donor_cells", *extra]],
                      on=[*groupby, "gene"], how="left")
    else:
        df["donor_s2"], df["donor_df"], df["donor_cells"] = np.nan, 0.0, np.nan
    return df


def _test(df: pd.DataFrame, jk: dict, level: float) -> tuple[dict, np.ndarray | float]:
    """The donor and model terms combined (:func:`stats.combine_variances`), and ``c_d``."""
    c_d = (1.0 / np.maximum(df["n_donors_source"].to_numpy(float), 1)
           + 1.0 / np.maximum(np.nan_to_num(df["n_donors_target"].to_numpy(float), nan=1.0),
                              1))
    s2_d, df_d = df["donor_s2"].to_numpy(float), np.nan_to_num(df["donor_df"].to_numpy(float))
    if jk:  # donor sampling measured on the model: the jackknife variance is the estimate's
        s2_d, df_d, c_d = df["s2_jack"].to_numpy(float), df["df_jack"].to_numpy(float), 1.0
    st = stats.combine_variances(
        df["mean_change"].to_numpy(float), s2_d, df_d, np.broadcast_to(c_d, len(df)),
        df["s2_model"].to_numpy(float), df["df_model"].to_numpy(float),
        df["n_model_term"].to_numpy(float), level, df["mean_source"].to_numpy(float),
        df["donor_cells"].to_numpy(float),
        df["n_source"].to_numpy(float) / np.maximum(df["n_donors_source"], 1))
    return st, c_d


def _choose_null(null: str, st: dict, df: pd.DataFrame, jk: dict) -> str:
    """``"auto"``: empirical for an ensemble without jackknife models with enough donor
    tests, else theoretical; any other value as given."""
    if null != "auto":
        return null
    donor_tests = np.isfinite(st["pvalue"]) & pd.Series(st["unit"]).str.contains(
        "donors").to_numpy()
    ensemble = int(df["n_models"].max()) >= 2
    return ("empirical" if ensemble and not jk and donor_tests.sum() >= MIN_EMPIRICAL_TESTS
            else "theoretical")


def _with_shared_term(st: dict, df: pd.DataFrame, c_d: np.ndarray, level: float) -> dict:
    """Add the donors' shared (gene-level) variance, moderated over genes, times ``c_d`` to
    each test's variance: the model pools effects over groups, which averages away the
    donors' group-specific noise but not an offset they carry in every group."""
    s2, dfree = df["shared_s2"].to_numpy(float), df["shared_df"].to_numpy(float)
    ok = np.isfinite(s2) & (dfree > 0) & np.isfinite(st["se"]) & np.isfinite(st["pvalue"])
    if not ok.any():
        return st
    genes = df["gene"].to_numpy()
    first = pd.Series(np.flatnonzero(ok), index=genes[ok]).groupby(level=0).first()
    post, _, _ = stats.moderate_variances(s2[first.to_numpy()], dfree[first.to_numpy()])
    add = pd.Series(post, index=first.index).reindex(genes).to_numpy(float)
    var = np.where(ok, st["se"] ** 2 + np.broadcast_to(c_d, len(df)) * add, st["se"] ** 2)
    se, lo, hi, stat, p = stats.t_interval(df["mean_change"].to_numpy(float), var, st["df"],
                                           level)
    return {**st, "se": se, "ci_low": lo, "ci_high": hi, "statistic": stat,
            "pvalue": np.where(np.isfinite(st["pvalue"]), p, np.nan)}


def _set_tests(df: pd.DataFrame, st: dict, jk: dict) -> None:
    """Write the test columns into ``df``; ``unit`` says which replicates were used."""
    for k in ("se", "ci_low", "ci_high", "df", "statistic", "pvalue", "unit"):
        df[k] = st[k]
    one = ((df["n_models"] == 1).to_numpy() & (df["unit"] != "none").to_numpy()
           & (df["unit"] != MODEL_ONLY).to_numpy())
    df.loc[one, "unit"] = "donors"  # observed donors and/or the source donors' spread
    if jk:
        df["unit"] = df["unit"].str.replace("donors", "donors (jackknife)", regex=False)
