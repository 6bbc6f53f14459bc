"""Age (or any ordered concept) trends from counterfactuals, and the same test run directly.

:func:`age_trends` intervenes ``do(concept = target)`` on the cells that carry the ``source``
label and tests, per group (e.g. cell type x domain) and gene, whether the model's paired change
``layers['delta']`` (counterfactual minus the same cell generated without intervention, same
sampler noise) differs from zero. :func:`direct_trends` runs the same test on the observed cells
(target-age cells vs source-age cells), so the two can be compared like for like.
:func:`compare_trends` scores either against a list of known trends; :func:`subsample_donors`
reproduces the paper's small-data setting (2 mice per age).

Statistics, in short (see ``docs/brain_aging.md``):

- effect = mean change per group and gene, in the model's log-normalised space
  (``log1p`` of counts per 10,000 over the model's genes), averaged over the source donors
  (mice) and the models of an ensemble;
- uncertainty from the units of replication only: donor sampling (the observed donors'
  within-age variance, pooled over ages) and model uncertainty (the spread over the models of
  an ensemble, trained with different seeds), each moderated by empirical Bayes over all
  tests (as limma), never the number of generated cells;
- a t-interval (``ci_low``/``ci_high``), a p-value, Benjamini-Hochberg q-values (``padj``);
  ``significant`` when ``padj < alpha`` and ``|mean change| >= min_effect``;
- ``unit`` names the replicates used, ``one_donor`` flags rows where an age has one donor
  (mouse and age confounded).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._keys import Key
from ..data import expression, is_spatialdata, resolve_table
from ..data.concepts import ConceptError
from ..data.preprocess import DataError
from ._counterfactual import counterfactual as _tl_counterfactual
from ._counterfactual import select_cells, stored_counterfactual
from ._utils import added

__all__ = [
    "TrendComparison", "age_trends", "compare_trends", "direct_trends", "subsample_donors",
    "trend_statistics", "moderate_variances", "train_ensemble", "empirical_null", "TESTS",
    "NULLS", "DEFAULT_MIN_EFFECT",
]

#: Statistical tests offered.
TESTS = ("t-test", "wilcoxon")
#: Null distributions of the test statistics (``null=`` of the trend tests; ``"auto"`` only
#: for the counterfactual test).
NULLS = ("auto", "theoretical", "empirical")
#: Fewest defined tests from which an empirical null is estimated.
MIN_EMPIRICAL_TESTS = 200
#: Default effect-size threshold (log-normalised units, natural log1p of counts per 10k).
DEFAULT_MIN_EFFECT = 0.1
ALL = "all"  # value of a groupby column in marginal rows

_RESULT_COLUMNS = [
    "method", "target", "gene", "n_source", "n_target", "n_donors_source", "n_donors_target",
    "n_models", "mean_source", "mean_target", "mean_change", "se", "ci_low", "ci_high", "df",
    "statistic", "pvalue", "padj", "direction", "significant", "unit", "one_donor",
]


# -- helpers -------------------------------------------------------------------------------
def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _check_columns(adata: ad.AnnData, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in adata.obs]
    if missing:
        hint = ""
        if "domain" in missing:
            hint = " Derive spatial domains first with tl.spatial_domains(data)."
        raise DataError(
            f"{what} column(s) {missing} not in obs; columns: {list(adata.obs.columns)}.{hint}"
        )


def _check_null(null: str) -> None:
    if null not in NULLS:
        raise ValueError(f"null must be one of {NULLS}, got {null!r}")


def _check_params(test: str, alpha: float, min_effect: float, min_cells: int,
                  null: str = "theoretical") -> None:
    _check_null(null)
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_effect < 0:
        raise ValueError(f"min_effect must be >= 0, got {min_effect}")
    if min_cells < 2:
        raise ValueError(f"min_cells must be >= 2 (a test needs a spread), got {min_cells}")


def _check_labels(labels: Sequence[str], concept: str, source: str,
                  targets: Sequence[str] | None) -> list[str]:
    """Validated target labels (default: every other label, in order)."""
    labels = [str(v) for v in labels]
    source = str(source)
    if source not in labels:
        raise ConceptError(f"Unknown {concept} label {source!r}; labels are {labels}.")
    if targets is None:
        targets = [v for v in labels if v != source]
    targets = _as_list(targets)
    if not targets:
        raise ConceptError("Give at least one target label.")
    for t in targets:
        if t not in labels:
            raise ConceptError(f"Unknown {concept} label {t!r}; labels are {labels}.")
        if t == source:
            raise ConceptError(f"Target {t!r} equals the source: nothing to compare.")
    if len(set(targets)) != len(targets):
        raise ConceptError(f"Targets repeat: {targets}.")
    return targets


def _levels(groupby: list[str], marginal: bool) -> list[list[str]]:
    """Groupings to test: all cells and every prefix of ``groupby`` when ``marginal``
    (e.g. all, cell type, cell type x domain), else just ``groupby``."""
    if not groupby:
        return [[]]
    if not marginal:
        return [groupby]
    return [groupby[:i] for i in range(len(groupby) + 1)]


def _groups(obs: pd.DataFrame, level: list[str], groupby: list[str]):
    """Yield ``(keys, positions)`` per group of ``level``; other groupby columns are 'all'."""
    if not level:
        yield {c: ALL for c in groupby}, np.arange(len(obs))
        return
    labels = obs[level].astype(str)
    for key, idx in labels.groupby(level, sort=True, observed=True).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        out = {c: ALL for c in groupby}
        out.update(dict(zip(level, map(str, key))))
        yield out, np.asarray(idx)


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


def _two_sample(a: np.ndarray, b: np.ndarray, test: str) -> tuple[np.ndarray, np.ndarray]:
    """Test per column that ``a`` (target cells) and ``b`` (source cells) differ."""
    from scipy import stats

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


def _finish(df: pd.DataFrame, groupby: list[str], alpha: float, min_effect: float,
            null: str = "theoretical", level: float = 0.95) -> pd.DataFrame:
    """Benjamini-Hochberg over all defined tests, direction, significance, one-donor flag.

    With ``null="empirical"`` the standard errors are first rescaled by the empirical null's
    scale (:func:`empirical_null`); ``df.attrs['null']`` records it."""
    from scipy.stats import false_discovery_control

    df.attrs["null"] = {"null": null}
    if null == "empirical":
        _apply_empirical_null(df, level)
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
    cols = ["method", "target", *groupby] + [c for c in _RESULT_COLUMNS
                                             if c not in ("method", "target")]
    return df[cols].reset_index(drop=True)


def empirical_null(statistic: np.ndarray, df: np.ndarray) -> dict[str, float]:
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

    Returns
    -------
    dict
        ``center``, ``scale`` and ``n_tests`` (finite statistics used).

    Raises
    ------
    DataError
        Fewer than :data:`MIN_EMPIRICAL_TESTS` finite statistics.
    """
    from scipy import optimize, stats

    t = np.asarray(statistic, float)
    dfree = np.asarray(df, float)
    ok = np.isfinite(t) & np.isfinite(dfree) & (dfree > 0)
    if ok.sum() < MIN_EMPIRICAL_TESTS:
        raise DataError(
            f"An empirical null needs at least {MIN_EMPIRICAL_TESTS} defined tests; this call "
            f"has {int(ok.sum())}. Test more genes or groups, or use null='theoretical'.")
    z = np.sign(t[ok]) * stats.norm.isf(stats.t.sf(np.abs(t[ok]), dfree[ok]))
    z = z[np.isfinite(z)]
    n = len(z)
    b = 4.3 * np.exp(-0.26 * np.log10(n)) if n <= 500_000 else 1.0
    med, sd = float(np.median(z)), float(stats.iqr(z) / (2 * stats.norm.ppf(0.75)))
    lo, hi = med - b * sd, med + b * sd
    zc = z[(z >= lo) & (z <= hi)]

    def nll(par: np.ndarray) -> float:
        c, s = par[0], np.exp(par[1])
        mass = stats.norm.cdf((hi - c) / s) - stats.norm.cdf((lo - c) / s)
        return -(stats.norm.logpdf(zc, c, s).sum() - len(zc) * np.log(max(mass, 1e-300)))

    fit = optimize.minimize(nll, [med, np.log(max(sd, 1e-6))], method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-8})
    return {"center": float(fit.x[0]), "scale": float(np.exp(fit.x[1])), "n_tests": n}


def _apply_empirical_null(df: pd.DataFrame, level: float) -> None:
    """Rescale ``se`` (and the interval, statistic and p-value) of every defined test by the
    empirical null's scale, in place."""
    ok = np.isfinite(df["pvalue"].to_numpy(float)) & np.isfinite(df["se"].to_numpy(float))
    fit = empirical_null(df["statistic"].to_numpy(float)[ok], df["df"].to_numpy(float)[ok])
    sub = df.loc[ok]
    se = sub["se"].to_numpy(float) * fit["scale"]
    se_, lo, hi, stat, p = _t_interval(sub["mean_change"].to_numpy(float), se ** 2,
                                       sub["df"].to_numpy(float), level)
    for k, v in (("se", se_), ("ci_low", lo), ("ci_high", hi), ("statistic", stat),
                 ("pvalue", p)):
        df.loc[ok, k] = v
    df.attrs["null"] = {"null": "empirical", **fit}


