"""Workflow: values and colours to draw on the cells (expression, labels, change), and the
top changed genes of an intervention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import tl
from .._keys import Key
from .._palette import category_palette
from ..errors import DataError, SettingError
from ..pl._plots import FADED_ALPHA
from .cells import Selection
from .fading import (FADE_BOTH_NOTE, FADE_NOTE, UNCERTAIN_NOTE, extrapolated_cells, fade,
                     uncertain_cells)
from .intervene import Intervention
from .state import AppState

__all__ = ["COLOR_BY", "VIEWS", "Overlay", "OverlayRequest", "colormap", "concept_labels",
           "gene_values",
           "extrapolated_cells", "label_palette", "uncertain_cells", "magnitude", "make_overlay",
           "predicted_labels", "shared_limits", "to_rgba", "top_genes", "top_genes_title"]

#: What an expression overlay shows.
VIEWS = ("factual", "counterfactual", "difference")
#: What the cells can be coloured by.
COLOR_BY = ("expression", "concept", "predicted", "magnitude")
#: One-click views: name -> (view, show the factual panel beside it).
VIEW_PRESETS = {
    "factual | counterfactual": ("counterfactual", True),
    "factual": ("factual", False),
    "counterfactual": ("counterfactual", False),
    "difference": ("difference", False),
}
NAN_RGBA = np.array([0.45, 0.45, 0.45, 1.0])
#: opacity of the cells whose counterfactual is extrapolated (``obs['extrapolated']``)
FADE_ALPHA = FADED_ALPHA  # one value for napari, Jupyter and pl
IvLike = str | Intervention | None


@dataclass
class Overlay:
    """Values to draw on the cells, one array per panel, with shared colour settings."""

    values: list[np.ndarray]  # one (n_cells,) array per panel (numbers or label strings)
    titles: list[str]
    kind: str  # "continuous" or "categorical"
    cmap: str = "viridis"
    limits: tuple[float, float] = (0.0, 1.0)
    label: str = ""  # colour-bar caption
    palette: dict[str, Any] = field(default_factory=dict)  # categorical: label -> RGBA
    #: one boolean (n_cells,) per panel: cells drawn faded (extrapolated counterfactuals,
    #: or uncertain changes)
    faded: list[np.ndarray] = field(default_factory=list)
    #: why cells are faded: ``"extrapolated"`` and/or ``"uncertain"`` (see :attr:`note`)
    fade_reasons: tuple[str, ...] = ("extrapolated",)

    def alpha(self, i: int = 0) -> np.ndarray:
        """Opacity per cell of panel ``i``: :data:`FADE_ALPHA` where faded, else 1."""
        out = np.ones(len(self.values[i]))
        if i < len(self.faded):
            out[self.faded[i]] = FADE_ALPHA
        return out

    @property
    def note(self) -> str:
        """What the faded cells are (:data:`FADE_NOTE`, :data:`UNCERTAIN_NOTE` or
        :data:`FADE_BOTH_NOTE`), ``""`` when none is faded."""
        if not any(f.any() for f in self.faded):
            return ""
        both = set(self.fade_reasons) >= {"extrapolated", "uncertain"}
        return (FADE_BOTH_NOTE if both else UNCERTAIN_NOTE
                if "uncertain" in self.fade_reasons else FADE_NOTE)

    def rgba(self, i: int = 0) -> np.ndarray:
        """RGBA colours (``n_cells, 4``) of panel ``i``, faded cells less opaque."""
        if self.kind == "categorical":
            out = np.array([self.palette.get(str(v), NAN_RGBA) for v in self.values[i]],
                           float)
        else:
            out = to_rgba(self.values[i], self.cmap, self.limits)
        out[:, 3] *= self.alpha(i)
        return out

    def colormap(self) -> Any:
        """The matplotlib colormap object (:func:`colormap` of :attr:`cmap`)."""
        return colormap(self.cmap)

    def legend(self) -> list[tuple[str, str]]:
        """``(label, "#rrggbb")`` of the labels shown (categorical overlays)."""
        present = set().union(*(set(map(str, v)) for v in self.values))
        return [(lab, "#%02x%02x%02x" % tuple(int(255 * c) for c in rgba[:3]))
                for lab, rgba in self.palette.items() if lab in present]

    def caption(self, wide: bool = True) -> str:
        """The caption and the panels' titles. Panels are named A, B (as on the canvas and
        the layer names) and placed below (a wide tissue) or right of each other; each panel
        holds every section, so "left/right" never names a section."""
        note = f"\n{self.note}" if self.note else ""
        if len(self.titles) < 2:
            return f"{self.label}\n{self.titles[0]}{note}"
        where = ("upper", "lower") if wide else ("left", "right")
        return self.label + "".join(
            f"\npanel {'AB'[i]} ({where[i]}, all sections): {t}"
            for i, t in enumerate(self.titles)) + note


#: colormaps of our own: ``causcell_change`` is magma without its black end, so a small
#: change stays visible on napari's black canvas and on a white page
_OWN_CMAPS = {"causcell_change": ("magma", 0.22, 1.0)}


def colormap(name: str) -> Any:
    """A matplotlib colormap by name, ours (:data:`_OWN_CMAPS`) included."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    if name in _OWN_CMAPS:
        base, lo, hi = _OWN_CMAPS[name]
        return ListedColormap(matplotlib.colormaps[base](np.linspace(lo, hi, 256)), name=name)
    return matplotlib.colormaps[name]


