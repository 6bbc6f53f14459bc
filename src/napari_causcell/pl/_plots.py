"""Matplotlib figures for expression on tissue, counterfactual overlays and training."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np

from .._keys import Key
from ..data import coordinates, resolve_table
from ..data.preprocess import DataError
from ..errors import NotTrainedError

#: opacity of extrapolated cells (label combination never measured) in views of model output
FADED_ALPHA = 0.35


def _gene_values(adata: ad.AnnData, gene: str, layer: str | None = None) -> np.ndarray:
    if gene not in adata.var_names:
        raise DataError(f"Gene {gene!r} is not in the data.")
    j = adata.var_names.get_loc(gene)
    x = adata.X if layer is None else adata.layers[layer]
    col = x[:, j]
    return np.asarray(col.toarray() if hasattr(col, "toarray") else col).ravel()


#: thin grey rims of the cells on a colour scale symmetric around 0 (white at 0, e.g.
#: RdBu_r): a cell that barely changes stays visible on the white axes and distinct from the
#: flat light grey of the cells not intervened on
DIVERGING_EDGE = {"edgecolors": "0.55", "linewidths": 0.25}


def _diverging(vmin: float | None, vmax: float | None) -> bool:
    """Whether ``[vmin, vmax]`` is a colour scale symmetric around 0."""
    return (vmin is not None and vmax is not None and vmax > 0
            and bool(np.isclose(vmin, -vmax)))


def _scatter(ax, xy, values, cmap, vmin, vmax, size, title, alpha=None):
    edge = DIVERGING_EDGE if _diverging(vmin, vmax) else {"linewidths": 0}
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=values, cmap=cmap, vmin=vmin, vmax=vmax, s=size,
                    rasterized=True, alpha=alpha, **edge)
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return sc


def _color_values(table: ad.AnnData, what: str, layer: str | None) -> tuple[Any, dict | None]:
    """Numbers of a gene, or ``(RGBA, palette)`` of a categorical ``obs`` column."""
    if what in table.var_names or what not in table.obs:
        return _gene_values(table, what, layer), None
    from .._palette import category_palette

    col = table.obs[what]
    cats = (list(col.cat.categories) if hasattr(col, "cat")
            else sorted(col.astype(str).unique()))
    palette = category_palette(cats)
    return np.array([palette[v] for v in col.astype(str)]), palette


def spatial_expression(
    data: Any, gene: str, *, layer: str | None = None, table_key: str | None = None,
    library_key: str | None = None, ax=None, cmap: str = "viridis", size: float = 4.0,
    scalebar: bool = True,
):
    """One gene's expression (or a categorical ``obs`` column) at the cells' positions.

    Parameters
    ----------
    data
        AnnData or SpatialData.
    gene
        A gene (colour bar) or a categorical ``obs`` column such as the cell type (legend).
    layer, table_key
        Expression layer; table of a SpatialData.
    library_key
        The ``obs`` column naming the tissue sections (squidpy's ``library_key``); found
        in the data when ``None`` (``section``, ``slice``, ``sample``, ``mouse``, ``donor``...),
        ``""`` for one section. Overlapping sections are laid side by side, translated only,
        each titled with its label (and its age when a time column exists).
    ax
        Axes to draw into (a new figure if ``None``).
    cmap, size
        Colormap of expression; marker size.
    scalebar
        Draw a scale bar (unit: ``uns['spatial_unit']``, else µm).

    Returns
    -------
    The axes.
    """
    import matplotlib.pyplot as plt

    from ..data import table_attrs
    from ..data.sections import coordinate_unit, laid_out, section_boxes, section_key
    from ..data.sections import section_titles, time_key
    from ._tissue import add_legend, add_scalebar, label_sections

    table, _ = resolve_table(data, table_key)
    key = section_key(table, library_key, table_attrs(table).get("region_key"))
    sections = table.obs[key] if key else None
    xy = laid_out(coordinates(data, table_key), sections)
    values, palette = _color_values(table, gene, layer)
    if ax is None:
        span = np.ptp(xy, axis=0) + 1e-9
        ratio = float(np.clip(span[1] / span[0], 0.25, 2.0))
        ax = plt.subplots(figsize=(9, 1.0 + 7.5 * ratio), layout="constrained")[1]
    sc = _scatter(ax, xy, values, None if palette else cmap, None, None, size, f"{gene}")
    if key:
        titles = section_titles(table.obs, key, time_key(table))
        label_sections(ax, {titles[s]: b for s, b in section_boxes(xy, sections).items()})
    if scalebar:
        add_scalebar(ax, xy, coordinate_unit(table))
    if palette is None:
        ax.figure.colorbar(sc, ax=ax, shrink=0.7, label=f"{gene} ({layer or 'X'})")
    else:
        add_legend(ax, palette, set(table.obs[gene].astype(str)), title=gene)
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
    Extrapolated cells (``obs['extrapolated']``) are faded in the counterfactual and change
    panels. Returns the figure.
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
    faded = (cf.obs[Key.obs.EXTRAPOLATED].to_numpy(bool) if Key.obs.EXTRAPOLATED in cf.obs
             else np.zeros(cf.n_obs, bool))
    alpha = np.where(faded, FADED_ALPHA, 1.0) if faded.any() else None
    for k, (ax, (vals, cmap, lo, hi, name)) in enumerate(zip(axes, panels)):
        if bg is not None:
            ax.scatter(bg[:, 0], bg[:, 1], c="0.85", s=size * 0.5, linewidths=0, rasterized=True)
        sc = _scatter(ax, xy, vals, cmap, lo, hi, size, name, alpha if k else None)
        fig.colorbar(sc, ax=ax, shrink=0.8, location="bottom" if rows == 1 else "right")
    do = cf.uns.get("causcell", {}).get("do")
    if title or do:
        fig.suptitle(title or "do(" + ", ".join(f"{k}={v}" for k, v in do.items()) + ")")
    if faded.any():
        fig.supxlabel(f"faded: {int(faded.sum())} of {cf.n_obs} cells extrapolated (label "
                      "combination never measured; change transported)", fontsize=8)
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
    the tissue is more than twice as wide as tall (a strip of sections). The panels take the
    aspect of the cells' ``(x, y)`` extent (sections laid side by side included)."""
    coords = np.asarray(coords, float)
    span = np.ptp(coords, axis=0) if len(coords) else np.ones(2)
    aspect = float(span[0] / span[1]) if span[1] > 0 else 1.0
    if aspect > 2.0 and n > 1:
        panel_h = min(4.2, max(1.2, (width - 1.2) / aspect))
        return n, 1, (width, 0.6 + (panel_h + 0.5) * n)
    # side by side: each panel as wide as the tissue is at a height of at most 3.6 inches
    # (tall tissue: narrow panels, no gap between them), within 1.6-4.6 inches a panel
    panel_w = float(np.clip(3.6 * aspect, 1.6, 4.6))
    panel_h = float(np.clip(panel_w / aspect, 2.0, 3.6))
    return 1, n, ((panel_w + 0.3) * n + 1.2, panel_h + 0.6)


def _overlay_panel(ax: Any, overlay: Any, i: int, coords: np.ndarray, size: float,
                   background: str) -> Any:
    """Panel ``i`` of an overlay on ``ax``; the colour mapping (``None`` for labels).
    Extrapolated cells (``overlay.alpha``) are drawn faded."""
    title = overlay.titles[i]
    if overlay.kind == "categorical":  # rgba holds the fading
        _scatter(ax, coords, overlay.rgba(i), None, None, None, size, title)
        return None
    cmap = overlay.colormap() if hasattr(overlay, "colormap") else overlay.cmap
    values = np.asarray(overlay.values[i], float)
    nan = ~np.isfinite(values)
    if nan.any():
        ax.scatter(coords[nan, 0], coords[nan, 1], c=background, s=size, linewidths=0,
                   rasterized=True)
    lo, hi = overlay.limits
    alpha = overlay.alpha(i)[~nan] if hasattr(overlay, "alpha") else None
    if alpha is not None and (alpha == 1).all():
        alpha = None
    mappable = _scatter(ax, coords[~nan], values[~nan], cmap, lo, hi, size, title, alpha)
    if nan.all():  # keep the panel's frame even when nothing is drawn
        ax.set_xlim(coords[:, 0].min(), coords[:, 0].max())
    return mappable


def tissue_overlay(overlay: Any, coords: np.ndarray, *, fig=None, size: float = 4.0,
                   background: str = "0.92", sections: dict | None = None,
                   unit: str | None = "µm"):
    """Draw an overlay of the app layer: one tissue panel per entry, one shared colour scale.

    Parameters
    ----------
    overlay
        A :class:`napari_causcell.app.Overlay` (values per panel, titles, colormap,
        shared limits, or a palette for labels), e.g. from ``app.OverlayRequest(...).run(state)``.
    coords
        Display coordinates ``(n_cells, 2)`` as ``(x, y)`` in the overlay's cell order
        (``AppState.coords``: overlapping sections already side by side).
    fig
        Figure to draw into (a new pyplot figure if ``None``).
    size
        Marker size.
    background
        Colour of cells with no value (NaN), e.g. those not intervened on.
    sections
        ``{title: [xmin, ymin, xmax, ymax]}`` of the sections, written above each one in
        every panel (``AppState.section_titles`` / ``section_boxes``).
    unit
        Unit of a scale bar in each panel (``None``: no scale bar).

    Returns
    -------
    The figure, with one colour bar (continuous) or one legend (labels).
    """
    from ._tissue import add_legend, add_scalebar, label_sections, wrap

    coords = np.asarray(coords, float)
    n = len(overlay.values)
    rows, cols, figsize = overlay_grid(coords, n)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    mappable = None
    for i, ax in enumerate(axes[:n]):
        mappable = _overlay_panel(ax, overlay, i, coords, size, background) or mappable
        label_sections(ax, sections or {}, fontsize=7)
        if unit:
            add_scalebar(ax, coords, unit)
    if mappable is not None:
        fig.colorbar(mappable, ax=list(axes), shrink=0.8, label=wrap(overlay.label, 40))
    elif overlay.kind == "categorical":
        present = set().union(*(map(str, v) for v in overlay.values))
        add_legend(fig, overlay.palette, present, title=overlay.label, figure_level=True)
    if getattr(overlay, "note", ""):  # what the faded cells are
        fig.supxlabel(wrap(overlay.note, 100), fontsize=8)
    return fig