def _null_params(df: pd.DataFrame) -> dict:
    """``null`` and, for an empirical null, its fit (``null_center``, ``null_scale``,
    ``null_tests``) for a call's ``params``."""
    info = df.attrs.get("null", {"null": "theoretical"})
    out = {"null": info["null"]}
    if info["null"] == "empirical":
        out.update(null_center=info["center"], null_scale=info["scale"],
                   null_tests=info["n_tests"])
    return out


def _store(table: ad.AnnData, key: str, df: pd.DataFrame, params: dict,
           skipped: list[dict], **extra: pd.DataFrame) -> None:
    """Write ``uns[key]`` (results, params, skipped and ``extra``) and log it."""
    skipped_df = pd.DataFrame(skipped).astype({"target": str}) if skipped else pd.DataFrame(
        {"target": pd.Series(dtype=str)})
    table.uns[key] = {"results": df, "params": params, "skipped": skipped_df, **extra}
    added(f"uns[{key!r}]")


def _warn_one_donor(df: pd.DataFrame, what: str) -> None:
    if df["one_donor"].any():
        n = int(df["one_donor"].sum())
        warnings.warn(
            f"{n} of {len(df)} {what} rows rest on one donor (mouse) at an age (fewer than two "
            "donors with enough cells in the group): donor and age are confounded there, and "
            "no test can separate them. Their intervals and p-values reflect only " +
            ("model uncertainty (seeds, or one model's spread)" if what == "trend" else
             "cell-to-cell variation (pseudo-replicated)") +
            "; read them as effect sizes (column one_donor).", UserWarning, stacklevel=3)


def _donor_column(table: ad.AnnData, donor_key: Any) -> str | None:
    """The donor column: given, guessed (donor, donor_id, mouse, ...), or None."""
    if donor_key is False:
        return None
    if donor_key is None:
        return next((c for c in _DONOR_GUESSES if c in table.obs), None)
    _check_columns(table, [donor_key], "Donor")
    return str(donor_key)


def _as_models(model: Any) -> list[Any]:
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if not models:
        raise ValueError("Give at least one model.")
    for m in models:
        if not getattr(m, "is_trained", False):
            raise RuntimeError("Train the model (or load a trained one) before computing "
                               "trends.")
    first = models[0]
    for m in models[1:]:
        if list(m.concepts) != list(first.concepts) or list(m.genes) != list(first.genes):
            raise ValueError("The models of an ensemble need the same concepts and genes "
                             "(train them on the same data with different seeds).")
    return models


# -- an ensemble over training seeds -----------------------------------------------------------
def train_ensemble(
    data: Any,
    concepts: Sequence[str],
    dag: Any = None,
    *,
    n_models: int = 5,
    seed: int = 0,
    max_epochs: int = 200,
    max_time: float | None = None,
    progress: Callable[[float], Any] | None = None,
    train_kwargs: dict | None = None,
    jackknife: str | None = None,
    stratum: str = "age",
    **model_kwargs: Any,
) -> list[Any]:
    """Train ``n_models`` CausCell models on the same data, with seeds ``seed`` to ``seed + n_models - 1``.

    The ensemble :func:`age_trends` takes to measure model uncertainty: what differs between
    the models is only the training randomness (initialisation, batches, validation split),
    so the spread of their effects is the part of the answer that depends on chance in
    training.

    Parameters
    ----------
    data, concepts, dag, **model_kwargs
        As :class:`~napari_causcell.CausCell` (``seed`` is set per model).
    n_models
        Models to train on all cells (>= 2 for a model-uncertainty term; 0 with
        ``jackknife`` trains only the jackknife models, to add to an ensemble trained before).
    seed
        Seed of the first model.
    max_epochs, max_time, train_kwargs
        Passed to :meth:`CausCell.train` for every model (``max_time`` per model).
    progress
        Called as ``progress(fraction)`` after each model.
    jackknife
        Donor column (e.g. ``"mouse"``): also train one model per donor with that donor's
        cells left out (seed ``seed``), for the delete-one-donor jackknife that
        :func:`age_trends` then uses to measure donor sampling on the model itself. Each
        level of ``stratum`` needs >= 2 donors, each donor one level. Costs one training per
        donor more.
    stratum
        The concept the donors are nested in (default ``"age"``).

    Returns
    -------
    list of CausCell
        The ``n_models`` models on all cells, then the jackknife models (each records its
        left-out donor in ``train_params['left_out']``, kept by ``save``/``load``).
    """
    from .._model import CausCell

    if int(n_models) < (0 if jackknife is not None else 1):
        raise ValueError(f"n_models must be >= 1 (>= 0 with jackknife), got {n_models}")
    runs = [(None, int(seed) + i) for i in range(int(n_models))]
    if jackknife is not None:
        runs += [(d, int(seed)) for d in _jackknife_donors(data, jackknife, stratum)]
    models = []
    for i, (left_out, s) in enumerate(runs):
        sub = data if left_out is None else _without_donor(data, jackknife, left_out[1])
        model = CausCell(sub, concepts, dag, seed=s, **model_kwargs)
        model.train(max_epochs, max_time=max_time, **(train_kwargs or {}))
        if left_out is not None:
            model.train_params["left_out"] = {"donor_key": jackknife, "donor": left_out[1],
                                              "stratum_key": stratum, "stratum": left_out[0]}
        models.append(model)
        if progress is not None:
            progress((i + 1) / len(runs))
    return models


def _left_out(model: Any) -> dict | None:
    """The donor a jackknife model was trained without (``None``: all donors)."""
    return (getattr(model, "train_params", None) or {}).get("left_out")


def _jackknife_donors(data: Any, donor_key: str, stratum: str) -> list[tuple[str, str]]:
    """``(stratum level, donor)`` for every donor; each level needs >= 2 donors."""
    table, _ = resolve_table(data, None)
    _check_columns(table, [donor_key, stratum], "Jackknife")
    pairs = table.obs[[stratum, donor_key]].astype(str).drop_duplicates()
    nested = pairs.groupby(donor_key)[stratum].nunique()
    if (nested > 1).any():
        raise DataError(f"Donors {list(nested.index[nested > 1])[:3]} have several "
                        f"{stratum} levels; the jackknife needs donors nested in {stratum}.")
    per = pairs.groupby(stratum)[donor_key].nunique()
    if (per < 2).any():
        raise DataError(f"{stratum} level(s) {list(per.index[per < 2])} have one donor: the "
                        "jackknife needs >= 2 donors per level (with one, donor and "
                        f"{stratum} cannot be told apart).")
    return sorted(map(tuple, pairs[[stratum, donor_key]].to_numpy()))


def _without_donor(data: Any, donor_key: str, donor: str) -> Any:
    """The table's cells of every donor but ``donor`` (a copy)."""
    table, _ = resolve_table(data, None)
    return table[(table.obs[donor_key].astype(str) != donor).to_numpy()].copy()