def to_rgba(values: np.ndarray, cmap: str, limits: tuple[float, float]) -> np.ndarray:
    """Map numbers to RGBA with a matplotlib colormap and fixed limits (NaN -> grey)."""
    values = np.asarray(values, dtype=float)
    lo, hi = limits
    scaled = (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)
    out = colormap(cmap)(np.clip(scaled, 0.0, 1.0))
    out[~np.isfinite(values)] = NAN_RGBA
    return out


def label_palette(labels: Sequence[str]) -> dict[str, np.ndarray]:
    """A fixed, distinct colour per label by its index (scanpy's ``default_20`` /
    ``default_28`` / ``default_102``; :func:`napari_causcell._palette.category_palette`)."""
    return category_palette(labels)


# -- values per cell -------------------------------------------------------------------------
def gene_values(state: AppState, gene: str, view: str = "factual",
                intervention: IvLike = None) -> np.ndarray:
    """One value per cell: ``factual`` observed log-expression; ``counterfactual`` observed
    plus the paired change on the intervened cells (floored at 0); ``difference`` the change
    there, 0 elsewhere."""
    if view not in VIEWS:
        raise SettingError(f"view must be one of {VIEWS}, got {view!r}")
    iv = state.get_intervention(intervention)
    fact = state.factual_expression(gene)
    if view == "factual":
        return fact
    if iv is None:
        raise DataError(f"The {view} view needs an intervention: run one first.")
    d = iv.gene_delta(gene).astype(float)
    if view == "counterfactual":
        out = fact.copy()
        out[iv.rows] = np.maximum(fact[iv.rows] + d, 0.0)
    else:
        out = np.zeros_like(fact)
        out[iv.rows] = d
    return out


def magnitude(state: AppState, intervention: IvLike) -> np.ndarray:
    """Per-cell root-mean-square change over genes (0 for cells not intervened on)."""
    iv = state.get_intervention(intervention)
    out = np.zeros(state.n_cells)
    out[iv.rows] = np.sqrt(np.mean(iv.delta.astype(float) ** 2, axis=1))
    return out


def concept_labels(state: AppState, column: str, intervention: IvLike = None) -> np.ndarray:
    """Labels of ``column``; with an intervention, its target on the intervened cells."""
    out = state.adata.obs[column].astype(str).to_numpy().astype(object)
    iv = state.get_intervention(intervention)
    if iv is not None and column in iv.do:
        out[iv.rows] = iv.do[column]
    return out


def predicted_labels(state: AppState, concept: str, intervention: IvLike = None) -> np.ndarray:
    """Model-predicted labels of ``concept`` (from the counterfactual on intervened cells)."""
    model = state.require_model()
    if concept not in model.concepts:
        raise DataError(f"{concept!r} is not a concept of the model.")
    out = state.predictions()[concept].astype(str).to_numpy().astype(object)
    iv = state.get_intervention(intervention)
    col = Key.obs.predicted(concept)
    if iv is not None and col in iv.table.obs:
        ids = iv.table.obs[Key.obs.SOURCE_ID].astype(str)
        first = ~pd.Index(ids).duplicated()
        out[state.source_rows(iv.table)[first]] = iv.table.obs[col].astype(str).to_numpy()[first]
    return out


