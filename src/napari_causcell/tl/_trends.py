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
  (``log1p`` of counts per 10,000 over the model's genes);
- test = two-sided t-test (one-sample on the paired deltas for CausCell, Welch for the direct
  test) or Wilcoxon (signed-rank / Mann-Whitney);
- Benjamini-Hochberg over every target x group x gene test of one call;
- a call is *significant* when ``padj < alpha`` **and** ``|mean change| >= min_effect``: with
  thousands of generated cells a tiny shift is "significant", so the effect threshold, not the
  p-value, decides in practice. Both are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..data import expression, is_spatialdata, resolve_table
from ..data.concepts import ConceptError
from ..data.preprocess import DataError
from ._counterfactual import counterfactual as _tl_counterfactual
from ._counterfactual import select_cells

__all__ = [
    "TrendComparison", "age_trends", "compare_trends", "direct_trends", "subsample_donors",
    "TESTS", "DEFAULT_MIN_EFFECT",
]

#: Statistical tests offered.
TESTS = ("t-test", "wilcoxon")
#: Default effect-size threshold (log-normalised units, natural log1p of counts per 10k).
DEFAULT_MIN_EFFECT = 0.1
ALL = "all"  # value of a groupby column in marginal rows

_RESULT_COLUMNS = [
    "method", "target", "gene", "n_source", "n_target", "mean_source", "mean_target",
    "mean_change", "statistic", "pvalue", "padj", "direction", "significant",
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


def _check_params(test: str, alpha: float, min_effect: float, min_cells: int) -> None:
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


def _one_sample(d: np.ndarray, test: str) -> tuple[np.ndarray, np.ndarray]:
    """Test per column of ``d`` (cells x genes) that its location is 0."""
    from scipy import stats

    with np.errstate(all="ignore"):
        if test == "t-test":
            res = stats.ttest_1samp(d, 0.0, axis=0)
            return np.asarray(res.statistic, float), np.asarray(res.pvalue, float)
        stat = np.full(d.shape[1], np.nan)
        p = np.ones(d.shape[1])
        ok = np.any(d != 0, axis=0)
        if ok.any():
            res = stats.wilcoxon(d[:, ok], axis=0, zero_method="wilcox")
            stat[ok], p[ok] = res.statistic, res.pvalue
        return stat, p


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


def _finish(frames: list[pd.DataFrame], groupby: list[str], alpha: float,
            min_effect: float) -> pd.DataFrame:
    """Concatenate, Benjamini-Hochberg over all tests, call direction and significance."""
    from scipy.stats import false_discovery_control

    df = pd.concat(frames, ignore_index=True)
    p = df["pvalue"].to_numpy(float)
    p = np.where(np.isfinite(p), p, 1.0)  # an undefined test (no spread) is not evidence
    df["pvalue"] = p
    df["padj"] = false_discovery_control(p, method="bh") if len(p) else p
    change = df["mean_change"].to_numpy(float)
    df["direction"] = np.where(change > 0, "up", np.where(change < 0, "down", "none"))
    df["significant"] = (df["padj"].to_numpy() < alpha) & (np.abs(change) >= min_effect)
    cols = ["method", "target", *groupby] + [c for c in _RESULT_COLUMNS
                                             if c not in ("method", "target")]
    return df[cols]


def _store(table: ad.AnnData, key: str, df: pd.DataFrame, params: dict,
           skipped: list[dict]) -> None:
    skipped_df = pd.DataFrame(skipped).astype({"target": str}) if skipped else pd.DataFrame(
        {"target": pd.Series(dtype=str)})
    table.uns[key] = {"results": df, "params": params, "skipped": skipped_df}


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
    test: str = "t-test",
    alpha: float = 0.05,
    min_effect: float = DEFAULT_MIN_EFFECT,
    min_cells: int = 10,
    marginal: bool = True,
    cells: Any = None,
    table_key: str | None = None,
    key_added: str = "causcell_trends",
    store_counterfactuals: bool = True,
    progress: Callable[[float], Any] | None = None,
    **counterfactual_kwargs: Any,
) -> pd.DataFrame:
    """Trends of expression along a concept (age) from CausCell counterfactuals.

    For the cells labelled ``concept == source`` (optionally restricted by ``cells``), the
    model generates ``do(concept = target)`` for every target. Per target, group and gene the
    effect is the mean of the paired change ``layers['delta']`` (counterfactual minus the same
    cell generated without intervention, same sampler noise), tested against 0 over cells
    (two-sided one-sample t-test = paired t-test of counterfactual vs reconstruction, or
    Wilcoxon signed-rank). P-values are Benjamini-Hochberg adjusted over all tests of the call.
    A trend is ``significant`` when ``padj < alpha`` and ``|mean_change| >= min_effect``; its
    ``direction`` is the sign of the mean change.

    Parameters
    ----------
    model
        A trained :class:`~napari_causcell.CausCell` with ``concept`` among its concepts.
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
    test
        ``"t-test"`` (default) or ``"wilcoxon"``.
    alpha
        Level of the adjusted p-value.
    min_effect
        Smallest absolute mean change (log-normalised units) called significant
        (default :data:`DEFAULT_MIN_EFFECT` = 0.1).
    min_cells
        Groups with fewer source cells are not tested.
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
        Keep each target's counterfactual (as :func:`~napari_causcell.tl.counterfactual`
        does: table ``<key_added>_<concept>_<target>``, e.g. ``causcell_trends_age_90wk``, of a
        SpatialData, or ``adata.uns['causcell'][...]``); needed by :func:`napari_causcell.pl.age_trends` and
        :func:`napari_causcell.pl.spatial_trend`.
    progress
        Called as ``progress(fraction)`` while generating.
    **counterfactual_kwargs
        Passed to :meth:`CausCell.counterfactual` (``steps``, ``seed``, ``donor``,
        ``n_samples``, ...). With ``n_samples > 1`` the deltas are averaged per cell first.

    Returns
    -------
    pandas.DataFrame
        One row per target x group x gene: ``method`` ("causcell"), ``target``, the groupby
        columns, ``gene``, ``n_source`` (cells), ``n_target`` (= ``n_source``), ``mean_source``
        (mean observed log-normalised expression of the source cells), ``mean_target``
        (``mean_source + mean_change``), ``mean_change``, ``statistic``, ``pvalue``, ``padj``,
        ``direction`` ("up"/"down"), ``significant``.

        Writes ``uns[key_added] = {"results": <that DataFrame>, "params": {...}, "skipped":
        <DataFrame of groups below min_cells>}`` in the table (``params``: concept, source,
        targets, groupby, test, alpha, min_effect, min_cells, counterfactual keys) and, when
        ``store_counterfactuals``, one counterfactual per target (see above).

    Raises
    ------
    ConceptError
        Unknown concept or label, or a target equal to the source.
    DataError
        Missing groupby column, no source cells, or no group with ``min_cells`` cells.
    """
    _check_params(test, alpha, min_effect, min_cells)
    if not getattr(model, "is_trained", False):
        raise RuntimeError("Train the model (or load a trained one) before computing trends.")
    if concept not in model.concepts:
        raise ConceptError(f"Unknown concept {concept!r}; the model's concepts are "
                           f"{model.concepts}.")
    targets = _check_labels(model.concept_space.categories[concept], concept, source, targets)
    groupby = _as_list(groupby)
    table, table_key = resolve_table(data, table_key or getattr(model, "table_key", None))
    _check_columns(table, [concept, *groupby], "Concept/groupby")
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
    n_samples = int(counterfactual_kwargs.get("n_samples", 1))
    frames, skipped, keys = [], [], {}
    for t_i, target in enumerate(targets):
        do = {concept: target}
        step = None
        if progress is not None:
            def step(f, t_i=t_i):
                progress((t_i + f) / len(targets))
        if store_counterfactuals and not (is_spatialdata(data) and n_samples > 1):
            key = _slug(f"{key_added}_{concept}_{target}")  # not an intervention's key
            cf = _tl_counterfactual(data, model, do, cells=mask, table_key=table_key,
                                    key_added=key, overwrite=True, progress=step,
                                    **counterfactual_kwargs)  # trends' own tables
            keys[target] = key
        else:
            cf = model.counterfactual(table[mask], do=do, progress=step, **counterfactual_kwargs)
        delta = pd.DataFrame(_dense(cf.layers["delta"])[:, gidx])
        delta = delta.groupby(cf.obs["source_id"].astype(str).to_numpy()).mean().reindex(names)
        delta = delta.to_numpy()
        fact = _dense(cf.layers["factual"][: len(names)])[:, gidx]
        for level in _levels(groupby, marginal):
            for key_vals, pos in _groups(obs, level, groupby):
                if len(pos) < min_cells:
                    skipped.append({"target": target, **key_vals, "n_cells": int(len(pos))})
                    continue
                stat, p = _one_sample(delta[pos], test)
                change = delta[pos].mean(0)
                base = fact[pos].mean(0)
                frames.append(pd.DataFrame({
                    "method": "causcell", "target": target, **key_vals, "gene": genes,
                    "n_source": len(pos), "n_target": len(pos), "mean_source": base,
                    "mean_target": base + change, "mean_change": change, "statistic": stat,
                    "pvalue": p,
                }))
    if not frames:
        raise DataError(f"No group has {min_cells} or more source cells; lower min_cells or "
                        "group more coarsely.")
    df = _finish(frames, groupby, alpha, min_effect)
    params = {
        "method": "causcell", "concept": concept, "source": str(source), "targets": targets,
        "groupby": groupby, "test": test, "alpha": alpha, "min_effect": min_effect,
        "min_cells": min_cells, "marginal": marginal, "n_source_cells": int(mask.sum()),
        "counterfactuals": keys,
    }
    _store(table, key_added, df, params, skipped)
    return df


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_")


# -- the direct test on observed cells -------------------------------------------------------
def direct_trends(
    data: Any,
    concept: str = "age",
    source: str = "4wk",
    targets: Sequence[str] | str | None = None,
    groupby: Sequence[str] | str | None = ("cell_type", "domain"),
    genes: Sequence[str] | None = None,
    *,
    test: str = "t-test",
    alpha: float = 0.05,
    min_effect: float = DEFAULT_MIN_EFFECT,
    min_cells: int = 10,
    marginal: bool = True,
    layer: str | None = None,
    log_normalized: bool = False,
    table_key: str | None = None,
    key_added: str = "causcell_direct_trends",
) -> pd.DataFrame:
    """The same trend test run directly on observed cells: target-label vs source-label cells.

    The baseline for :func:`age_trends`: per target, group and gene, observed cells with
    ``concept == target`` are compared with those with ``concept == source`` (two-sided Welch
    t-test, or Mann-Whitney for ``test="wilcoxon"``), on the same log-normalised scale the
    model uses (``log1p`` of counts per 10,000 over ``genes``), with the same
    Benjamini-Hochberg correction and the same ``min_effect`` threshold. Cells are the units,
    so with few donors per age the test is pseudo-replicated (donor effects count as age).

    Parameters
    ----------
    data
        AnnData or SpatialData (raw counts in ``.X`` or ``layer``).
    concept, source, targets, groupby, test, alpha, min_effect, min_cells, marginal
        As in :func:`age_trends`; groups need ``min_cells`` cells on **both** sides.
    genes
        Genes to test and normalise over (default all; pass ``model.genes`` to match a model).
    layer, log_normalized
        Where the counts are, and whether they are already log-normalised.
    table_key
        Table of a SpatialData.
    key_added
        Where the result is stored in the table's ``uns``.

    Returns
    -------
    pandas.DataFrame
        Columns as :func:`age_trends` with ``method`` "direct", ``n_source`` / ``n_target``
        the observed cells on each side, ``mean_change = mean_target - mean_source``. Writes
        ``uns[key_added] = {"results": ..., "params": ..., "skipped": ...}``.
    """
    _check_params(test, alpha, min_effect, min_cells)
    table, _ = resolve_table(data, table_key)
    groupby = _as_list(groupby)
    _check_columns(table, [concept, *groupby], "Concept/groupby")
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
    frames, skipped = [], []
    for target in targets:
        tgt = values == target
        if not tgt.any():
            raise DataError(f"No cells with {concept}={target!r} in the data.")
        both = src | tgt
        obs = table.obs.loc[both, groupby] if groupby else table.obs.loc[both, []]
        is_tgt = tgt[both]
        xb = x[both]
        for level in _levels(groupby, marginal):
            for key_vals, pos in _groups(obs, level, groupby):
                a, b = xb[pos[is_tgt[pos]]], xb[pos[~is_tgt[pos]]]
                if len(a) < min_cells or len(b) < min_cells:
                    skipped.append({"target": target, **key_vals, "n_source": int(len(b)),
                                    "n_target": int(len(a))})
                    continue
                stat, p = _two_sample(a, b, test)
                frames.append(pd.DataFrame({
                    "method": "direct", "target": target, **key_vals, "gene": genes,
                    "n_source": len(b), "n_target": len(a), "mean_source": b.mean(0),
                    "mean_target": a.mean(0), "mean_change": a.mean(0) - b.mean(0),
                    "statistic": stat, "pvalue": p,
                }))
    if not frames:
        raise DataError(f"No group has {min_cells} or more cells at both {source!r} and the "
                        "target; lower min_cells or group more coarsely.")
    df = _finish(frames, groupby, alpha, min_effect)
    params = {
        "method": "direct", "concept": concept, "source": str(source), "targets": targets,
        "groupby": groupby, "test": test, "alpha": alpha, "min_effect": min_effect,
        "min_cells": min_cells, "marginal": marginal,
    }
    _store(table, key_added, df, params, skipped)
    return df


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