# -- counterfactual trends -------------------------------------------------------------------
def age_trends(
    model: Any,
    data: Any,
    concept: str = "age",
    source: str = "4wk",
    targets: Sequence[str] | str | None = None,
    groupby: Sequence[str] | str | None = ("cell_type", "domain"),
    genes: Sequence[str] | None = None,
    *,
    donor_key: str | None | bool = None,
    level: float = 0.95,
    test: str = "t-test",
    alpha: float = 0.05,
    min_effect: float = DEFAULT_MIN_EFFECT,
    min_cells: int = 10,
    min_donor_cells: int = 5,
    null: str = "auto",
    switched: str = "exclude",
    marginal: bool = True,
    cells: Any = None,
    table_key: str | None = None,
    key_added: str = Key.uns.TRENDS,
    store_counterfactuals: bool = True,
    copy: bool = False,
    progress: Callable[[float], Any] | None = None,
    **counterfactual_kwargs: Any,
) -> pd.DataFrame | None:
    """Trends of expression along a concept (age) from CausCell counterfactuals, with error
    control from donors and model seeds (never from the number of generated cells).
    Written into the data (scverse style: in place, returning ``None``, unless ``copy=True``).

    For the cells labelled ``concept == source`` (optionally restricted by ``cells``), each
    model generates ``do(concept = target)`` for every target; a cell's effect is the paired
    change ``layers['delta']`` (counterfactual minus the same cell generated without
    intervention). Per target, group and gene:

    - per model and per source **donor** (mouse) the mean change of that donor's cells;
    - the effect (``mean_change``) = mean over models of the mean over donors (donors with
      ``min_donor_cells`` cells in the group are the replicates; with fewer than two such
      donors, the cell mean of the group);
    - its variance from the units of replication: donor-to-donor variance / D (with >= 2
      donors) plus model-to-model variance / M (with >= 2 models, an ensemble over training
      seeds), Welch-Satterthwaite degrees of freedom; a ``level`` t-interval and a two-sided
      t-test p-value; ``unit`` names what was used (``"donors+models"``, ``"donors"``,
      ``"models"``, or ``"none"``: one donor and one model, no interval and no p-value).
      When the ensemble holds jackknife models (one per donor left out,
      :func:`train_ensemble` with ``jackknife=``), the donor term is their stratified
      jackknife variance instead (``"donors (jackknife)+models"``): donor sampling measured
      on the model, which shrinks and pools effects, rather than on the observed donors;
    - Benjamini-Hochberg q-values (``padj``) over every defined test of the call;
      ``significant = padj < alpha and |mean_change| >= min_effect``.

    Rows whose source group or target label rests on one donor are flagged ``one_donor`` (and
    a warning is issued): there, age and mouse are confounded and the interval reflects only
    model uncertainty. Generated cells are never counted as replicates: more cells per donor
    make each donor's mean more precise, not the test more significant.

    Parameters
    ----------
    model
        A trained :class:`~napari_causcell.CausCell` with ``concept`` among its concepts, or a
        list of them (an ensemble: the same data and settings, different seeds; see
        :func:`train_ensemble`). One model gives no seed-to-seed term (its spread over the
        source donors stands in). Models that record a left-out donor
        (``train_params['left_out']``) give the donor jackknife, not the effect.
    data
        AnnData or SpatialData holding the cells (raw counts, as the model was trained).
    concept
        The ordered concept to move along (e.g. ``"age"``).
    source
        Label of the cells to intervene on (e.g. ``"4wk"``).
    targets
        Label(s) to set; default every other label of ``concept``.
    groupby
        ``obs`` columns defining groups (e.g. ``["cell_type", "domain"]``), taken from the
        **source** (factual) cells; ``None`` for one group of all cells.
    genes
        Genes to test (default all model genes).
    donor_key
        The donor (mouse) column; default the first of ``donor``, ``donor_id``, ``mouse``, ...
        in obs; ``False``: no donors (every cell of one unknown donor).
    level
        Confidence level of the interval ``ci_low`` .. ``ci_high`` (default 0.95).
    test
        Only ``"t-test"`` (replicate-level tests; kept for compatibility).
    alpha
        Level of the BH q-value (``padj``).
    min_effect
        Smallest absolute mean change (log-normalised units) called significant
        (default :data:`DEFAULT_MIN_EFFECT` = 0.1).
    min_cells
        Groups with fewer source cells are not tested.
    min_donor_cells
        Donors with fewer source cells in a group are not replicates of that group.
    null
        The null distribution of the test statistics.

        - ``"empirical"``: the donor term also gets the donors' **shared** variance (a
          mouse's offset common to every group, which the model's pooling over groups does
          not average away: the within-age variance of each donor's mean deviation across
          the groups, moderated over genes, times ``1/D_source + 1/D_target``); then every
          standard error of the call is rescaled by the scale of the **empirical null**
          (:func:`empirical_null`, Efron's method), estimated from the central statistics
          of the call. The observed-donor term overstates how much the model's pooled
          effects move with the donors, so without this the test is conservative. Needs at
          least 200 defined tests. Fit in ``params`` (``null_scale``, ``null_center``).
        - ``"theoretical"``: each test's own t distribution.
        - ``"auto"`` (default): ``"empirical"`` for an ensemble (2 or more models on all
          donors, no jackknife models) with donor replication in at least 200 tests;
          ``"theoretical"`` otherwise (one model, one donor per age, jackknife, or few
          tests). ``params['null']`` says which was used.

        With 2 mice per age on two simulated tissues the 5-model ensemble's test was
        calibrated with ``"empirical"`` (null p <= 0.1 in 10 % and 9 % of null tests),
        recovered 14 and 14 of 15 planted trends (direct donor test 13 and 14) with 9 % and
        8 % false calls at q <= 0.1 (direct test 13 % and 12 %); with ``"theoretical"`` 10
        and 13 of 15 with 0 % and 2 % (docs/brain_aging.md, "Measured on the built-in
        tissue").
    switched
        ``"exclude"`` (default): cells whose groupby labels the intervention changes (e.g. an
        OPC that becomes an oligodendrocyte under do(age), as the label SCM allows) are left
        out of their group, so a per-type trend is the change of cells that stay that type;
        ``"include"`` keeps them (a total effect, including type switches).
    marginal
        Also test all cells together and each prefix of ``groupby`` (e.g. per cell type over
        all domains), written with ``"all"`` in the columns left out.
    cells
        Further restriction of the source cells (see :func:`select_cells`).
    table_key
        Table of a SpatialData.
    key_added
        Where the result is stored in the table's ``uns``.
    store_counterfactuals
        Keep each target's counterfactual of the first model (as
        :func:`~napari_causcell.tl.counterfactual` does: table ``<key_added>_<concept>_<target>``,
        e.g. ``causcell_trends_age_90wk``, of a SpatialData, or ``adata.uns['causcell'][...]``);
        needed by :func:`napari_causcell.pl.age_trends` and
        :func:`napari_causcell.pl.spatial_trend`. Ignored with ``copy=True``.
    copy
        Return the results table instead of writing anything; ``data`` is left untouched.
    progress
        Called as ``progress(fraction)`` while generating.
    **counterfactual_kwargs
        Passed to :meth:`CausCell.counterfactual` (``steps``, ``seed``, ``donor``,
        ``n_samples``, ...). With ``n_samples > 1`` the deltas are averaged per cell first.

    Returns
    -------
    None or pandas.DataFrame
        ``None`` by default (read ``uns[key_added]['results']`` of the table). With
        ``copy=True`` the results table (as squidpy, the computed result, not a copy of
        ``data``; the replicates and donor variances are only written in place). One row per
        target x group x gene: ``method`` ("causcell"), ``target``, the groupby
        columns, ``gene``, ``n_source`` (cells), ``n_target`` (= ``n_source``),
        ``n_donors_source`` (replicate donors of the group), ``n_donors_target`` (donors
        observed at the target label in the group), ``n_models``, ``mean_source`` (mean
        observed log-normalised expression of the source cells), ``mean_target``
        (``mean_source + mean_change``), ``mean_change`` (the effect), ``se``, ``ci_low``,
        ``ci_high`` (the ``level`` interval), ``df``, ``statistic`` (t), ``pvalue``, ``padj``
        (BH q-value), ``direction`` ("up"/"down"), ``significant``, ``unit`` (the units of
        replication) and ``one_donor``.

    Writes
    ------
    Unless ``copy=True`` (each key is logged at INFO level, logger ``napari_causcell.tl``):

    - ``uns[key_added] = {"results": <that DataFrame>, "params": {...}, "skipped":
      <groups below min_cells>, "replicates": <per model, donor, group and gene mean
      changes, the input of trend_statistics>, "donor_variance": <per group and gene the
      observed donors' pooled within-age variance>}`` in the table;
    - when ``store_counterfactuals``, one counterfactual per target (see above): table
      ``<key_added>_<concept>_<target>`` of a SpatialData, or
      ``adata.uns['causcell']['<key_added>_<concept>_<target>']``.

    Raises
    ------
    ConceptError
        Unknown concept or label, or a target equal to the source.
    DataError
        Missing groupby column, no source cells, or no group with ``min_cells`` cells.
    """
    _check_params(test, alpha, min_effect, min_cells, null)
    if test != "t-test":
        raise ValueError("age_trends tests replicates (donors, models) with a t-test; "
                         f"test={test!r} is for direct_trends(unit='cells').")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if switched not in ("exclude", "include"):
        raise ValueError(f"switched must be 'exclude' or 'include', got {switched!r}")
    models = _as_models(model)
    models.sort(key=lambda m: _left_out(m) is not None)  # models on all donors first
    model = models[0]
    if _left_out(model) is not None:
        raise DataError("Every model left a donor out: pass the models trained on all donors "
                        "too (tl.train_ensemble(..., jackknife=...) returns both).")
    if concept not in model.concepts:
        raise ConceptError(f"Unknown concept {concept!r}; the model's concepts are "
                           f"{model.concepts}.")
    targets = _check_labels(model.concept_space.categories[concept], concept, source, targets)
    groupby = _as_list(groupby)
    table, table_key = resolve_table(data, table_key or getattr(model, "table_key", None))
    _check_columns(table, [concept, *groupby], "Concept/groupby")
    donor_col = _donor_column(table, donor_key)
    mask = table.obs[concept].astype(str).to_numpy() == str(source)
    if not mask.any():
        raise DataError(f"No cells with {concept}={source!r} in the data.")
    if cells is not None:
        mask &= select_cells(table, cells)
        if not mask.any():
            raise DataError(f"No cells with {concept}={source!r} among the chosen cells.")
    genes = list(model.genes) if genes is None else _as_list(genes)
    unknown = [g for g in genes if g not in model.genes]
    if unknown or not genes:
        raise DataError(f"Genes not modelled: {unknown[:5]} (the model has {len(model.genes)}).")
    gidx = [list(model.genes).index(g) for g in genes]

    obs = table.obs.loc[mask, groupby].copy() if groupby else table.obs.loc[mask, []].copy()
    names = np.asarray(table.obs_names[mask]).astype(str)
    donors = (table.obs.loc[mask, donor_col].astype(str).to_numpy() if donor_col
              else np.full(len(names), "unknown"))
    donor_names = sorted(set(donors))
    n_samples = int(counterfactual_kwargs.get("n_samples", 1))
    reps, skipped, keys, n_excluded = [], [], {}, {}
    n_steps = len(targets) * len(models)
    for t_i, target in enumerate(targets):
        do = {concept: target}
        for m_i, mod in enumerate(models):
            step = None
            if progress is not None:
                def step(f, i=t_i * len(models) + m_i):
                    progress((i + f) / n_steps)
            if (m_i == 0 and store_counterfactuals and not copy
                    and not (is_spatialdata(data) and n_samples > 1)):
                key = _slug(f"{key_added}_{concept}_{target}")  # not an intervention's key
                _tl_counterfactual(data, mod, do, cells=mask, table_key=table_key,
                                   key_added=key, overwrite=True, progress=step,
                                   **counterfactual_kwargs)  # trends' own tables
                cf = stored_counterfactual(data, key)
                keys[target] = key
            else:
                cf = mod.counterfactual(table[mask], do=do, progress=step,
                                        **counterfactual_kwargs)
            d_all = _dense(cf.layers[Key.layers.DELTA])[:, gidx]
            keep = np.ones(cf.n_obs, dtype=bool)
            if switched == "exclude":
                for c in groupby:
                    if f"factual_{c}" in cf.obs and c in cf.obs:
                        keep &= (cf.obs[c].astype(str).to_numpy()
                                 == cf.obs[f"factual_{c}"].astype(str).to_numpy())
            sid = cf.obs[Key.obs.SOURCE_ID].astype(str).to_numpy()
            delta = pd.DataFrame(d_all[keep]).groupby(sid[keep]).mean().reindex(names)
            delta = delta.to_numpy()
            kept = ~np.isnan(delta).any(1)
            n_excluded[f"{target}/{m_i}"] = int((~kept).sum())
            fact = _dense(cf.layers[Key.layers.FACTUAL][: len(names)])[:, gidx]
            for lev in _levels(groupby, marginal):
                for key_vals, pos in _groups(obs, lev, groupby):
                    pos = pos[kept[pos]]
                    if len(pos) < min_cells:
                        if m_i == 0:
                            skipped.append({"target": target, **key_vals,
                                            "n_cells": int(len(pos))})
                        continue
                    for dn in donor_names:
                        p_d = pos[donors[pos] == dn]
                        if not len(p_d):
                            continue
                        reps.append(pd.DataFrame({
                            "model": m_i, "target": target, **key_vals, "donor": dn,
                            "gene": genes, "n_cells": len(p_d),
                            "mean_delta": delta[p_d].mean(0),
                            "mean_factual": fact[p_d].mean(0)}))
    if not reps:
        raise DataError(f"No group has {min_cells} or more source cells; lower min_cells or "
                        "group more coarsely.")
    replicates = pd.concat(reps, ignore_index=True)
    # a group must have the same cells under every model (a switched cell may differ)
    if len(models) > 1:
        gkeys = ["target", *groupby]
        full = replicates.groupby(gkeys, observed=True)["model"].nunique().rename("n_m")
        replicates = replicates.merge(full.reset_index(), on=gkeys, how="left")
        replicates = replicates[replicates["n_m"] == len(models)].drop(columns="n_m")
        # cells per donor: the ensemble's smallest (switching differs slightly per model)
        replicates["n_cells"] = replicates.groupby(
            [*gkeys, "donor", "gene"], observed=True)["n_cells"].transform("min")
    # donor-to-donor variation of the observed cells (all ages), and donors per target
    x_obs = _dense(expression(table, list(model.genes)))[:, gidx]
    donors_all = (table.obs[donor_col].astype(str).to_numpy() if donor_col
                  else np.full(table.n_obs, "unknown"))
    dvar = _donor_variance(x_obs, table.obs[groupby] if groupby else table.obs[[]],
                           table.obs[concept].astype(str).to_numpy(), donors_all, groupby,
                           marginal, min_donor_cells)
    shared_s2, shared_df = _shared_donor_variance(dvar, len(genes))
    dv_rows, td_rows = [], []
    for gkey, v in dvar.items():
        vals = dict(zip(groupby, gkey))
        dv_rows.append(pd.DataFrame({**vals, "gene": genes, "donor_s2": v["s2"],
                                     "donor_df": float(v["df"]), "donor_cells": v["cells"],
                                     "shared_s2": shared_s2, "shared_df": shared_df}))
        for target in targets:
            td_rows.append({"target": target, **vals,
                            "n_donors_target": len(v["means"].get(target, []))})
    donor_variance = pd.concat(dv_rows, ignore_index=True)
    jack = pd.DataFrame([{"model": i, "stratum": str(_left_out(m)["stratum"])}
                         for i, m in enumerate(models) if _left_out(m) is not None])
    df = trend_statistics(replicates, donor_variance, level=level, alpha=alpha,
                          min_effect=min_effect, min_donor_cells=min_donor_cells,
                          n_donors_target=pd.DataFrame(td_rows),
                          jackknife=jack if len(jack) else None, null=null)
    prior = df.attrs.get("prior", {})
    n_full = len(models) - len(jack)
    params = {
        "method": "causcell", "concept": concept, "source": str(source), "targets": targets,
        "groupby": groupby, "test": "t-test", "alpha": alpha, "min_effect": min_effect,
        "min_cells": min_cells, "min_donor_cells": min_donor_cells, "level": level,
        "marginal": marginal, "donor_key": donor_col or "", "n_models": n_full,
        "n_jackknife": len(jack),
        "switched": switched, "n_switched_excluded": n_excluded,
        "n_source_cells": int(mask.sum()), "counterfactuals": keys,
        "prior_df": {k: v["d0"] for k, v in prior.items()}, **_null_params(df),
    }
    if not copy:
        _store(table, key_added, df, params, skipped, replicates=replicates,
               donor_variance=donor_variance)
    _warn_one_donor(df, "trend")
    if len(jack) and (jack.groupby("stratum").size() < 3).any():
        warnings.warn(
            "Donor jackknife with 2 donors at an age: its donor variance has one degree of "
            "freedom per age. On the simulated tissue it was calibrated on one data set and "
            "anti-conservative on another (null p <= 0.1 in 17 % of null tests, 15 % false "
            "calls at q <= 0.1; docs/brain_aging.md): read its q-values as exploratory, and "
            "the ensemble without jackknife models for error control (with 3 donors per age "
            "the jackknife was calibrated on both).", UserWarning,
            stacklevel=2)
    if n_full == 1:
        warnings.warn(
            "One model: its training-seed error is not measured, so its p-values can be too "
            "small (on the simulated tissue single models' calls were 1-3 % false at q <= 0.1, "
            "18-57 % with an earlier engine; an ensemble of 5 models, whose test is calibrated "
            "by the default empirical null, 8-9 %; docs/brain_aging.md). "
            "Pass several models trained with different seeds (tl.train_ensemble) for error "
            "control.", UserWarning,
            stacklevel=2)
    return df if copy else None


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_")


