"""Figures of the brain-aging trend workflow (``tl.age_trends``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..data import coordinates, expression, resolve_table
from ..data.preprocess import DataError
from ..errors import SettingError
from ..tl._counterfactual import stored_counterfactual
from ._trend_heatmap import trend_heatmap

_OBS_COLOR = "#9e9e9e"
_CF_COLOR = "#d6604d"


def _store(data: Any, key: str, table_key: str | None) -> tuple[ad.AnnData, dict]:
    table, _ = resolve_table(data, table_key)
    store = table.uns.get(key)
    if not isinstance(store, dict) or "results" not in store:
        raise DataError(f"No trend result in uns[{key!r}]: run tl.age_trends(data, model) first.")
    return table, store


def _counterfactual(data: Any, store: dict, target: str) -> ad.AnnData:
    keys = dict(store["params"].get("counterfactuals", {}) or {})
    if target not in keys:
        raise DataError(f"No stored counterfactual for target {target!r} (have {sorted(keys)}); "
                        "run tl.age_trends with store_counterfactuals=True.")
    return stored_counterfactual(data, keys[target])


def _column(x: Any, j: int) -> np.ndarray:
    col = x[:, j]
    return np.asarray(col.toarray() if hasattr(col, "toarray") else col, float).ravel()


def age_trends(data: Any, genes: Sequence[str] | str | None = None,
               cell_types: Sequence[str] | str | None = None, *, kind: str = "box",
               key: str = "causcell_trends", cell_type_key: str = "cell_type",
               table_key: str | None = None, target: str | None = None, n_genes: int = 30,
               legend: bool = True, fig: Any = None):
    """Observed vs counterfactual expression along age, or a heatmap of changed genes.

    ``kind="box"`` (the paper's Fig. 5a/b): one panel per gene (rows) and cell type (columns);
    per age label, a grey box of the **observed** cells of that age and a red box of the
    **counterfactual** source cells set to that age (observed expression plus the paired change
    ``layers['delta']``, floored at 0; at the source age it is the observed source cells). The
    mean is marked above each box. Over each red box a black diamond with a bar marks the
    trend's estimate (observed source mean + ``mean_change``) and its interval
    (``ci_low`` .. ``ci_high`` of the per-cell-type row of the result); a panel whose trend
    rests on one donor per age says so in its title ("1 donor/age"). ``kind="heatmap"``:
    :func:`trend_heatmap` of the stored result.

    Parameters
    ----------
    data
        The AnnData / SpatialData :func:`napari_causcell.tl.age_trends` ran on (it reads
        ``uns[key]`` and the stored counterfactuals).
    genes, cell_types
        What to draw (box plot; required there).
    kind
        ``"box"`` or ``"heatmap"``.
    key
        Where the trend result is stored.
    cell_type_key
        obs column of the cell types.
    table_key
        Table of a SpatialData.
    target, n_genes
        Heatmap only (see :func:`trend_heatmap`).
    legend
        Draw the legend (box plot).
    fig
        Figure to draw into (a new pyplot figure if ``None``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if kind == "heatmap":
        table, store = _store(data, key, table_key)
        return trend_heatmap(store["results"], target=target, n_genes=n_genes, fig=fig)
    if kind != "box":
        raise SettingError(f"kind must be 'box' or 'heatmap', got {kind!r}")
    return _box_figure(data, genes, cell_types, key, cell_type_key, table_key, legend, fig)


@dataclass
class _Panels:
    """What every panel of the box figure reads."""

    ages: list[str]
    source: str
    cfs: dict[str, ad.AnnData]
    model_genes: list[str]
    x_obs: Any
    obs_age: np.ndarray
    obs_type: np.ndarray
    results: pd.DataFrame
    cell_type_key: str
    other: list[str]


def _box_figure(data: Any, genes: Any, cell_types: Any, key: str, cell_type_key: str,
                table_key: str | None, legend: bool, fig: Any):
    """``kind="box"`` of :func:`age_trends`: one panel per gene and cell type."""
    genes = [genes] if isinstance(genes, str) else list(genes or [])
    cell_types = [cell_types] if isinstance(cell_types, str) else list(cell_types or [])
    if not genes or not cell_types:
        raise DataError("Choose at least one gene and one cell type to draw.")
    table, store = _store(data, key, table_key)
    panels = _panels(data, table, store, genes, cell_types, cell_type_key)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(1.2 + 0.9 * len(panels.ages) * len(cell_types),
                                  0.6 + 2.6 * len(genes)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(genes), len(cell_types), squeeze=False))
    for r, gene in enumerate(genes):
        j = panels.model_genes.index(gene)
        all_obs = _column(panels.x_obs, j)
        for c, ctype in enumerate(cell_types):
            _draw_panel(axes[r, c], panels, gene, j, all_obs, ctype)
            if c == 0:
                axes[r, c].set_ylabel("log-normalised")
    if legend:
        _legend(fig, store["params"])
    return fig


def _panels(data: Any, table: ad.AnnData, store: dict, genes: list[str],
            cell_types: list[str], cell_type_key: str) -> _Panels:
    """Check the genes and cell types; the ages, counterfactuals and observed expression."""
    params = store["params"]
    concept, targets = params["concept"], list(params["targets"])
    if cell_type_key not in table.obs:
        raise DataError(f"Column {cell_type_key!r} is not in obs.")
    cfs = {t: _counterfactual(data, store, t) for t in targets}
    model_genes = [str(g) for g in next(iter(cfs.values())).var_names]
    missing = [g for g in genes if g not in model_genes]
    if missing:
        raise DataError(f"Genes not in the counterfactual: {missing}.")
    known = set(table.obs[cell_type_key].astype(str))
    bad = [c for c in cell_types if c not in known]
    if bad:
        raise DataError(f"Unknown cell types {bad}; known: {sorted(known)}.")
    col = table.obs[concept]
    ages = ([str(c) for c in col.cat.categories] if isinstance(col.dtype, pd.CategoricalDtype)
            else sorted(map(str, col.unique())))
    ages = [a for a in ages if a in set(col.astype(str)) or a in targets]
    return _Panels(ages, params["source"], cfs, model_genes, expression(table, model_genes),
                   col.astype(str).to_numpy(), table.obs[cell_type_key].astype(str).to_numpy(),
                   store["results"], cell_type_key,
                   [c for c in params.get("groupby", []) if c != cell_type_key])


def _trend_row(p: _Panels, age: str, gene: str, ctype: str):
    """The result row of this target, gene and cell type (other groups 'all')."""
    res = p.results
    if p.cell_type_key not in res:
        return None
    sel = ((res["target"].astype(str) == age) & (res["gene"] == gene)
           & (res[p.cell_type_key].astype(str) == ctype))
    for c in p.other:
        if c in res:
            sel &= res[c].astype(str) == "all"
    return res[sel].iloc[0] if sel.any() else None


def _age_values(p: _Panels, age: str, j: int, all_obs: np.ndarray,
                ctype: str) -> tuple[np.ndarray, np.ndarray]:
    """Observed values of the cell type at ``age``, and its source cells' counterfactual
    values at ``age`` (observed plus the paired change, floored at 0)."""
    observed = all_obs[(p.obs_age == age) & (p.obs_type == ctype)]
    if age == p.source:
        return observed, all_obs[(p.obs_age == p.source) & (p.obs_type == ctype)]
    if age not in p.cfs:
        return observed, np.array([])
    cf = p.cfs[age]
    m = cf.obs[p.cell_type_key].astype(str).to_numpy() == ctype
    return observed, np.maximum(_column(cf.layers["factual"], j)[m]
                                + _column(cf.layers["delta"], j)[m], 0.0)


def _draw_panel(ax: Any, p: _Panels, gene: str, j: int, all_obs: np.ndarray,
                ctype: str) -> None:
    """One gene and cell type: a grey and a red box per age, the trend's estimate."""
    boxes, pos, colors, marks, one_donor = [], [], [], [], False
    for i, age in enumerate(p.ages):
        row = _trend_row(p, age, gene, ctype) if age in p.cfs else None
        if row is not None and np.isfinite(row.get("mean_change", np.nan)):
            marks.append((i * 3 + 1, row))
            one_donor |= bool(row.get("one_donor", False))
        observed, cf_vals = _age_values(p, age, j, all_obs, ctype)
        for k, (vals, color) in enumerate(((observed, _OBS_COLOR), (cf_vals, _CF_COLOR))):
            if len(vals):
                boxes.append(vals)
                pos.append(i * 3 + k)
                colors.append(color)
    if boxes:
        _draw_boxes(ax, boxes, pos, colors)
    for p_, row in marks:  # the trend's estimate and its interval
        centre = float(row["mean_source"] + row["mean_change"])
        lo = float(row["mean_source"] + row.get("ci_low", np.nan))
        hi = float(row["mean_source"] + row.get("ci_high", np.nan))
        err = ([[centre - lo], [hi - centre]] if np.isfinite(lo) and np.isfinite(hi)
               else None)
        ax.errorbar([p_], [centre], yerr=err, fmt="D", color="black", markersize=3,
                    capsize=2, linewidth=1, zorder=5)
    ax.set_xticks([i * 3 + 0.5 for i in range(len(p.ages))], p.ages, fontsize=8)
    ax.set_title(f"{gene} in {ctype}" + (" (1 donor/age)" if one_donor else ""), fontsize=9)


def _draw_boxes(ax: Any, boxes: list[np.ndarray], pos: list[int], colors: list[str]) -> None:
    """Coloured boxes with black medians, each box's mean written above it."""
    bp = ax.boxplot(boxes, positions=pos, widths=0.8, patch_artist=True, showfliers=False)
    for patch, color in zip(bp["boxes"], colors):
        patch.set_facecolor(color)
    for median in bp["medians"]:
        median.set_color("black")
    ax.margins(y=0.15)  # room for the means above the whiskers
    mark = ax.get_xaxis_transform()  # x in data, y in axes fraction
    for p_, b in zip(pos, boxes):
        ax.text(p_, 0.985, f"{np.mean(b):.2f}", ha="center", va="top", fontsize=6,
                transform=mark)


def _legend(fig: Any, params: dict) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    level = params.get("level", 0.95)
    fig.legend(handles=[Patch(color=_OBS_COLOR, label="observed cells of that age"),
                        Patch(color=_CF_COLOR, label=f"{params['source']} cells, "
                                                     "counterfactual age"),
                        Line2D([], [], color="black", marker="D", markersize=3,
                               label=f"trend estimate, {level:.0%} interval")],
               loc="outside lower center", ncols=3, fontsize=8, frameon=False)


def spatial_trend(data: Any, gene: str, target: str | None = None, *,
                  key: str = "causcell_trends", table_key: str | None = None, ax: Any = None,
                  size: float = 4.0, cmap: str = "RdBu_r"):
    """A gene's counterfactual change on the tissue.

    The source cells are coloured by the paired change ``layers['delta']`` of ``gene`` under
    ``do(concept = target)`` (symmetric limits at the 99th percentile); the other cells are
    drawn in grey.

    Parameters
    ----------
    data
        The AnnData / SpatialData :func:`napari_causcell.tl.age_trends` ran on.
    gene
        Gene to show.
    target
        Which target (default the last).
    key, table_key
        Where the trend result is; table of a SpatialData.
    ax
        Axes to draw into.
    size, cmap
        Marker size and colormap.

    Returns
    -------
    matplotlib.axes.Axes
    """
    _, store = _store(data, key, table_key)
    target, xy, delta = _spatial_change(data, store, gene, target)
    bg = coordinates(data, table_key)
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.subplots(figsize=(7, 4))[1]
    ax.scatter(bg[:, 0], bg[:, 1], c="0.88", s=size * 0.6, linewidths=0, rasterized=True)
    lim = float(np.percentile(np.abs(delta), 99)) or 1.0
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=delta, cmap=cmap, vmin=-lim, vmax=lim, s=size,
                    linewidths=0, rasterized=True)
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_yticks([])
    p = store["params"]
    ax.set_title(f"{gene}: change under do({p['concept']}={target}) of {p['source']} cells",
                 fontsize=9)
    ax.figure.colorbar(sc, ax=ax, shrink=0.7, label="counterfactual change")
    return ax


def _spatial_change(data: Any, store: dict, gene: str,
                    target: str | None) -> tuple[str, np.ndarray, np.ndarray]:
    """The target (default the last), and the source cells' positions and paired change of
    ``gene`` in its stored counterfactual."""
    targets = list(store["params"]["targets"])
    target = targets[-1] if target is None else str(target)
    if target not in targets:
        raise DataError(f"Target {target!r} is not in the result; targets are {targets}.")
    cf = _counterfactual(data, store, target)
    if gene not in cf.var_names:
        raise DataError(f"Gene {gene!r} is not in the counterfactual.")
    if "spatial" not in cf.obsm:
        raise DataError("The counterfactual has no obsm['spatial'] coordinates.")
    xy = np.asarray(cf.obsm["spatial"], float)
    return target, xy, _column(cf.layers["delta"], list(cf.var_names).index(gene))
