"""Matplotlib figures for expression on tissue, counterfactual overlays and training."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np

from ..data import coordinates, resolve_table
from ..data.preprocess import DataError
from ..errors import NotTrainedError


def _gene_values(adata: ad.AnnData, gene: str, layer: str | None = None) -> np.ndarray:
    if gene not in adata.var_names:
        raise DataError(f"Gene {gene!r} is not in the data.")
    j = adata.var_names.get_loc(gene)
    x = adata.X if layer is None else adata.layers[layer]
    col = x[:, j]
    return np.asarray(col.toarray() if hasattr(col, "toarray") else col).ravel()


def _scatter(ax, xy, values, cmap, vmin, vmax, size, title):
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=values, cmap=cmap, vmin=vmin, vmax=vmax, s=size,
                    linewidths=0, rasterized=True)
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return sc


def spatial_expression(
    data: Any, gene: str, *, layer: str | None = None, table_key: str | None = None,
    ax=None, cmap: str = "viridis", size: float = 4.0,
):
    """Scatter of one gene's expression at the cells' tissue coordinates; returns the axes."""
    import matplotlib.pyplot as plt

    table, _ = resolve_table(data, table_key)
    xy = coordinates(data, table_key)
    values = _gene_values(table, gene, layer)
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    sc = _scatter(ax, xy, values, cmap, None, None, size, f"{gene}")
    ax.figure.colorbar(sc, ax=ax, shrink=0.7)
    return ax


def counterfactual_overlay(
    cf: ad.AnnData, gene: str, *, background: Any = None, size: float = 4.0,
    title: str | None = None, fig=None,
):
    """Three panels: factual, counterfactual (shared colour scale) and the change.

    ``cf`` is a counterfactual AnnData (``layers['factual']``, ``layers['delta']``,
    ``obsm['spatial']``). The change is the paired effect ``layers['delta']``; the
    counterfactual panel shows the observed expression plus that change (floored at 0), so
    both panels carry the same measurement noise, as in the napari Overlay widget.
    ``background`` optionally an AnnData/SpatialData whose cells are drawn in grey behind.
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    if "spatial" not in cf.obsm:
        raise DataError("The counterfactual has no obsm['spatial'] coordinates to draw.")
    xy = np.asarray(cf.obsm["spatial"])
    fact = _gene_values(cf, gene, "factual")
    diff = _gene_values(cf, gene, "delta")
    count = np.maximum(fact + diff, 0.0)
    vmax = float(np.percentile(np.concatenate([fact, count]), 99)) or 1.0
    dmax = float(np.percentile(np.abs(diff), 99)) or 1.0
    rows, cols, figsize = overlay_grid(xy, 3, width=15.0)
    if rows == 1:
        span = np.ptp(xy, axis=0) + 1e-9
        figsize = (15, 1.2 + 4.2 * float(np.clip(span[1] / span[0], 0.2, 2.0)))
    fig = fig or plt.figure(figsize=figsize, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    bg = None
    if background is not None:  # grey context cells, cropped to the counterfactual's area
        bg = coordinates(background)
        lo, hi = xy.min(0), xy.max(0)
        pad = 0.05 * (hi - lo)
        inside = np.all((bg >= lo - pad) & (bg <= hi + pad), axis=1)
        bg = bg[inside]
    panels = [
        (fact, "viridis", 0.0, vmax, f"{gene}: factual"),
        (count, "viridis", 0.0, vmax, f"{gene}: counterfactual"),
        (diff, "RdBu_r", -dmax, dmax, f"{gene}: difference"),
    ]
    for ax, (vals, cmap, lo, hi, name) in zip(axes, panels):
        if bg is not None:
            ax.scatter(bg[:, 0], bg[:, 1], c="0.85", s=size * 0.5, linewidths=0, rasterized=True)
        sc = _scatter(ax, xy, vals, cmap, lo, hi, size, name)
        fig.colorbar(sc, ax=ax, shrink=0.8, location="bottom" if rows == 1 else "right")
    do = cf.uns.get("causcell", {}).get("do")
    if title or do:
        fig.suptitle(title or "do(" + ", ".join(f"{k}={v}" for k, v in do.items()) + ")")
    return fig


def loss(model: Any, ax=None, keys: tuple[str, ...] = ("recon", "concept", "confusion")):
    """Training and validation loss curves per epoch; returns the axes."""
    import matplotlib.pyplot as plt

    hist = model.history
    if not hist:
        raise NotTrainedError("The model has no training history yet.")
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    epochs = [h["epoch"] for h in hist]
    for i, key in enumerate(keys):
        for split, style in (("train", "-"), ("val", "--")):
            name = f"{split}_{key}"
            if name in hist[0]:
                ax.plot(epochs, [h[name] for h in hist], style, color=f"C{i}", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    return ax


def concept_embeddings(
    model: Any, data: Any = None, *, concepts: list[str] | None = None, size: float = 3.0,
    seed: int = 0,
):
    """UMAP of each concept's token, coloured by that concept's label; returns the figure."""
    import matplotlib.pyplot as plt
    import scanpy as sc

    adata = model._table(data)
    emb = model.concept_embeddings(adata, write=False)
    concepts = concepts or model.concepts
    fig, axes = plt.subplots(1, len(concepts), figsize=(4.5 * len(concepts), 4), squeeze=False)
    for ax, name in zip(axes[0], concepts):
        tmp = ad.AnnData(np.zeros((adata.n_obs, 1), dtype=np.float32), obs=adata.obs[[name]].copy())
        tmp.obsm["X_tok"] = emb[name]
        sc.pp.neighbors(tmp, use_rep="X_tok", random_state=seed)
        sc.tl.umap(tmp, random_state=seed)
        sc.pl.umap(tmp, color=name, ax=ax, show=False, size=size, title=f"{name} token")
    fig.tight_layout()
    return fig


def overlay_grid(coords: np.ndarray, n: int, width: float = 14.0) -> tuple[int, int, tuple]:
    """Rows, columns and figure size for ``n`` tissue panels: side by side, or stacked when
    the tissue is more than twice as wide as tall (a strip of sections)."""
    coords = np.asarray(coords, float)
    span = np.ptp(coords, axis=0) if len(coords) else np.ones(2)
    aspect = float(span[0] / span[1]) if span[1] > 0 else 1.0
    if aspect > 2.0 and n > 1:
        panel_h = min(4.2, max(1.2, (width - 1.2) / aspect))
        return n, 1, (width, 0.6 + (panel_h + 0.5) * n)
    return 1, n, (4.6 * n + 1.2, 4.2)


def tissue_overlay(overlay: Any, coords: np.ndarray, *, fig=None, size: float = 4.0,
                   background: str = "0.92"):
    """Draw an overlay of the app layer: one tissue panel per entry, one shared colour scale.

    Parameters
    ----------
    overlay
        A :class:`napari_causcell.app.Overlay` (values per panel, titles, colormap,
        shared limits, or a palette for labels), e.g. from ``app.OverlayRequest(...).run(state)``.
    coords
        Tissue coordinates ``(n_cells, 2)`` as ``(x, y)``, in the overlay's cell order.
    fig
        Figure to draw into (a new pyplot figure if ``None``).
    size
        Marker size.
    background
        Colour of cells with no value (NaN), e.g. those not intervened on.

    Returns
    -------
    The figure, with one colour bar (continuous) or one legend (labels).
    """
    coords = np.asarray(coords, float)
    n = len(overlay.values)
    rows, cols, figsize = overlay_grid(coords, n)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    mappable = None
    for i, (ax, values, title) in enumerate(zip(axes, overlay.values, overlay.titles)):
        if overlay.kind == "categorical":
            colors = overlay.rgba(i)
            _scatter(ax, coords, colors, None, None, None, size, title)
            continue
        values = np.asarray(values, float)
        nan = ~np.isfinite(values)
        if nan.any():
            ax.scatter(coords[nan, 0], coords[nan, 1], c=background, s=size, linewidths=0,
                       rasterized=True)
        lo, hi = overlay.limits
        mappable = _scatter(ax, coords[~nan], values[~nan], overlay.cmap, lo, hi, size, title)
        if nan.all():  # keep the panel's frame even when nothing is drawn
            ax.set_xlim(coords[:, 0].min(), coords[:, 0].max())
    if mappable is not None:
        fig.colorbar(mappable, ax=list(axes), shrink=0.8, label=overlay.label)
    elif overlay.kind == "categorical":
        from matplotlib.lines import Line2D

        present = set().union(*(map(str, v) for v in overlay.values))
        handles = [Line2D([], [], ls="", marker="o", color=c, label=k)
                   for k, c in overlay.palette.items() if k in present]
        fig.legend(handles=handles, loc="outside right center", fontsize=8,
                   title=overlay.label, frameon=False)
    return fig