# -- statistics over replicates ----------------------------------------------------------------
def _t_interval(effect: np.ndarray, var: np.ndarray, df: np.ndarray,
                level: float) -> tuple[np.ndarray, ...]:
    """SE, interval, t statistic and two-sided p from an estimate, its variance and df."""
    from scipy import stats

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


# -- empirical Bayes variance moderation (Smyth 2004, as in limma) -----------------------------
def _trigamma_inverse(x: float) -> float:
    from scipy.special import polygamma

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
    degrees of freedom, and the median prior variance).
    """
    from scipy.special import digamma, polygamma

    s2 = np.asarray(s2, float)
    df = np.asarray(df, float)
    ok = np.isfinite(s2) & (s2 > 0) & (df > 0)
    cols = [np.ones(len(s2))]
    if covariate is not None:
        c = np.asarray(covariate, float)
        cols += [c, c ** 2]
        if cells is not None:
            ln = np.log(np.maximum(np.asarray(cells, float), 1.0))
            cols += [ln, c * ln]
    design = np.column_stack(cols)
    ok &= np.isfinite(design).all(1)
    if ok.sum() < 3 * design.shape[1]:
        return s2, df, {"d0": 0.0, "s0": np.nan}
    e = np.log(s2[ok]) - digamma(df[ok] / 2) + np.log(df[ok] / 2)
    coef, *_ = np.linalg.lstsq(design[ok], e, rcond=None)
    emean_all = design @ coef
    resid = e - emean_all[ok]
    evar = float(np.sum(resid ** 2) / (ok.sum() - design.shape[1])
                 - np.mean(polygamma(1, df[ok] / 2)))
    if evar > 0:
        d0 = 2 * _trigamma_inverse(evar)
        s0 = np.exp(emean_all + digamma(d0 / 2) - np.log(d0 / 2))
    else:
        d0 = np.inf
        s0 = np.exp(emean_all)
    s2c = np.where(np.isfinite(s2), s2, 0.0)
    if np.isfinite(d0):
        post = (d0 * s0 + df * s2c) / (d0 + df)
        d_post = df + d0
    else:
        post, d_post = s0, np.full(len(s2), 1e6)
    return post, d_post, {"d0": float(d0), "s0": float(np.median(s0))}


def _donor_variance(x: np.ndarray, obs: pd.DataFrame, labels: np.ndarray, donors: np.ndarray,
                    groupby: list[str], marginal: bool, min_donor_cells: int) -> dict:
    """Per group: each label's donor (pseudobulk) means and donor names, and the within-label
    variance of donor means pooled over all labels with its degrees of freedom (sum of
    D_label - 1); ``finest`` marks the groups of the full ``groupby``.

    Keys are tuples of the groupby values (``"all"`` in marginal rows)."""
    out = {}
    n_genes = x.shape[1]
    for lev in _levels(groupby, marginal):
        for key_vals, pos in _groups(obs, lev, groupby):
            ss, dfree, means, names, sizes = np.zeros(n_genes), 0, {}, {}, []
            for lab in sorted(set(labels[pos])):
                p_lab = pos[labels[pos] == lab]
                m, names[lab] = _donor_means(x, donors, p_lab, min_donor_cells)
                means[lab] = m
                if len(m) >= 2:
                    ss += ((m - m.mean(0)) ** 2).sum(0)
                    dfree += len(m) - 1
                    counts = pd.Series(donors[p_lab]).value_counts()
                    sizes += list(counts[counts >= min_donor_cells])
            out[tuple(key_vals[c] for c in groupby)] = {
                "s2": ss / dfree if dfree else np.full(n_genes, np.nan), "df": dfree,
                "means": means, "donors": names, "finest": len(lev) == len(groupby),
                "cells": float(np.mean(sizes)) if sizes else np.nan}
    return out


def _shared_donor_variance(dvar: dict, n_genes: int) -> tuple[np.ndarray, float]:
    """Per gene, the part of the donors' deviations that all groups share (a mouse's offset
    in every cell type), and its degrees of freedom, from :func:`_donor_variance`'s output.

    In each finest group and label, each donor's mean minus the mean of that label's donors;
    averaged per donor over the groups; the within-label variance of these averages, pooled
    over labels. ``(NaN, 0)`` without two groups or two donors at a label."""
    nothing = np.full(n_genes, np.nan), 0.0
    groups = [v for v in dvar.values() if v["finest"]]
    if len(groups) < 2:
        return nothing
    resid: dict[tuple[str, str], list[np.ndarray]] = {}
    for v in groups:
        for lab in sorted(v["means"]):
            m = v["means"][lab]
            if len(m) < 2:
                continue
            for d, r in zip(v["donors"][lab], m - m.mean(0)):
                resid.setdefault((lab, d), []).append(r)
    ss, dfree = np.zeros(n_genes), 0
    for lab in sorted({k[0] for k in resid}):
        avg = np.stack([np.mean(v, 0) for k, v in resid.items() if k[0] == lab])
        if len(avg) >= 2:
            ss += ((avg - avg.mean(0)) ** 2).sum(0)
            dfree += len(avg) - 1
    return (ss / dfree, float(dfree)) if dfree else nothing


def _jackknife_variance(per_model: np.ndarray, strata: np.ndarray) -> tuple[np.ndarray, float]:
    """Stratified delete-one-donor jackknife variance of the effect, per gene, from the
    effects of the models that left one donor out (``strata`` their donor's level, ``None``
    for models trained on all donors), and its degrees of freedom; NaN and 0 without."""
    var, dfree = np.zeros(per_model.shape[1]), 0.0
    for level in {s_ for s_ in strata if s_ is not None}:
        th = per_model[strata == level]
        if len(th) >= 2:
            var += (len(th) - 1) / len(th) * ((th - th.mean(0)) ** 2).sum(0)
            dfree += len(th) - 1.0
    return (var if dfree > 0 else np.full(per_model.shape[1], np.nan)), dfree


def _combine(effect: np.ndarray, s2_d: np.ndarray, df_d: np.ndarray, c_d: np.ndarray,
             s2_m: np.ndarray, df_m: np.ndarray, n_models: np.ndarray, level: float,
             covariate: np.ndarray, cells_d: np.ndarray, cells_m: np.ndarray) -> dict:
    """Moderate both variance components over all tests, add them, t-interval and p.

    ``var = c_d * s2_d + s2_m / M`` (donor sampling and model seeds), each sample variance
    shrunk by :func:`moderate_variances`; Welch-Satterthwaite degrees of freedom."""
    has_d = np.isfinite(s2_d) & (df_d > 0)
    has_m = np.isfinite(s2_m) & (df_m > 0)
    a = np.zeros(len(effect))
    b = np.zeros(len(effect))
    da = np.full(len(effect), np.inf)
    db = np.full(len(effect), np.inf)
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
    se, lo, hi, stat, p = _t_interval(effect, var, dfree, level)
    p = np.where(np.isfinite(var), p, np.nan)
    return {"se": se, "ci_low": lo, "ci_high": hi, "df": dfree, "statistic": stat,
            "pvalue": p, "unit": unit, "prior": prior}


def _with_shared_term(st: dict, df: pd.DataFrame, c_d: np.ndarray, level: float) -> dict:
    """Add the donors' shared (gene-level) variance, moderated over genes, times ``c_d`` to
    each test's variance: the model pools effects over groups, which averages away the
    donors' group-specific noise but not an offset they carry in every group."""
    s2, dfree = df["shared_s2"].to_numpy(float), df["shared_df"].to_numpy(float)
    ok = np.isfinite(s2) & (dfree > 0) & np.isfinite(st["se"])
    if not ok.any():
        return st
    genes = df["gene"].to_numpy()
    first = pd.Series(np.flatnonzero(ok), index=genes[ok]).groupby(level=0).first()
    post, _, _ = moderate_variances(s2[first.to_numpy()], dfree[first.to_numpy()])
    add = pd.Series(post, index=first.index).reindex(genes).to_numpy(float)
    var = np.where(ok, st["se"] ** 2 + np.broadcast_to(c_d, len(df)) * add, st["se"] ** 2)
    se, lo, hi, stat, p = _t_interval(df["mean_change"].to_numpy(float), var, st["df"], level)
    return {**st, "se": se, "ci_low": lo, "ci_high": hi, "statistic": stat,
            "pvalue": np.where(np.isfinite(st["pvalue"]), p, np.nan)}


