"""Trends panel: expression trends along a concept (age) from counterfactuals."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from .. import pl
from .._constants import DEFAULT_STEPS
from ..app import ALL_OTHERS, AppState
from ..app.trends import TrendsRequest, TrendsResult, trends_job
from ..errors import DataError
from ._base import Panel, figure_png, new_figure, set_options


class TrendsPanel(Panel):
    """Expression trends along a concept (age) from counterfactuals (``tl.age_trends``).

    The cells at the source label are moved to each target label; per target, group (cell
    type, domain) and gene the paired changes are tested. Shows the largest significant
    changes as a table and a heatmap (:func:`napari_causcell.pl.trend_heatmap`).

    Parameters
    ----------
    session
        The :class:`~napari_causcell.app.AppState`; its model must be trained before
        :meth:`run`.
    n_rows
        Rows of the top-changes table.
    """

    def __init__(self, session: AppState, n_rows: int = 15) -> None:
        super().__init__(session)
        self.n_rows = n_rows
        self.result = None
        self.concept = widgets.Dropdown(description="Concept")
        self.source = widgets.Dropdown(description="From cells at",
                                       style={"description_width": "initial"})
        self.target = widgets.Dropdown(description="To")
        self.steps = widgets.BoundedIntText(value=DEFAULT_STEPS, min=1, max=1000,
                                            description="Steps")
        self.seed = widgets.IntText(value=0, description="Seed")
        self.run_button = widgets.Button(description="Run trends", button_style="primary",
                                         icon="line-chart")
        self.run_button.add_class("causcell-trends")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0,
                                              description="Trends")
        self.table = widgets.HTML()
        self.heatmap = widgets.Image(format="png", layout=widgets.Layout(width="640px",
                                                                         display="none"))
        self.heatmap.add_class("causcell-trends-heatmap")
        self.concept.observe(lambda _: self._fill_labels(), "value")
        self.run_button.on_click(lambda _: self.run())
        for signal in (session.events.model, session.events.trained):
            signal.connect(self.refresh)
        self.refresh()
        self.children = [
            widgets.HBox([self.concept, self.source, self.target]),
            widgets.HBox([self.steps, self.seed]),
            widgets.HBox([self.run_button, self.progress]), self.status,
            widgets.HBox([self.table, self.heatmap]),
        ]

    def refresh(self, *_: Any) -> None:
        """Re-read the model's concepts, time-like first."""
        set_options(self.concept, self.state.model_concepts(time_first=True))
        self._fill_labels()
        self.run_button.disabled = self.state.model is None

    def _fill_labels(self) -> None:
        labels = self.state.concept_labels_of_model(self.concept.value)
        set_options(self.source, labels)
        set_options(self.target, [ALL_OTHERS, *labels] if labels else [])

    def run(self) -> bool:
        """Compute the trends on a background thread; returns whether it started."""
        self.progress.value = 0.0
        request = TrendsRequest(self.concept.value, self.source.value, self.target.value,
                                int(self.steps.value), int(self.seed.value),
                                n_rows=self.n_rows)
        return self.start(lambda: trends_job(self.state, request), self._on_result,
                           self._on_fraction)

    def _on_result(self, result: TrendsResult) -> None:
        self.result = result.trends
        self.progress.value = 1.0
        self.table.value = result.top.to_html(index=False, float_format=lambda v: f"{v:+.3g}",
                                              classes="causcell-trends-table", border=0)
        try:
            fig = pl.trend_heatmap(result.trends, fig=new_figure(7.0, 5.0))
        except DataError:  # nothing significant to draw
            self.heatmap.layout.display = "none"
        else:
            self.heatmap.value = figure_png(fig)
            self.heatmap.layout.display = None
        self.message(result.message)

    def _set_busy(self, busy: bool) -> None:
        self.run_button.disabled = busy or self.state.model is None
