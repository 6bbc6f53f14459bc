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

The pieces live by topic: the statistics in :mod:`napari_causcell.stats` (numpy and scipy
only); pseudobulk in ``_pseudobulk``; the ensemble in ``_ensemble``; the replicate statistics
in ``_trend_statistics``; the direct test in ``_direct_trends``; scoring in
``_trend_scoring``; the small-data setting in ``_donors``. This module runs
:func:`age_trends` and gathers the public names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._utils import warn_user
from .._keys import Key
from ..data import expression, is_spatialdata, resolve_table
from ..errors import ConceptError, DataError, SettingError
from ..stats import moderate_variances
from ._counterfactual import counterfactual as _tl_counterfactual
from ._counterfactual import select_cells, stored_counterfactual
from ._defaults import data_and_model, other_concepts, time_concept, youngest_label
from ._direct_trends import direct_trends
from ._donors import domains_per_slice, subsample_donors
from ._ensemble import as_models, left_out, train_ensemble
from ._pseudobulk import donor_variance, shared_donor_variance, source_replicates
from ._trend_common import (DEFAULT_MIN_EFFECT, NULLS, TESTS, as_list, check_columns,
                            check_labels, check_level, check_params, dense, donor_column,
                            donor_labels, slug)
from ._trend_docs import AGE_TRENDS_INTRO, AGE_TRENDS_PARAMETERS, AGE_TRENDS_RESULTS, fill_doc
from ._trend_results import empirical_null, null_params, store, warn_one_donor
from ._trend_scoring import TrendComparison, compare_trends, trend_matrix
from ._trend_statistics import trend_statistics

__all__ = [
    "TrendComparison", "age_trends", "compare_trends", "direct_trends", "subsample_donors",
    "trend_statistics", "moderate_variances", "train_ensemble", "empirical_null", "TESTS",
    "NULLS", "DEFAULT_MIN_EFFECT", "domains_per_slice", "trend_matrix",
]


@dataclass
class _Run:
    """The checked inputs of one :func:`age_trends` call."""

    models: list[Any]
    concept: str
    source: str
    targets: list[str]
    groupby: list[str]
    genes: list[str]
    gidx: list[int]
    table: ad.AnnData
    table_key: str | None
    donor_col: str | None
    mask: np.ndarray