def trend_statistics(
    replicates: pd.DataFrame,
    donor_variance: pd.DataFrame | None = None,
    *,
    level: float = 0.95,
    alpha: float = 0.05,
    min_effect: float = DEFAULT_MIN_EFFECT,
    min_donor_cells: int = 5,
    n_donors_target: pd.DataFrame | None = None,
    jackknife: pd.DataFrame | None = None,
    null: str = "auto",
) -> pd.DataFrame:
    """Trend rows (effect, interval, p, BH q) from per-model, per-donor mean changes.

    The statistics step of :func:`age_trends`, public so that an ensemble can be assembled from
    runs made separately: concatenate the ``uns[key]['replicates']`` tables of single-model
    runs after giving each a distinct ``model`` value, and pass one run's
    ``uns[key]['donor_variance']``.

    Per target, group and gene: the effect is the mean over models of the mean over the
    group's source donors with ``min_donor_cells`` cells (the cell mean when none has). Its
    variance has two parts, each a sample variance moderated over all tests of the call by
    :func:`moderate_variances` (empirical Bayes, as limma):

    - donor sampling: the within-age variance of the observed donors' mean expression,
      pooled over ages (``donor_variance``), times ``1/D_source + 1/D_target`` (the model
      learned each age from that many donors);
    - model uncertainty: the variance of the effect over the models (training seeds) / M;
      with a single model, the variance of its change over the group's source donors / D
      (so a noisy sampler is not mistaken for a precise effect).

    Degrees of freedom by Welch-Satterthwaite; ``unit`` says which parts exist.

    Parameters
    ----------
    replicates
        Columns ``model``, ``target``, the groupby columns, ``donor``, ``gene``, ``n_cells``,
        ``mean_delta`` (mean paired change of that donor's source cells in the group under
        that model) and ``mean_factual`` (their mean observed log-normalised expression).
    donor_variance
        Columns: the groupby columns, ``gene``, ``donor_s2``, ``donor_df`` (see above) and
        ``donor_cells`` (mean cells per donor, for the variance trend); ``None``: no donor
        term.
    level
        Confidence level of the interval (default 95 %).
    alpha, min_effect
        A trend is ``significant`` when ``padj < alpha`` and ``|mean_change| >= min_effect``.
    min_donor_cells
        Donors with fewer source cells in a group are not counted as its donors.
    n_donors_target
        Per target and group, ``n_donors_target``: donors observed at the target label (from
        :func:`age_trends`); default unknown (taken as 1).
    jackknife
        Columns ``model`` and ``stratum``: the models of ``replicates`` trained with one donor
        left out (:func:`train_ensemble` with ``jackknife=``) and the level (age) of that
        donor. Then donor sampling is measured on the model itself, by the stratified
        delete-one-donor jackknife ``sum_s (n_s - 1) / n_s * sum_i (effect_(i) - mean_s)^2``
        with ``sum_s (n_s - 1)`` degrees of freedom, instead of the observed donors'
        variance (which overstates the model's: its effects are shrunk and pooled over
        groups); the other models give the effect and the seed term.
    null
        ``"auto"`` (default), ``"theoretical"`` or ``"empirical"`` (see
        :func:`age_trends`). The donors' shared variance comes from the columns
        ``shared_s2`` and ``shared_df`` of ``donor_variance`` when present.

    Returns
    -------
    pandas.DataFrame
        See :func:`age_trends`.
    """
    _check_null(null)
    need = {"model", "target", "donor", "gene", "n_cells", "mean_delta", "mean_factual"}
    missing = need - set(replicates.columns)
    if missing:
        raise DataError(f"Replicates lack columns {sorted(missing)}.")
    groupby = [c for c in replicates.columns if c not in need]
    jk = {} if jackknife is None else dict(zip(jackknife["model"], jackknife["stratum"].astype(str)))
    frames = []
    keys = ["target", *groupby]
    for key, sub in replicates.groupby(keys, sort=False, observed=True):
        key = key if isinstance(key, tuple) else (key,)
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
        s2_j, df_j = _jackknife_variance(per_model, strata)
        e, per_model = e[full_rows], per_model[full_rows]
        m = len(full_rows)
        if m >= 2:  # model uncertainty: the effect's spread over the models
            s2_m, df_m, n_m = per_model.var(0, ddof=1), m - 1.0, float(m)
        elif elig.sum() >= 2:  # one model: the spread of its change over the source donors
            s2_m, df_m, n_m = e[0, elig].var(0, ddof=1), elig.sum() - 1.0, float(elig.sum())
        else:
            s2_m, df_m, n_m = np.nan, 0.0, 1.0
        frames.append(pd.DataFrame({
            "method": "causcell", **dict(zip(keys, map(str, key))), "gene": genes,
            "n_source": int(n_cells.sum()), "n_target": int(n_cells.sum()),
            "n_donors_source": int(elig.sum()), "n_models": m,
            "mean_source": base, "mean_target": base + per_model.mean(0),
            "mean_change": per_model.mean(0),
            "s2_model": s2_m, "df_model": df_m, "n_model_term": n_m,
            "s2_jack": s2_j, "df_jack": df_j,
        }))
    if not frames:
        raise DataError("No replicate rows to test.")
    df = pd.concat(frames, ignore_index=True)
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
    c_d = (1.0 / np.maximum(df["n_donors_source"].to_numpy(float), 1)
           + 1.0 / np.maximum(np.nan_to_num(df["n_donors_target"].to_numpy(float), nan=1.0),
                              1))
    s2_d, df_d = df["donor_s2"].to_numpy(float), np.nan_to_num(df["donor_df"].to_numpy(float))
    if jk:  # donor sampling measured on the model: the jackknife variance is the estimate's
        s2_d, df_d, c_d = df["s2_jack"].to_numpy(float), df["df_jack"].to_numpy(float), 1.0
    st = _combine(df["mean_change"].to_numpy(float), s2_d, df_d, np.broadcast_to(c_d, len(df)),
                  df["s2_model"].to_numpy(float), df["df_model"].to_numpy(float),
                  df["n_model_term"].to_numpy(float), level, df["mean_source"].to_numpy(float),
                  df["donor_cells"].to_numpy(float),
                  df["n_source"].to_numpy(float) / np.maximum(df["n_donors_source"], 1))
    if null == "auto":
        donor_tests = np.isfinite(st["pvalue"]) & pd.Series(st["unit"]).str.contains(
            "donors").to_numpy()
        ensemble = int(df["n_models"].max()) >= 2
        null = ("empirical" if ensemble and not jk and donor_tests.sum() >= MIN_EMPIRICAL_TESTS
                else "theoretical")
    if null == "empirical" and not jk and "shared_s2" in df:
        st = _with_shared_term(st, df, c_d, level)
    for k in ("se", "ci_low", "ci_high", "df", "statistic", "pvalue", "unit"):
        df[k] = st[k]
    one = (df["n_models"] == 1).to_numpy() & (df["unit"] != "none").to_numpy()
    df.loc[one, "unit"] = "donors"  # observed donors and/or the source donors' spread
    if jk:
        df["unit"] = df["unit"].str.replace("donors", "donors (jackknife)", regex=False)
    out = _finish(df, groupby, alpha, min_effect, null, level)
    out.attrs["prior"] = st["prior"]
    return out