def shared_limits(state: AppState, gene: str, interventions: Sequence[IvLike] = (),
                  robust: bool = True) -> tuple[float, float]:
    """One contrast range for the factual and every counterfactual of ``gene``."""
    parts = [state.factual_expression(gene)]
    parts += [gene_values(state, gene, "counterfactual", iv) for iv in interventions
              if iv is not None]
    v = np.concatenate(parts)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (0.0, 1.0)
    lo, hi = (np.percentile(v, [1, 99]) if robust else (v.min(), v.max()))
    lo, hi = float(min(lo, 0.0)), float(hi)
    if hi <= lo:
        hi = lo + (float(v.max()) - lo or 1.0)
    return (lo, hi)


def _only_on(values: np.ndarray, iv: Intervention) -> np.ndarray:
    """``values`` on the intervened cells, NaN (drawn grey) elsewhere."""
    out = np.full(values.shape, np.nan)
    out[iv.rows] = values[iv.rows]
    return out


# -- overlays ----------------------------------------------------------------------------------
def _labels_overlay(state: AppState, color_by: str, concept: str | None,
                    ivs: list[Intervention | None], titles: list[str]) -> Overlay:
    if concept is None:
        raise DataError("Choose the concept to colour by.")
    fn = concept_labels if color_by == "concept" else predicted_labels
    values = [fn(state, concept, iv) for iv in ivs]
    cats = ([str(c) for c in state.model.concept_space.categories[concept]]
            if state.model is not None and concept in state.model.concepts
            else state.labels(concept))
    extra = sorted(set().union(*map(set, values)) - set(cats))
    what = "predicted " if color_by == "predicted" else ""
    return Overlay(values, titles, "categorical", label=f"{what}{concept}",
                   palette=label_palette([*cats, *extra]))


def _magnitude_overlay(state: AppState, ivs: list[Intervention | None],
                       titles: list[str]) -> Overlay:
    if any(iv is None for iv in ivs):
        raise DataError("The magnitude of change needs an intervention: run one first.")
    values = [_only_on(magnitude(state, iv), iv) for iv in ivs]
    hi = max(float(np.nanmax(v)) for v in values) or 1.0
    return Overlay(values, titles, "continuous", "causcell_change", (0.0, hi),
                   "RMS change over genes (log-expression); grey: not intervened on")


def _expression_overlay(state: AppState, gene: str | None, view: str,
                        ivs: list[Intervention | None], robust: bool) -> Overlay:
    if gene is None:
        raise DataError("Choose a gene.")
    shown = [None] * len(ivs) if view == "factual" else ivs
    if view == "difference" and any(iv is None for iv in shown):
        raise DataError("The difference view needs an intervention in every panel.")
    values = [gene_values(state, gene, view if iv is not None else "factual", iv)
              for iv in shown]
    titles = [iv.name if iv is not None else "factual" for iv in shown]
    if view == "difference":
        ref = np.abs(np.concatenate([v[iv.rows] for v, iv in zip(values, shown)]))
        m = float(np.percentile(ref, 99) if robust and ref.size else ref.max(initial=0))
        m = m if m > 0 else float(ref.max(initial=0)) or 1e-3
        return Overlay([_only_on(v, iv) for v, iv in zip(values, shown)], titles,
                       "continuous", "RdBu_r", (-m, m),
                       f"{gene}: change (counterfactual - factual), log-expression; "
                       "grey: not intervened on")
    # the chosen counterfactuals count in the factual view too, so that switching between
    # factual and counterfactual keeps the colour scale
    kinds = {"factual" if iv is None else "counterfactual" for iv in shown}
    what = ("factual and counterfactual panels, one colour scale" if len(kinds) > 1
            else kinds.pop())
    return Overlay(values, titles, "continuous", "viridis",
                   shared_limits(state, gene, ivs, robust=robust),
                   f"{gene}: log-expression ({what})")


