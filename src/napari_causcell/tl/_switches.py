"""Which cells changed a descendant label under an intervention, and from what to what."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._utils import warn_user
from .._keys import Key
from ..data import resolve_table
from ..errors import DataError
from ._utils import check_anndata

SWITCH_COLUMNS = ["concept", "factual", "counterfactual", "n_cells", "share"]


def label_switches(cf: ad.AnnData) -> pd.DataFrame:
    """Label changes of a counterfactual, one row per (concept, factual, counterfactual label).

    Under ``do(age=old)`` with ``age -> cell_type`` in the graph a cell's type may respond (the
    total effect): this says how often it did. ``n_cells`` counts cells (rows of ``cf``, every
    sample), ``share`` is the share of the cells with that factual label. Rows sorted by
    ``n_cells``, largest first; empty when no label changed (or ``hold`` kept them).
    """
    check_anndata(cf, "cf")
    rows = []
    for concept in (cf.uns.get(Key.uns.CAUSCELL) or {}).get("descendants", []):
        before_col = Key.obs.factual(concept)
        if before_col not in cf.obs or concept not in cf.obs:
            continue
        before = cf.obs[before_col].astype(str).to_numpy()
        after = cf.obs[concept].astype(str).to_numpy()
        moved = before != after
        if not moved.any():
            continue
        pairs = pd.DataFrame({"factual": before[moved], "counterfactual": after[moved]})
        counts = pairs.value_counts().rename("n_cells").reset_index()
        totals = pd.Series(before).value_counts()
        counts["share"] = counts["n_cells"] / totals.reindex(counts["factual"]).to_numpy()
        counts.insert(0, "concept", concept)
        rows.append(counts)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            SWITCH_COLUMNS, (str, str, str, np.int64, float))})
    out = pd.concat(rows, ignore_index=True)
    return out.sort_values("n_cells", ascending=False, kind="stable").reset_index(drop=True)


def switch_summary(cf: ad.AnnData, top: int = 3) -> str:
    """One line on the label changes of ``cf`` (``""`` when none), e.g. ``"cell_type
    changed in 17% of the cells: MSN -> InN 168 of 357 (47%), ..."``; front ends and the
    command line print it with every counterfactual."""
    table = label_switches(cf)
    if table.empty:
        return ""
    from ..cf import share

    parts = []
    for concept, rows in table.groupby("concept", sort=False):
        n_moved = int(rows["n_cells"].sum())
        first = ", ".join(
            f"{r.factual} -> {r.counterfactual} {r.n_cells} of "
            f"{round(r.n_cells / r.share)} ({share(r.share)})"
            for r in rows.head(top).itertuples(index=False))
        more = f", {len(rows) - top} more" if len(rows) > top else ""
        parts.append(f"{concept} changed in {share(n_moved / cf.n_obs)} of the cells: "
                     f"{first}{more}")
    return "; ".join(parts)


#: Section / donor columns looked for by :func:`switch_confounds` when ``by`` is not given.
SECTION_GUESSES = ("section", "slice", "library_id", "sample", "donor", "donor_id", "mouse",
                   "animal", "individual")
CONFOUND_COLUMNS = ["concept", "label", "intervened", "source", "target", "freq_source",
                    "freq_target", "time_difference", "section_spread", "section_noise",
                    "sections_per_label", "confounded"]


def switch_confounds(cf: ad.AnnData, data: Any, by: str | None = None, *,
                     table_key: str | None = None, min_cells: int = 20,
                     warn: bool = True) -> pd.DataFrame:
    """Whether the label switches of ``cf`` may follow a sampling confound.

    For each label of a descendant concept that ``do()`` switched cells into or out of (e.g.
    ``cell_type`` MSN under ``do(age=old)``), its frequency among the data's cells of the
    intervened labels (``freq_source``: the intervened cells' own label, ``freq_target``: the
    do() label; ``time_difference`` their absolute difference) is compared with its frequency
    between the sections/donors (``by``) within one intervened label (``section_spread``: the
    largest range over the sections of one label with ``min_cells`` cells; ``section_noise``:
    the range sampling alone gives at 95 %, ``1.96 sqrt(p (1 - p) (1/n_a + 1/n_b))``). A
    switch is ``confounded`` when the spread beyond noise is at least the time difference,
    or when no intervened label has two sections (sections and labels cannot be told apart).

    Parameters
    ----------
    cf
        A counterfactual (:func:`counterfactual` or ``CausCell.counterfactual``).
    data
        The AnnData / SpatialData it was generated from (all cells, every label).
    by
        The section or donor column (default: the first of :data:`SECTION_GUESSES` in obs).
    table_key
        Table of a SpatialData.
    min_cells
        Cells a section needs at a label to count in the spread.
    warn
        Warn (``UserWarning``, with the numbers) when a switch may follow a confound.

    Returns
    -------
    pandas.DataFrame
        One row per switched label, columns :data:`CONFOUND_COLUMNS`, confounded first
        (empty when nothing switched).

    Raises
    ------
    DataError
        ``by`` (or the intervened / descendant columns) not in obs, or no section column.
    """
    table, _ = resolve_table(data, table_key)
    switches = label_switches(cf)
    if switches.empty:
        return pd.DataFrame(columns=CONFOUND_COLUMNS)
    by = _section_column(table, by)
    do = dict((cf.uns.get(Key.uns.CAUSCELL) or {}).get("do", {}))
    rows = []
    for concept, sub in switches.groupby("concept", sort=False):
        labels = list(dict.fromkeys([*sub["counterfactual"], *sub["factual"]]))
        for var, target in do.items():
            rows += _confound_rows(table, cf, concept, labels, str(var), str(target), by,
                                   min_cells)
    out = pd.DataFrame(rows, columns=CONFOUND_COLUMNS)
    out = out.sort_values(["confounded", "time_difference"], ascending=False,
                          kind="stable").reset_index(drop=True)
    out.attrs["by"] = by
    if warn and out["confounded"].any():
        warn_user(confound_text(out), UserWarning)
    return out


def _section_column(table: ad.AnnData, by: str | None) -> str:
    if by is None:
        by = next((c for c in SECTION_GUESSES if c in table.obs), None)
        if by is None:
            raise DataError(f"No section or donor column found (tried {list(SECTION_GUESSES)});"
                            f" pass by=, one of {list(table.obs.columns)}.")
    if by not in table.obs:
        raise DataError(f"Column {by!r} is not in obs; columns: {list(table.obs.columns)}.")
    return by


def _confound_rows(table: ad.AnnData, cf: ad.AnnData, concept: str, labels: list[str],
                   var: str, target: str, by: str, min_cells: int) -> list[dict]:
    """The rows of :func:`switch_confounds` for one descendant concept and do(var=target)."""
    for col in (var, concept):
        if col not in table.obs:
            raise DataError(f"Column {col!r} is not in obs; columns: "
                            f"{list(table.obs.columns)}.")
    obs = table.obs[[var, concept, by]].astype(str)
    src_ids = pd.Index(cf.obs[Key.obs.SOURCE_ID].astype(str)) if Key.obs.SOURCE_ID in cf.obs \
        else pd.Index(cf.obs_names.astype(str))
    own = obs[var].reindex(src_ids.unique()).dropna()
    if not (own != target).any():
        return []
    source = str(pd.Series(own).value_counts().index[0])  # the intervened cells' own label
    kept = obs[obs[var].isin([source, target])]
    sections = kept.groupby([var, by], observed=True).size()
    per_label = sections[sections >= min_cells].groupby(level=0).size()
    n_sec = int(per_label.reindex([source, target]).fillna(0).max())
    big = sections[sections >= min_cells]
    rows = []
    for lab in labels:
        hit = kept[concept] == lab
        freq = hit.groupby(kept[var]).mean()
        diff = abs(float(freq.get(target, 0.0)) - float(freq.get(source, 0.0)))
        sp, noise = _spread(hit.groupby([kept[var], kept[by]], observed=True).mean()
                            .reindex(big.index), big)
        rows.append({"concept": concept, "label": lab, "intervened": var, "source": source,
                     "target": target, "freq_source": float(freq.get(source, 0.0)),
                     "freq_target": float(freq.get(target, 0.0)), "time_difference": diff,
                     "section_spread": sp, "section_noise": noise,
                     "sections_per_label": n_sec,
                     "confounded": bool(n_sec < 2 or sp - noise >= diff)})
    return rows


def _spread(by_sec: pd.Series, size: pd.Series) -> tuple[float, float]:
    """Largest range of a label's frequency over the sections of one intervened label, and
    the range sampling alone gives at 95 % for the two sections spanning it (NaN, NaN with
    fewer than two sections per label). The range with the largest excess is reported."""
    best = (np.nan, np.nan)
    for _, f in by_sec.groupby(level=0):
        if len(f) < 2:
            continue
        hi, lo = f.idxmax(), f.idxmin()
        p = float((f * size[f.index]).sum() / size[f.index].sum())
        noise = 1.96 * np.sqrt(p * (1 - p) * (1 / size[hi] + 1 / size[lo]))
        spread = float(f[hi] - f[lo])
        if np.isnan(best[0]) or spread - noise > best[0] - best[1]:
            best = (spread, float(noise))
    return best


def confound_text(table: pd.DataFrame, top: int = 3) -> str:
    """The warning of :func:`switch_confounds` (``""`` when no switch is confounded)."""
    bad = table[table["confounded"]]
    if bad.empty:
        return ""
    r0 = bad.iloc[0]
    by = table.attrs.get("by", "section")
    what = "; ".join(
        f"{r.label} is {r.freq_source:.1%} of {r.intervened}={r.source} cells and "
        f"{r.freq_target:.1%} of {r.intervened}={r.target} cells"
        + ("" if not np.isfinite(r.section_spread)
           else f", but varies by {r.section_spread:.1%} between the {by} values of one "
                f"{r.intervened} (sampling alone: {r.section_noise:.1%})")
        for r in bad.head(top).itertuples(index=False))
    why = (f"each {r0.intervened} label has one {by} (with enough cells), so the difference "
           f"between {r0.intervened} labels is also a difference between {by} values"
           if r0.sections_per_label < 2 else
           f"the {by} values of one {r0.intervened} differ, beyond sampling noise, as much "
           f"as the {r0.intervened} labels")
    return (f"The {r0.concept} switches under do({r0.intervened}={r0.target}) may follow a "
            f"sampling confound: {what}. {why[0].upper()}{why[1:]}; hold the labels (the "
            "'Keep' box, hold= or --hold), or check the graph.")


def confound_note(cf: ad.AnnData, data: Any, by: str | None = None,
                  table_key: str | None = None) -> str:
    """A short note for a status line on switches that may follow a sampling confound
    (:func:`switch_confounds`, no warning): ``" Confound: ..."``, or ``""`` when none is
    (or when the data have no section/donor column)."""
    try:
        table = switch_confounds(cf, data, by, table_key=table_key, warn=False)
    except DataError:
        return ""
    text = confound_text(table, top=1)
    return f" Confound: {text}" if text else ""
