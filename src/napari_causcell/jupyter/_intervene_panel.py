"""Intervene panel: do(concept = value) on the cells the user chooses: all cells, cells with
any label of any ``obs`` column (AND-ed with a second one), or cells by row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from .._constants import DEFAULT_STEPS
from ..app import AppState, Intervention
from ..app.cells import NO_COLUMN, default_column
from ..app.intervene import (
    DONORS,
    SAMPLERS,
    InterveneRequest,
    InterveneResult,
    intervene_job,
    keep_text,
    keepable,
)
from ._base import Panel, set_options


class IntervenePanel(Panel):
    """do(concept = value) on chosen cells: all, a label of any column (and a label of a
    second column, e.g. ``celltype=Oligodendrocyte`` and ``age_group=young``), or rows.

    Parameters
    ----------
    session
        The :class:`~napari_causcell.app.AppState`; its model must be trained before
        :meth:`run`.
    on_result
        Called with each new :class:`~napari_causcell.app.Intervention` (on the worker
        thread), e.g. to show it in an :class:`OverlayPanel`.
    """

    CELLS = {"all cells": "all", "cells with a label": "label", "cells by row": "indices"}

    def __init__(self, session: AppState,
                 on_result: Callable[[Intervention], Any] | None = None) -> None:
        super().__init__(session)
        self.on_result = on_result
        self.concept = widgets.Dropdown(description="Concept")
        self.target = widgets.Dropdown(description="Set to")
        self.cells = widgets.Dropdown(options=list(self.CELLS), description="Cells")
        self.cells_column = widgets.Dropdown(description="Column")
        self.cells_label = widgets.Dropdown(description="Label", disabled=True)
        self.and_column = widgets.Dropdown(description="and")
        self.and_label = widgets.Dropdown(description="Label", disabled=True)
        self.rows = widgets.Text(description="Rows", placeholder="e.g. 0-99, 250",
                                 disabled=True)
        self.keep = widgets.Checkbox(value=False, description="Keep", indent=False,
                                     layout=widgets.Layout(width="auto"))
        self.sampler = widgets.Dropdown(options=list(SAMPLERS), value="mean",
                                        description="Sampler")
        self.steps = widgets.BoundedIntText(value=DEFAULT_STEPS, min=1, max=1000,
                                            description="Steps")
        self.seed = widgets.IntText(value=0, description="Seed")
        self.donor = widgets.Dropdown(options=list(DONORS), value="random",
                                      description="Donor u")
        self.run_button = widgets.Button(description="Intervene", button_style="primary",
                                         icon="magic")
        self.run_button.add_class("causcell-intervene")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0,
                                              description="Sampling")
        self.concept.observe(lambda _: self._fill_targets(), "value")
        self.cells.observe(lambda _: self._fill_cells(), "value")
        self.cells_column.observe(lambda _: self._fill_labels(), "value")
        self.and_column.observe(lambda _: self._fill_labels(), "value")
        self.run_button.on_click(lambda _: self.run())
        for signal in (session.events.model, session.events.trained, session.events.obs):
            signal.connect(self.refresh)
        self.refresh()
        self.children = [
            widgets.HBox([self.concept, self.target]), self.keep,
            widgets.HBox([self.cells, self.rows]),
            widgets.HBox([self.cells_column, self.cells_label]),
            widgets.HBox([self.and_column, self.and_label]),
            widgets.HBox([self.sampler, self.steps]), widgets.HBox([self.seed, self.donor]),
            widgets.HBox([self.run_button, self.progress]), self.status,
        ]

    def refresh(self, *_: Any) -> None:
        """Re-read the model's concepts (after training or loading), time and domain first."""
        set_options(self.concept, self.state.model_concepts(time_first=True))
        self._fill_targets()
        self._fill_cells()
        self.run_button.disabled = self.state.model is None

    def _fill_targets(self) -> None:
        set_options(self.target, self.state.concept_labels_of_model(self.concept.value))
        self.keep.description = keep_text(self.state, self.concept.value)
        self.keep.disabled = not keepable(self.state, self.concept.value)

    def _fill_cells(self) -> None:
        """Columns from the data (its categorical ``obs`` columns), whatever their names."""
        cols = self.state.categorical_columns()
        first = self.cells_column.value if self.cells_column.value in cols else \
            default_column(self.state)
        set_options(self.cells_column, cols)
        if first in cols:
            self.cells_column.value = first
        set_options(self.and_column, [NO_COLUMN, *cols])
        mode = self.CELLS[self.cells.value]
        self.rows.disabled = mode != "indices"
        self.cells_column.disabled = mode != "label"
        self._fill_labels()
        if mode == "label" and not cols:
            self.message("The data have no column with a few labels to choose cells by.",
                         error=True)

    def _fill_labels(self) -> None:
        for column, label in ((self.cells_column, self.cells_label),
                              (self.and_column, self.and_label)):
            col = column.value
            ok = bool(col) and col != NO_COLUMN and col in self.state.adata.obs
            set_options(label, self.state.labels(col) if ok else [])
            label.disabled = not ok or column.disabled
        self.cells_label.disabled |= self.CELLS[self.cells.value] != "label"

    def _where(self) -> dict[str, str] | None:
        col = self.and_column.value
        if not col or col == NO_COLUMN or self.and_label.value is None:
            return None
        return {col: self.and_label.value}

    def request(self) -> InterveneRequest:
        """The form as a request."""
        mode = self.CELLS[self.cells.value]
        return InterveneRequest(self.concept.value, self.target.value, mode,
                                self.rows.value if mode == "indices" else self.cells_label.value,
                                self.cells_column.value or None, where=self._where(),
                                sampler=self.sampler.value, steps=int(self.steps.value),
                                seed=int(self.seed.value), donor=self.donor.value,
                                keep=bool(self.keep.value) and not self.keep.disabled)

    def run(self) -> bool:
        """Generate the counterfactual on a background thread; returns whether it started."""
        self.progress.value = 0.0
        request = self.request()
        return self.start(lambda: intervene_job(self.state, request), self._on_result,
                           self._on_fraction)

    def _on_result(self, result: InterveneResult) -> None:
        self.progress.value = 1.0
        self.message(result.message)
        if self.on_result is not None:
            self.on_result(result.intervention)

    def _set_busy(self, busy: bool) -> None:
        self.run_button.disabled = busy or self.state.model is None