@fill_doc(intro=AGE_TRENDS_INTRO, parameters=AGE_TRENDS_PARAMETERS, results=AGE_TRENDS_RESULTS)
def age_trends(
    data: Any, model: Any, concept: str | None = None, source: str | None = None,
    targets: Sequence[str] | str | None = None,
    groupby: Sequence[str] | str | None = "auto",
    genes: Sequence[str] | None = None, *, donor_key: str | None | bool = None,
    level: float = 0.95, test: str = "t-test", alpha: float = 0.05,
    min_effect: float = DEFAULT_MIN_EFFECT, min_cells: int = 10, min_donor_cells: int = 5,
    null: str = "auto", switched: str = "exclude", marginal: bool = True, cells: Any = None,
    table_key: str | None = None, key_added: str = Key.uns.TRENDS,
    store_counterfactuals: bool = True, copy: bool = False,
    progress: Callable[[float], Any] | None = None, **counterfactual_kwargs: Any,
) -> pd.DataFrame | None:
    """Trends of expression along a concept (age) from CausCell counterfactuals, with error
    control from donors and model seeds (never from the number of generated cells).
    Written into the data (scverse style: in place, returning ``None``, unless ``copy=True``).

    {intro}

    Parameters
    ----------
    {parameters}

    {results}
    """
    data, model = data_and_model(data, model, "age_trends")
    _check_settings(test, alpha, min_effect, min_cells, null, level, switched)
    run = _prepare(model, data, concept, source, targets, groupby, genes, donor_key, cells,
                   table_key)
    concept, source = run.concept, run.source
    n_samples = int(counterfactual_kwargs.get("n_samples", 1))
    keep_cf = store_counterfactuals and not copy and not (is_spatialdata(data) and n_samples > 1)
    replicates, skipped, keys, n_excluded = _generate(
        run, data, key_added if keep_cf else None, switched, marginal, min_cells, progress,
        counterfactual_kwargs)
    dv, n_donors_target = _observed_donors(run, marginal, min_donor_cells)
    jack = pd.DataFrame([{"model": i, "stratum": str(left_out(m)["stratum"])}
                         for i, m in enumerate(run.models) if left_out(m) is not None])
    df = trend_statistics(replicates, dv, level=level, alpha=alpha, min_effect=min_effect,
                          min_donor_cells=min_donor_cells, n_donors_target=n_donors_target,
                          jackknife=jack if len(jack) else None, null=null)
    params = {
        "method": "causcell", "concept": concept, "source": str(source),
        "targets": run.targets, "groupby": run.groupby, "test": "t-test", "alpha": alpha,
        "min_effect": min_effect, "min_cells": min_cells, "min_donor_cells": min_donor_cells,
        "level": level, "marginal": marginal, "donor_key": run.donor_col or "",
        "n_models": len(run.models) - len(jack), "n_jackknife": len(jack),
        "switched": switched, "n_switched_excluded": n_excluded,
        "n_source_cells": int(run.mask.sum()), "counterfactuals": keys,
        "prior_df": {k: v["d0"] for k, v in df.attrs.get("prior", {}).items()},
        "replication": df.attrs.get("replication", ""),
        **null_params(df),
    }
    if not copy:
        store(run.table, key_added, df, params, skipped, replicates=replicates,
              donor_variance=dv)
    warn_one_donor(df, "trend")
    _warn_ensemble(jack, len(run.models) - len(jack), bool(df["pvalue"].notna().any()))
    return df if copy else None


def _check_settings(test: str, alpha: float, min_effect: float, min_cells: int, null: str,
                    level: float, switched: str) -> None:
    check_params(test, alpha, min_effect, min_cells, null)
    if test != "t-test":
        raise SettingError("age_trends tests replicates (donors, models) with a t-test; "
                         f"test={test!r} is for direct_trends(unit='cells').")
    check_level(level)
    if switched not in ("exclude", "include"):
        raise SettingError(f"switched must be 'exclude' or 'include', got {switched!r}")


def _prepare(model: Any, data: Any, concept: str | None, source: str | None, targets: Any,
             groupby: Any, genes: Any, donor_key: Any, cells: Any, table_key: str | None) -> _Run:
    """Check the models, labels, columns, source cells and genes of a call; derive the
    defaults (concept, source, groupby) from the model and the data."""
    models = as_models(model)
    models.sort(key=lambda m: left_out(m) is not None)  # models on all donors first
    first = models[0]
    if left_out(first) is not None:
        raise DataError("Every model left a donor out: pass the models trained on all donors "
                        "too (tl.train_ensemble(..., jackknife=...) returns both).")
    concept = time_concept(first.concepts) if concept is None else concept
    if concept not in first.concepts:
        raise ConceptError(f"Unknown concept {concept!r}; the model's concepts are "
                           f"{first.concepts}.")
    labels = first.concept_space.categories[concept]
    source = youngest_label(labels) if source is None else str(source)
    targets = check_labels(labels, concept, source, targets)
    table, table_key = resolve_table(data, table_key or getattr(first, "table_key", None))
    groupby = (other_concepts(first.concepts, concept, table.obs)
               if isinstance(groupby, str) and groupby == "auto" else as_list(groupby))
    check_columns(table, [concept, *groupby], "Concept/groupby")
    donor_col = donor_column(table, donor_key)
    mask = _source_mask(table, concept, source, cells)
    genes = list(first.genes) if genes is None else as_list(genes)
    unknown = [g for g in genes if g not in first.genes]
    if unknown or not genes:
        raise DataError(f"Genes not modelled: {unknown[:5]} (the model has {len(first.genes)}).")
    gidx = [list(first.genes).index(g) for g in genes]
    return _Run(models, concept, source, targets, groupby, genes, gidx, table, table_key,
                donor_col, mask)


