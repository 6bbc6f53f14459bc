"""Pseudobulk: groups of cells (levels of ``groupby``), donor means by ``scanpy.get.aggregate``,
and the donors' pooled variances that the trend tests use."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import anndata as ad
import numpy as np
import pandas as pd

from .. import stats
from ._trend_common import ALL


def levels(groupby: list[str], marginal: bool) -> list[list[str]]:
    """Groupings to test: all cells and every prefix of ``groupby`` when ``marginal``
    (e.g. all, cell type, cell type x domain), else just ``groupby``."""
    if not groupby:
        return [[]]
    if not marginal:
        return [groupby]
    return [groupby[:i] for i in range(len(groupby) + 1)]


def groups(obs: pd.DataFrame, level: list[str], groupby: list[str]) -> Iterator:
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


def group_codes(grouped: list[tuple[dict, np.ndarray]], n_obs: int) -> np.ndarray:
    """Each row's group number in ``grouped`` (the output of :func:`groups`, as a list)."""
    code = np.zeros(n_obs, dtype=np.int64)
    for g, (_, pos) in enumerate(grouped):
        code[pos] = g
    return code


def group_means(x: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of the rows of ``x`` per group code ``0 .. n_groups - 1`` (NaN for a group
    without rows), by :func:`scanpy.get.aggregate`."""
    import scanpy as sc

    out = np.full((n_groups, x.shape[1]), np.nan)
    if len(codes):
        obs = pd.DataFrame({"group": pd.Categorical(codes, categories=np.arange(n_groups))},
                           index=np.arange(len(codes)).astype(str))
        agg = sc.get.aggregate(ad.AnnData(x, obs=obs), by="group", func="mean")
        out[np.asarray(agg.obs["group"], dtype=np.int64)] = agg.layers["mean"]
    return out


def pseudobulk(xs: Sequence[np.ndarray],
               keys: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Means of each of ``xs`` (cells x genes) per distinct row of ``keys`` (cells x key
    columns of integer codes): the distinct keys (sorted), the means and the cells per key."""
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = np.asarray(inv).ravel()
    return uniq, [group_means(x, inv, len(uniq)) for x in xs], np.bincount(inv,
                                                                           minlength=len(uniq))


def donor_variance(x: np.ndarray, obs: pd.DataFrame, labels: np.ndarray, donors: np.ndarray,
                   groupby: list[str], marginal: bool, min_donor_cells: int) -> dict:
    """Per group: each label's donor (pseudobulk) means and donor names, and the within-label
    variance of donor means pooled over all labels with its degrees of freedom (sum of
    D_label - 1); ``finest`` marks the groups of the full ``groupby``.

    Keys are tuples of the groupby values (``"all"`` in marginal rows)."""
    out = {}
    lab_names, lab_codes = np.unique(labels, return_inverse=True)
    don_names, don_codes = np.unique(donors, return_inverse=True)
    for lev in levels(groupby, marginal):
        grouped = list(groups(obs, lev, groupby))
        code = group_codes(grouped, len(labels))
        keys, (means,), counts = pseudobulk([x], np.stack([code, lab_codes, don_codes], 1))
        for g, (key_vals, _) in enumerate(grouped):
            rows = np.flatnonzero(keys[:, 0] == g)
            entry = _label_donor_means(means[rows], counts[rows], lab_names[keys[rows, 1]],
                                       don_names[keys[rows, 2]], min_donor_cells)
            entry["finest"] = len(lev) == len(groupby)
            out[tuple(key_vals[c] for c in groupby)] = entry
    return out


def _label_donor_means(means: np.ndarray, counts: np.ndarray, labels: np.ndarray,
                       donors: np.ndarray, min_donor_cells: int) -> dict:
    """One group's entry of :func:`donor_variance` from its (label, donor) means (sorted by
    label, then donor): donors with ``min_donor_cells`` cells are a label's replicates."""
    n_genes = means.shape[1]
    per_label, names, sizes = {}, {}, []
    for lab in dict.fromkeys(labels):
        sel = (labels == lab) & (counts >= min_donor_cells)
        per_label[lab] = means[sel].reshape(int(sel.sum()), n_genes)
        names[lab] = list(donors[sel])
        if sel.sum() >= 2:
            sizes += list(counts[sel])
    s2, dfree = stats.pooled_variance(per_label.values(), n_genes)
    return {"s2": s2, "df": dfree, "means": per_label, "donors": names,
            "cells": float(np.mean(sizes)) if sizes else np.nan}


def shared_donor_variance(dvar: dict, n_genes: int) -> tuple[np.ndarray, float]:
    """Per gene, the part of the donors' deviations that all groups share (a mouse's offset
    in every cell type), and its degrees of freedom, from :func:`donor_variance`'s output.

    In each finest group and label, each donor's mean minus the mean of that label's donors;
    averaged per donor over the groups; the within-label variance of these averages, pooled
    over labels. ``(NaN, 0)`` without two groups or two donors at a label."""
    nothing = np.full(n_genes, np.nan), 0.0
    finest = [v for v in dvar.values() if v["finest"]]
    if len(finest) < 2:
        return nothing
    resid: dict[tuple[str, str], list[np.ndarray]] = {}
    for v in finest:
        for lab in sorted(v["means"]):
            m = v["means"][lab]
            if len(m) < 2:
                continue
            for d, r in zip(v["donors"][lab], m - m.mean(0)):
                resid.setdefault((lab, d), []).append(r)
    per_label = (np.stack([np.mean(v, 0) for k, v in resid.items() if k[0] == lab])
                 for lab in sorted({k[0] for k in resid}))
    s2, dfree = stats.pooled_variance(per_label, n_genes)
    return (s2, float(dfree)) if dfree else nothing


def source_replicates(model: int, target: str, delta: np.ndarray, fact: np.ndarray,
                      kept: np.ndarray, obs: pd.DataFrame, donors: np.ndarray,
                      groupby: list[str], marginal: bool, min_cells: int,
                      genes: list[str]) -> tuple[list[pd.DataFrame], list[dict]]:
    """Per group of the source cells (every level) and donor: cells, mean change, the
    cells' variance of the change (``var_delta``, ddof 1) and mean factual expression of the
    ``kept`` cells (rows of ``replicates``), and the groups with fewer than ``min_cells``
    kept cells."""
    frames, skipped = [], []
    don_names, don_codes = np.unique(donors, return_inverse=True)
    idx = np.flatnonzero(kept)
    head = {"model": model, "target": target}
    for lev in levels(groupby, marginal):
        grouped = list(groups(obs, lev, groupby))
        code = group_codes(grouped, len(obs))[idx]
        keys, (m_delta, m_fact, m_sq), counts = pseudobulk(
            [delta[idx], fact[idx], delta[idx] ** 2], np.stack([code, don_codes[idx]], 1))
        with np.errstate(all="ignore"):
            var = ((m_sq - m_delta ** 2) * (counts / (counts - 1.0))[:, None]).clip(0.0)
        for g, (key_vals, _) in enumerate(grouped):
            rows = np.flatnonzero(keys[:, 0] == g)
            n_cells = int(counts[rows].sum())
            if n_cells < min_cells:
                skipped.append({"target": target, **key_vals, "n_cells": n_cells})
                continue
            frames.append(pd.DataFrame({
                **head, **key_vals, "donor": np.repeat(don_names[keys[rows, 1]], len(genes)),
                "gene": np.tile(np.asarray(genes, dtype=object), len(rows)),
                "n_cells": np.repeat(counts[rows], len(genes)),
                "mean_delta": m_delta[rows].ravel(), "var_delta": var[rows].ravel(),
                "mean_factual": m_fact[rows].ravel()}))
    return frames, skipped
