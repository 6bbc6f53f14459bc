"""Which cells changed a descendant label under an intervention, and from what to what."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .._keys import Key
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