def _source_mask(table: ad.AnnData, concept: str, source: str, cells: Any) -> np.ndarray:
    """The cells to intervene on: labelled ``source``, among ``cells`` if given."""
    mask = table.obs[concept].astype(str).to_numpy() == str(source)
    if not mask.any():
        raise DataError(f"No cells with {concept}={source!r} in the data.")
    if cells is not None:
        mask &= select_cells(table, cells)
        if not mask.any():
            raise DataError(f"No cells with {concept}={source!r} among the chosen cells.")
    return mask


def _generate(run: _Run, data: Any, key_added: str | None, switched: str, marginal: bool,
              min_cells: int, progress: Callable[[float], Any] | None,
              cf_kwargs: dict) -> tuple[pd.DataFrame, list[dict], dict, dict]:
    """Every model's counterfactual at every target, as per-donor replicates; also the
    skipped groups, the stored counterfactuals' keys and the switched cells left out."""
    mask, groupby = run.mask, run.groupby
    obs = run.table.obs.loc[mask, groupby].copy() if groupby else run.table.obs.loc[mask, []].copy()
    names = np.asarray(run.table.obs_names[mask]).astype(str)
    donors = donor_labels(run.table, run.donor_col)[mask]
    reps, skipped, keys, n_excluded = [], [], {}, {}
    n_models = len(run.models)
    for t_i, target in enumerate(run.targets):
        for m_i, mod in enumerate(run.models):
            key = slug(f"{key_added}_{run.concept}_{target}") if key_added and not m_i else None
            step = _step(progress, t_i * n_models + m_i, len(run.targets) * n_models)
            cf = _counterfactual(run, data, mod, target, key, step, cf_kwargs)
            if key:
                keys[target] = key
            delta, fact, kept = _per_cell_change(cf, run.gidx, names, groupby, switched)
            n_excluded[f"{target}/{m_i}"] = int((~kept).sum())
            frames, skip = source_replicates(m_i, target, delta, fact, kept, obs, donors,
                                             groupby, marginal, min_cells, run.genes)
            reps += frames
            skipped += skip if m_i == 0 else []
    if not reps:
        raise DataError(f"No group has {min_cells} or more source cells; lower min_cells or "
                        "group more coarsely.")
    replicates = _complete_groups(pd.concat(reps, ignore_index=True), groupby, n_models)
    return replicates, skipped, keys, n_excluded


def _step(progress: Callable[[float], Any] | None, i: int,
          n: int) -> Callable[[float], Any] | None:
    """Progress of step ``i`` of ``n`` as a fraction of the whole call."""
    if progress is None:
        return None

    def step(f: float) -> Any:
        return progress((i + f) / n)

    return step


def _counterfactual(run: _Run, data: Any, model: Any, target: str, key: str | None,
                    step: Callable[[float], Any] | None, cf_kwargs: dict) -> ad.AnnData:
    """``do(concept = target)`` of the source cells; stored under ``key`` when given."""
    do = {run.concept: target}
    if key is None:
        return model.counterfactual(run.table[run.mask], do=do, progress=step, **cf_kwargs)
    _tl_counterfactual(data, model, do, cells=run.mask, table_key=run.table_key,
                       key_added=key, overwrite=True, progress=step,
                       **cf_kwargs)  # trends' own tables, not an intervention's key
    return stored_counterfactual(data, key)