def make_overlay(state: AppState, color_by: str = "expression", *, gene: str | None = None,
                 view: str = "factual", interventions: Sequence[IvLike] = (None,),
                 concept: str | None = None, robust: bool = True,
                 fade_uncertain: bool = True) -> Overlay:
    """Values and shared colour settings for one panel per entry of ``interventions``
    (``None``: no intervention). Expression panels share one contrast range (1st-99th
    percentile with ``robust``); the difference view is symmetric around 0; in the
    difference and magnitude views cells not intervened on are NaN (grey). The model's
    output is faded where extrapolated and, with ``fade_uncertain``, a gene's change where
    its interval in the cell's group includes 0 (:func:`uncertain_cells`)."""
    if color_by not in COLOR_BY:
        raise SettingError(f"color_by must be one of {COLOR_BY}, got {color_by!r}")
    ivs = [state.get_intervention(i) for i in interventions] or [None]
    titles = [iv.name if iv is not None else "factual" for iv in ivs]
    if color_by in ("concept", "predicted"):
        ov = _labels_overlay(state, color_by, concept, ivs, titles)
    elif color_by == "magnitude":
        ov = _magnitude_overlay(state, ivs, titles)
    else:
        ov = _expression_overlay(state, gene, view, ivs, robust)
    fade(state, ov, ivs, color_by, view, gene, fade_uncertain)
    return ov


@dataclass
class OverlayRequest:
    """What an overlay form holds. ``panels``: intervention names, ``None`` = factual."""

    color_by: str = "expression"
    gene: str | None = None
    view: str = "factual"
    panels: Sequence[str | None] = (None,)
    concept: str | None = None
    #: fade cells whose change of the gene is uncertain (:func:`uncertain_cells`)
    fade_uncertain: bool = True

    @classmethod
    def preset(cls, name: str, gene: str | None, intervention: str | None,
               fade_uncertain: bool = True) -> OverlayRequest:
        """A request for one of :data:`VIEW_PRESETS` on one intervention."""
        view, with_factual = VIEW_PRESETS[name]
        panels = (None, intervention) if with_factual else (intervention,)
        return cls("expression", gene, view, panels,
                   fade_uncertain=fade_uncertain)

    def validate(self, state: AppState) -> None:
        if self.color_by == "expression" and self.view != "factual" and all(
                p is None for p in self.panels):
            raise DataError(f"The {self.view} view needs an intervention: run one first.")

    def run(self, state: AppState) -> tuple[Overlay, str]:
        """``(overlay, message)``; raises with the message to show. Fast: no job."""
        self.validate(state)
        ov = make_overlay(state, self.color_by, gene=self.gene or None, view=self.view,
                          interventions=list(self.panels), concept=self.concept or None,
                          fade_uncertain=self.fade_uncertain)
        note = f" {ov.note[0].upper()}{ov.note[1:]}." if ov.note else ""
        return ov, f"Showing {ov.label} for {len(ov.values)} panel(s).{note}"


def top_genes(state: AppState, intervention: IvLike, n: int = 20,
              selection: Selection | None = None) -> pd.DataFrame:
    """Top changed genes of an intervention (``tl.top_changed_genes``), optionally only over
    the intervened cells that are also in ``selection``. Over all the intervened cells, with
    the intervention's intervals, also ``lower``, ``upper`` (the 90 % interval),
    ``spans_zero`` and ``reliability``."""
    iv = state.get_intervention(intervention)
    cells = selection.mask[state.source_rows(iv.table)] if selection is not None else None
    return tl.top_changed_genes(iv.table, n=n, cells=cells,
                                intervals=iv.intervals if selection is None else None)


def top_genes_title(state: AppState, intervention: IvLike) -> str:
    """``"Top changed genes of <name>"``, with ``" (12 of 429 cells extrapolated)"`` when
    some intervened cells' counterfactuals are extrapolated."""
    iv = state.get_intervention(intervention)
    text = f"Top changed genes of {iv.name}"
    k = int(iv.extrapolated.sum()) if iv.extrapolated is not None else 0
    return text + (f" ({k} of {len(iv.rows)} cells extrapolated)" if k else "")
