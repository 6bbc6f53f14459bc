"""Workflow: which cells an overlay draws faded, and why: the model's output where the
label combination was never measured (extrapolated) or where the cell's group's interval of
the shown change includes 0 (uncertain; issue 26 item 3).

Why "includes 0" and not "reliability < LOW_RELIABILITY" (as ``pl.change_intervals``): the
model's error grows with the change, so a low reliability marks the largest changes; on the
demo it faded every cell for the two most changed genes, whose intervals (e.g. +1.56
[+0.27, +2.85]) are far from 0. An interval that includes 0 marks a change the model cannot
tell from none, the rows the top-genes tables grey."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .state import AppState

if TYPE_CHECKING:
    from .intervene import Intervention
    from .overlay import Overlay

__all__ = ["FADE_BOTH_NOTE", "FADE_NOTE", "UNCERTAIN_NOTE", "extrapolated_cells", "fade",
           "uncertain_cells"]

IvLike = Any  # a name, an Intervention or None (AppState.get_intervention)

FADE_NOTE = ("faded: extrapolated (label combination never measured; change transported "
             "from measured labels)")
#: what cells faded as uncertain are
UNCERTAIN_NOTE = ("faded: uncertain (the 90 % interval of this gene's change in the cell's "
                  "group includes 0)")
FADE_BOTH_NOTE = FADE_NOTE + " or " + UNCERTAIN_NOTE.removeprefix("faded: ")


def extrapolated_cells(state: AppState, intervention: IvLike) -> np.ndarray:
    """Per cell: intervened on, with an extrapolated counterfactual (its label combination
    never measured; ``obs['extrapolated']``). All False without an intervention."""
    return _per_cell(state, intervention, lambda iv: iv.extrapolated)


def uncertain_cells(state: AppState, intervention: IvLike, gene: str) -> np.ndarray:
    """Per cell: intervened on, and the 90 % interval of its stratum's (e.g. cell type's)
    change of ``gene`` includes 0. All False without an intervention or its intervals."""
    return _per_cell(state, intervention, lambda iv: iv.cell_uncertain(gene))


def _per_cell(state: AppState, intervention: IvLike,
              per_row: Callable[[Intervention], np.ndarray | None]) -> np.ndarray:
    """``per_row(iv)`` (one bool per intervened cell, or ``None``) spread over all cells,
    False elsewhere and without an intervention."""
    out = np.zeros(state.n_cells, dtype=bool)
    iv = state.get_intervention(intervention)
    values = per_row(iv) if iv is not None else None
    if values is not None:
        out[iv.rows] = values
    return out


def fade(state: AppState, ov: Overlay, ivs: list[Intervention | None], color_by: str,
         view: str, gene: str | None, uncertain: bool) -> None:
    """Set which cells ``ov`` draws faded: the model's output where extrapolated and, with
    ``uncertain``, a gene's change (or counterfactual) where uncertain. A do() target
    (concept) and the factual view show no model output."""
    modelled = not (color_by == "concept" or (color_by == "expression" and view == "factual"))
    ov.faded = [extrapolated_cells(state, iv if modelled else None) for iv in ivs]
    if uncertain and modelled and color_by == "expression" and gene is not None:
        low = [uncertain_cells(state, iv, gene) for iv in ivs]
        if any(lo.any() for lo in low):
            extra = any(f.any() for f in ov.faded)
            ov.faded = [f | lo for f, lo in zip(ov.faded, low)]
            ov.fade_reasons = (("extrapolated",) if extra else ()) + ("uncertain",)