def _per_cell_change(cf: ad.AnnData, gidx: list[int], names: np.ndarray, groupby: list[str],
                     switched: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each source cell's paired change (mean over its samples, in ``names`` order), its
    factual expression, and which cells are kept (``switched="exclude"`` leaves out cells
    whose groupby labels the intervention changed in every sample)."""
    d_all = dense(cf.layers[Key.layers.DELTA])[:, gidx]
    keep = np.ones(cf.n_obs, dtype=bool)
    if switched == "exclude":
        for c in groupby:
            if f"factual_{c}" in cf.obs and c in cf.obs:
                keep &= (cf.obs[c].astype(str).to_numpy()
                         == cf.obs[f"factual_{c}"].astype(str).to_numpy())
    sid = cf.obs[Key.obs.SOURCE_ID].astype(str).to_numpy()
    delta = pd.DataFrame(d_all[keep]).groupby(sid[keep]).mean().reindex(names).to_numpy()
    kept = ~np.isnan(delta).any(1)
    fact = dense(cf.layers[Key.layers.FACTUAL][: len(names)])[:, gidx]
    return delta, fact, kept


def _complete_groups(replicates: pd.DataFrame, groupby: list[str],
                     n_models: int) -> pd.DataFrame:
    """Keep the groups every model has (a switched cell may differ between models), with
    each donor's cells the ensemble's smallest count."""
    if n_models < 2:
        return replicates
    gkeys = ["target", *groupby]
    full = replicates.groupby(gkeys, observed=True)["model"].nunique().rename("n_m")
    replicates = replicates.merge(full.reset_index(), on=gkeys, how="left")
    replicates = replicates[replicates["n_m"] == n_models].drop(columns="n_m")
    replicates["n_cells"] = replicates.groupby(
        [*gkeys, "donor", "gene"], observed=True)["n_cells"].transform("min")
    return replicates


def _observed_donors(run: _Run, marginal: bool,
                     min_donor_cells: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Donor-to-donor variation of the observed cells (all labels) per group and gene, with
    the donors' shared part, and the donors observed at each target per group."""
    table, groupby = run.table, run.groupby
    x_obs = dense(expression(table, list(run.models[0].genes)))[:, run.gidx]
    dvar = donor_variance(x_obs, table.obs[groupby] if groupby else table.obs[[]],
                          table.obs[run.concept].astype(str).to_numpy(),
                          donor_labels(table, run.donor_col), groupby, marginal,
                          min_donor_cells)
    shared_s2, shared_df = shared_donor_variance(dvar, len(run.genes))
    dv_rows, td_rows = [], []
    for gkey, v in dvar.items():
        vals = dict(zip(groupby, gkey))
        dv_rows.append(pd.DataFrame({**vals, "gene": run.genes, "donor_s2": v["s2"],
                                     "donor_df": float(v["df"]), "donor_cells": v["cells"],
                                     "shared_s2": shared_s2, "shared_df": shared_df}))
        td_rows += [{"target": target, **vals,
                     "n_donors_target": len(v["means"].get(target, []))}
                    for target in run.targets]
    return pd.concat(dv_rows, ignore_index=True), pd.DataFrame(td_rows)


def _warn_ensemble(jack: pd.DataFrame, n_full: int, tested: bool = True) -> None:
    """Warn about a jackknife with 2 donors at an age, and about a single model whose rows
    were tested (``tested``; without donor replication nothing is)."""
    if len(jack) and (jack.groupby("stratum").size() < 3).any():
        warn_user(
            "Donor jackknife with 2 donors at an age: its donor variance has one degree of "
            "freedom per age. On the simulated tissue it was calibrated on one data set and "
            "anti-conservative on another (null p <= 0.1 in 17 % of null tests, 15 % false "
            "calls at q <= 0.1; docs/brain_aging.md): read its q-values as exploratory, and "
            "the ensemble without jackknife models for error control (with 3 donors per age "
            "the jackknife was calibrated on both).", UserWarning)
    if n_full == 1 and tested:
        warn_user(
            "One model: its training-seed error is not measured, so its p-values can be too "
            "small (on the simulated tissue single models' calls were 1-3 % false at q <= 0.1, "
            "18-57 % with an earlier engine; an ensemble of 5 models, whose test is calibrated "
            "by the default empirical null, 8-9 %; docs/brain_aging.md). "
            "Pass several models trained with different seeds (tl.train_ensemble) for error "
            "control.", UserWarning)