# -- the direct test on observed cells -------------------------------------------------------
def direct_trends(
    data: Any,
    concept: str = "age",
    source: str = "4wk",
    targets: Sequence[str] | str | None = None,
    groupby: Sequence[str] | str | None = ("cell_type", "domain"),
    genes: Sequence[str] | None = None,
    *,
    unit: str = "auto",
    donor_key: str | None | bool = None,
    level: float = 0.95,
    test: str = "t-test",
    alpha: float = 0.05,
    min_effect: float = DEFAULT_MIN_EFFECT,
    min_cells: int = 10,
    min_donor_cells: int = 5,
    null: str = "theoretical",
    marginal: bool = True,
    layer: str | None = None,
    log_normalized: bool = False,
    table_key: str | None = None,
    key_added: str = "causcell_direct_trends",
    copy: bool = False,
) -> pd.DataFrame | None:
    """The same trend question asked of the observed cells: target-label vs source-label.
    Written into the data (scverse style: in place, returning ``None``, unless ``copy=True``).

    The baseline for :func:`age_trends`, on the same log-normalised scale the model uses
    (``log1p`` of counts per 10,000 over ``genes``), with the same Benjamini-Hochberg
    correction and ``min_effect`` threshold. The units of replication (``unit``):

    - ``"donors"``: per group, each donor's (mouse's) mean expression is one replicate
      (pseudobulk); the effect is the difference of the donor means, tested by a Welch t-test
      between the target and the source donors (``level`` interval with Welch df). Needs two
      or more donors with ``min_donor_cells`` cells on both sides.
    - ``"cells"``: cells are the replicates (Welch t-test or Mann-Whitney for
      ``test="wilcoxon"``), i.e. pseudo-replicated when there are few donors: donor
      differences count as age.
    - ``"auto"`` (default): donors where a group has two or more per side, cells otherwise
      (those rows are flagged ``one_donor``, with a warning).

    Parameters
    ----------
    data
        AnnData or SpatialData (raw counts in ``.X`` or ``layer``).
    concept, source, targets, groupby, alpha, min_effect, min_cells, marginal, level
        As in :func:`age_trends`; groups need ``min_cells`` cells on **both** sides.
    genes
        Genes to test and normalise over (default all; pass ``model.genes`` to match a model).
    unit
        ``"auto"``, ``"donors"`` (groups without two donors per side are skipped) or
        ``"cells"``.
    donor_key
        The donor column (default guessed: ``donor``, ``donor_id``, ``mouse``, ...).
    test
        Cell-level test: ``"t-test"`` (Welch) or ``"wilcoxon"`` (Mann-Whitney); donor-level
        tests are Welch t-tests.
    min_donor_cells
        Donors with fewer cells in a group are not replicates of that group.
    null
        ``"theoretical"`` (default) or ``"empirical"``: standard errors rescaled by the
        empirical null of the call's t statistics (see :func:`age_trends`; not with
        ``test="wilcoxon"``).
    layer, log_normalized
        Where the counts are, and whether they are already log-normalised.
    table_key
        Table of a SpatialData.
    key_added
        Where the result is stored in the table's ``uns``.
    copy
        Return the results table instead of writing it; ``data`` is left untouched.

    Returns
    -------
    None or pandas.DataFrame
        ``None`` by default (read ``uns[key_added]['results']`` of the table). With
        ``copy=True`` the results table (as squidpy, the computed result, not a copy of
        ``data``): columns as :func:`age_trends` with ``method`` "direct", ``n_source`` /
        ``n_target`` the observed cells on each side, ``n_donors_source`` /
        ``n_donors_target`` the replicate donors, ``n_models`` 0, ``mean_change =
        mean_target - mean_source`` (donor means for ``unit == "donors"``), ``unit``
        ("donors" or "cells").

    Writes
    ------
    Unless ``copy=True``: ``uns[key_added] = {"results": <that DataFrame>, "params": {...},
    "skipped": <groups below min_cells>}`` in the table (logged at INFO level, logger
    ``napari_causcell.tl``).
    """
    if null == "auto":
        raise ValueError("direct_trends takes null='theoretical' (default) or 'empirical'.")
    _check_params(test, alpha, min_effect, min_cells, null)
    if null == "empirical" and test != "t-test":
        raise ValueError("null='empirical' rescales t statistics; use test='t-test'.")
    if unit not in ("auto", "donors", "cells"):
        raise ValueError(f"unit must be 'auto', 'donors' or 'cells', got {unit!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    table, _ = resolve_table(data, table_key)
    groupby = _as_list(groupby)
    _check_columns(table, [concept, *groupby], "Concept/groupby")
    donor_col = _donor_column(table, donor_key)
    if unit == "donors" and donor_col is None:
        raise DataError(f"unit='donors' needs a donor column (tried {list(_DONOR_GUESSES)}); "
                        "pass donor_key=.")
    col = table.obs[concept]
    labels = ([str(c) for c in col.cat.categories] if isinstance(col.dtype, pd.CategoricalDtype)
              else sorted(map(str, col.dropna().unique())))
    targets = _check_labels(labels, concept, source, targets)
    genes = [str(g) for g in table.var_names] if genes is None else _as_list(genes)
    if not genes:
        raise DataError("Give at least one gene.")
    values = col.astype(str).to_numpy()
    src = values == str(source)
    if not src.any():
        raise DataError(f"No cells with {concept}={source!r} in the data.")
    x = _dense(expression(table, genes, layer, log_normalized))
    donors_all = (table.obs[donor_col].astype(str).to_numpy() if donor_col
                  else np.full(table.n_obs, "unknown"))
    # donor (pseudobulk) means per label and group, and their within-label variance pooled
    # over every label of the concept (as a linear model with all ages would)
    dvar = _donor_variance(x, table.obs[groupby] if groupby else table.obs[[]], values,
                           donors_all, groupby, marginal, min_donor_cells)
    frames, skipped = [], []
    for target in targets:
        tgt = values == target
        if not tgt.any():
            raise DataError(f"No cells with {concept}={target!r} in the data.")
        both = src | tgt
        obs = table.obs.loc[both, groupby] if groupby else table.obs.loc[both, []]
        is_tgt = tgt[both]
        xb = x[both]
        for lev in _levels(groupby, marginal):
            for key_vals, pos in _groups(obs, lev, groupby):
                pa, pb = pos[is_tgt[pos]], pos[~is_tgt[pos]]
                a, b = xb[pa], xb[pb]
                if len(a) < min_cells or len(b) < min_cells:
                    skipped.append({"target": target, **key_vals, "n_source": int(len(b)),
                                    "n_target": int(len(a))})
                    continue
                v = dvar[tuple(key_vals[c] for c in groupby)]
                da = v["means"].get(target, np.empty((0, len(genes))))
                dbn = v["means"].get(str(source), np.empty((0, len(genes))))
                by_donor = unit != "cells" and v["df"] > 0 and len(da) and len(dbn)
                if unit == "donors" and not by_donor:
                    skipped.append({"target": target, **key_vals, "n_source": int(len(b)),
                                    "n_target": int(len(a))})
                    continue
                row = {"method": "direct", "target": target, **key_vals, "gene": genes,
                       "n_source": len(b), "n_target": len(a), "n_donors_source": len(dbn),
                       "n_donors_target": len(da), "n_models": 0}
                if by_donor:
                    row.update(mean_source=dbn.mean(0), mean_target=da.mean(0),
                               mean_change=da.mean(0) - dbn.mean(0), donor_s2=v["s2"],
                               donor_df=float(v["df"]), donor_cells=v["cells"],
                               c_d=1.0 / len(da) + 1.0 / len(dbn), unit="donors")
                else:  # cells as replicates (pseudo-replicated; flagged one_donor)
                    stat, p = _two_sample(a, b, test)
                    change, var, dfree = _welch(a, b)
                    se, lo, hi, _, _ = _t_interval(change, var, dfree, level)
                    row.update(mean_source=b.mean(0), mean_target=a.mean(0),
                               mean_change=change, se=se, ci_low=lo, ci_high=hi, df=dfree,
                               statistic=stat, pvalue=p, unit="cells")
                frames.append(pd.DataFrame(row))
    if not frames:
        raise DataError(f"No group has {min_cells} or more cells at both {source!r} and the "
                        "target" + (" with donor replication" if unit == "donors" else "")
                        + "; lower min_cells or group more coarsely.")
    res = pd.concat(frames, ignore_index=True)
    for c in ("se", "ci_low", "ci_high", "df", "statistic", "pvalue", "donor_s2", "donor_df",
              "donor_cells", "c_d"):
        if c not in res:
            res[c] = np.nan
    don = (res["unit"] == "donors").to_numpy()
    prior = {}
    if don.any():
        n = int(don.sum())
        st = _combine(res.loc[don, "mean_change"].to_numpy(float),
                      res.loc[don, "donor_s2"].to_numpy(float),
                      res.loc[don, "donor_df"].to_numpy(float),
                      res.loc[don, "c_d"].to_numpy(float), np.full(n, np.nan), np.zeros(n),
                      np.ones(n), level, res.loc[don, "mean_source"].to_numpy(float),
                      res.loc[don, "donor_cells"].to_numpy(float), np.ones(n))
        for k in ("se", "ci_low", "ci_high", "df", "statistic", "pvalue"):
            res.loc[don, k] = st[k]
        res.loc[don & ~np.isfinite(res["pvalue"].to_numpy(float)), "unit"] = "none"
        prior = st["prior"]
    df = _finish(res, groupby, alpha, min_effect, null, level)
    params = {
        "method": "direct", "concept": concept, "source": str(source), "targets": targets,
        "groupby": groupby, "test": test, "unit": unit, "alpha": alpha,
        "min_effect": min_effect, "min_cells": min_cells, "min_donor_cells": min_donor_cells,
        "level": level, "marginal": marginal, "donor_key": donor_col or "",
        "prior_df": {k: v["d0"] for k, v in prior.items()}, **_null_params(df),
    }
    if not copy:
        _store(table, key_added, df, params, skipped)
    _warn_one_donor(df, "direct trend")
    return df if copy else None


def _donor_means(x: np.ndarray, donors: np.ndarray, pos: np.ndarray,
                 min_donor_cells: int) -> tuple[np.ndarray, list[str]]:
    """Donors x genes mean expression of the donors with ``min_donor_cells`` cells in pos,
    and those donors' names (sorted)."""
    out, names = [], []
    for d in sorted(set(donors[pos])):
        p = pos[donors[pos] == d]
        if len(p) >= min_donor_cells:
            out.append(x[p].mean(0))
            names.append(d)
    return np.asarray(out).reshape(len(out), x.shape[1]), names


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference of means (a - b), its variance and Welch-Satterthwaite df."""
    with np.errstate(all="ignore"):
        va, vb = a.var(0, ddof=1) / len(a), b.var(0, ddof=1) / len(b)
        var = va + vb
        df = var ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    df = np.where(np.isfinite(df), df, min(len(a), len(b)) - 1.0)
    return a.mean(0) - b.mean(0), var, df


# -- agreement with known trends --------------------------------------------------------------
@dataclass
class TrendComparison:
    """How many known trends a result recovers.

    ``table`` has one row per known trend: its columns, ``tested`` (the gene/group was in the
    result), ``mean_change``, ``padj``, ``observed`` direction, ``significant`` and
    ``recovered`` (significant with the known direction). ``k`` trends of ``n`` are recovered;
    ``wrong_direction`` counts significant calls against the known direction; ``n_significant``
    counts all significant calls of the compared rows of the result (known or not).
    """

    table: pd.DataFrame
    k: int
    n: int
    wrong_direction: int
    n_significant: int
    target: str

    def __str__(self) -> str:
        return (f"{self.k} of {self.n} known trends recovered at {self.target} "
                f"({self.wrong_direction} significant in the wrong direction; "
                f"{self.n_significant} significant calls in all)")


def compare_trends(
    result: pd.DataFrame,
    reference: pd.DataFrame,
    target: str | None = None,
) -> TrendComparison:
    """Agreement of a trend result with known trends (e.g. the published ones).

    Each reference row (``gene``, ``direction`` "up"/"down", and group columns such as
    ``cell_type`` and optionally ``domain``) is matched to the result row with the same gene
    and group; result groupby columns the reference lacks (or leaves empty) match the marginal
    rows (``"all"``), so run :func:`age_trends` with ``marginal=True`` (the default). A trend is
    *recovered* when that row is significant with the reference's direction.

    Parameters
    ----------
    result
        Output of :func:`age_trends` or :func:`direct_trends`.
    reference
        Known trends, e.g. :data:`napari_causcell.datasets.PUBLISHED_AGE_TRENDS`.
    target
        Which target of the result (default: its last one, e.g. the oldest age).

    Returns
    -------
    TrendComparison
        ``table``, ``k`` of ``n`` recovered, ``wrong_direction``, ``n_significant``.
    """
    for col in ("gene", "direction"):
        if col not in reference:
            raise DataError(f"The reference needs a {col!r} column; it has "
                            f"{list(reference.columns)}.")
    for col in ("gene", "target", "mean_change", "padj", "significant"):
        if col not in result:
            raise DataError(f"{col!r} is not a column of the result: pass the output of "
                            "tl.age_trends or tl.direct_trends.")
    bad = set(reference["direction"].astype(str)) - {"up", "down"}
    if bad:
        raise DataError(f"Reference directions must be 'up' or 'down', got {sorted(bad)}.")
    targets = list(dict.fromkeys(result["target"].astype(str)))
    if target is None:
        target = targets[-1]
    if str(target) not in targets:
        raise DataError(f"Target {target!r} is not in the result; targets are {targets}.")
    res = result[result["target"].astype(str) == str(target)]
    fixed = set(_RESULT_COLUMNS) | {"target", "method"}
    group_cols = [c for c in res.columns if c not in fixed]
    ref_groups = [c for c in reference.columns if c in group_cols]
    for col in reference.columns:
        if col not in group_cols and col not in ("gene", "direction") and col in (
                "cell_type", "domain"):
            raise DataError(f"The reference groups by {col!r} but the result does not; "
                            f"result groups: {group_cols}.")
    index = res.set_index(group_cols + ["gene"]) if group_cols else res.set_index(["gene"])
    rows = []
    for rec in reference.to_dict("records"):
        key = []
        for col in group_cols:
            val = rec.get(col) if col in ref_groups else None
            key.append(ALL if val is None or (isinstance(val, float) and np.isnan(val))
                       or val == "" else str(val))
        key.append(str(rec["gene"]))
        hit = index.loc[tuple(key)] if tuple(key) in index.index else None
        if isinstance(hit, pd.DataFrame):
            hit = hit.iloc[0]
        out = dict(rec)
        if hit is None:
            out.update(tested=False, mean_change=np.nan, padj=np.nan, observed="",
                       significant=False, recovered=False)
        else:
            sig = bool(hit["significant"])
            obs_dir = "up" if hit["mean_change"] > 0 else "down"
            out.update(tested=True, mean_change=float(hit["mean_change"]),
                       padj=float(hit["padj"]), observed=obs_dir, significant=sig,
                       recovered=sig and obs_dir == str(rec["direction"]))
        rows.append(out)
    table = pd.DataFrame(rows)
    wrong = int((table["significant"] & (table["observed"] != table["direction"])).sum())
    return TrendComparison(table=table, k=int(table["recovered"].sum()), n=len(table),
                           wrong_direction=wrong, n_significant=int(res["significant"].sum()),
                           target=str(target))


# -- the small-data setting ------------------------------------------------------------------
_DONOR_GUESSES = ("donor", "donor_id", "mouse", "animal", "individual", "sample")


def subsample_donors(
    data: Any,
    per_age: int = 2,
    by: str = "cell count",
    which: str = "highest",
    *,
    age_key: str = "age",
    donor_key: str | None = None,
    seed: int = 0,
    table_key: str | None = None,
) -> ad.AnnData:
    """Keep ``per_age`` donors (mice) per age: the paper's small-data setting.

    Parameters
    ----------
    data
        AnnData or SpatialData (its table is used).
    per_age
        Donors kept per age label.
    by
        ``"cell count"`` (rank donors by their number of cells; ties by name) or ``"random"``
        (seeded).
    which
        ``"highest"`` or ``"lowest"`` cell counts (ignored for ``by="random"``).
    age_key
        The age column.
    donor_key
        The donor column (default: the first of ``donor``, ``donor_id``, ``mouse``, ... in obs).
    seed
        Seed for ``by="random"``.
    table_key
        Table of a SpatialData.

    Returns
    -------
    anndata.AnnData
        A copy of the chosen donors' cells, with unused categories removed and
        ``uns['causcell_subsample'] = {"per_age", "by", "which", "donors": {age: [donors]},
        "n_cells": {donor: n}}``.

    Raises
    ------
    DataError
        Missing columns, or an age with fewer than ``per_age`` donors.
    """
    if by not in ("cell count", "random"):
        raise ValueError(f"by must be 'cell count' or 'random', got {by!r}")
    if which not in ("highest", "lowest"):
        raise ValueError(f"which must be 'highest' or 'lowest', got {which!r}")
    if int(per_age) < 1:
        raise ValueError(f"per_age must be >= 1, got {per_age}")
    table, _ = resolve_table(data, table_key)
    if donor_key is None:
        donor_key = next((c for c in _DONOR_GUESSES if c in table.obs), None)
        if donor_key is None:
            raise DataError(f"No donor column found (tried {list(_DONOR_GUESSES)}); pass "
                            "donor_key=.")
    _check_columns(table, [age_key, donor_key], "Age/donor")
    ages = table.obs[age_key].astype(str).to_numpy()
    donors = table.obs[donor_key].astype(str).to_numpy()
    counts = pd.Series(donors).value_counts()
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[str]] = {}
    for age in pd.unique(ages):
        names = sorted(set(donors[ages == age]))
        if len(names) < per_age:
            raise DataError(f"Age {age!r} has {len(names)} donor(s), fewer than per_age="
                            f"{per_age}.")
        if by == "random":
            pick = list(rng.choice(names, size=per_age, replace=False))
        else:
            sign = -1 if which == "highest" else 1
            pick = sorted(names, key=lambda d: (sign * counts[d], d))[:per_age]
        chosen[str(age)] = sorted(map(str, pick))
    keep = np.isin(donors, [d for v in chosen.values() for d in v])
    out = table[keep].copy()
    for col in out.obs.columns:
        if isinstance(out.obs[col].dtype, pd.CategoricalDtype):
            out.obs[col] = out.obs[col].cat.remove_unused_categories()
    out.uns["causcell_subsample"] = {
        "per_age": int(per_age), "by": by, "which": which, "age_key": age_key,
        "donor_key": donor_key, "donors": chosen,
        "n_cells": {d: int(counts[d]) for v in chosen.values() for d in v},
    }
    return out


def trend_matrix(result: pd.DataFrame, target: str | None = None,
                 value: str = "mean_change", significant_only: bool = True,
                 groupby: Sequence[str] | None = None) -> pd.DataFrame:
    """Groups x genes matrix of a trend result (helper of the heatmap; ``NaN`` where not
    significant when ``significant_only``). Only genes with a significant call are kept."""
    targets = list(dict.fromkeys(result["target"].astype(str)))
    target = targets[-1] if target is None else str(target)
    if target not in targets:
        raise DataError(f"Target {target!r} is not in the result; targets are {targets}.")
    res = result[result["target"].astype(str) == target]
    fixed = set(_RESULT_COLUMNS) | {"target", "method"}
    cols = list(groupby) if groupby is not None else [c for c in res.columns if c not in fixed]
    if cols:  # finest level only (no 'all' rows) unless every row is marginal
        fine = np.ones(len(res), dtype=bool)
        for c in cols:
            fine &= res[c].astype(str).to_numpy() != ALL
        if fine.any():
            res = res[fine]
    keep_genes = res.loc[res["significant"], "gene"].unique() if significant_only else \
        res["gene"].unique()
    res = res[res["gene"].isin(keep_genes)]
    if not len(res):
        return pd.DataFrame(index=pd.Index([], name="group"), columns=pd.Index([], name="gene"),
                            dtype=float)
    vals = res[value].where(res["significant"]) if significant_only else res[value]
    label = res[cols].astype(str).agg(" | ".join, axis=1) if cols else pd.Series("all",
                                                                                 index=res.index)
    mat = pd.DataFrame({"group": label, "gene": res["gene"], "v": vals}).pivot_table(
        index="group", columns="gene", values="v", aggfunc="first", dropna=False)
    return mat.reindex(columns=[g for g in keep_genes if g in mat.columns])


def domains_per_slice(data: Any, domain_key: str = "domain", slice_key: str = "slice",
                      table_key: str | None = None) -> pd.DataFrame:
    """Cells per spatial domain (rows) and slice (columns), given or from
    :func:`~napari_causcell.tl.spatial_domains`; writes nothing."""
    table, _ = resolve_table(data, table_key)
    _check_columns(table, [domain_key, slice_key], "Domain/slice")
    return pd.crosstab(table.obs[domain_key].astype(str), table.obs[slice_key].astype(str))

