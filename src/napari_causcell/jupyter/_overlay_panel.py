"""Overlay panel: factual / counterfactual / difference expression on the tissue, top genes."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from .. import pl
from ..app import USER_ERRORS, AppState, Intervention, OverlayRequest, describe_error
from ..app.canvas import sections_of
from ..app.intervals import change_texts, greyed, top_note
from ..app.overlay import VIEW_PRESETS, top_genes, top_genes_title
from ..data.sections import coordinate_unit
from ._base import Panel, figure_png, new_figure, set_options

#: the top-changed list in a fixed-width font, so that the padded names and the
#: right-aligned changes line up in columns (scoped to the list by its class)
TOP_CSS = ("<style>.causcell-top select, .causcell-top option {"
           " font-family: var(--jp-code-font-family, monospace), monospace; }</style>")
#: text colour of the top genes whose interval includes 0
GREY = "#8c8c8c"
_SCOPES = itertools.count()


def top_labels(genes: list[str], changes: Sequence[float | str]) -> list[str]:
    """``"name  +0.123"`` per gene: names padded to the longest, changes right-aligned
    (numbers as ``+0.123``; texts, e.g. ``"+1.37 [+0.90, +1.80]"``, as given)."""
    numbers = [d if isinstance(d, str) else f"{float(d):+.3f}" for d in changes]
    width = max((len(str(g)) for g in genes), default=0)
    right = max((len(x) for x in numbers), default=0)
    return [f"{str(g):<{width}} {x:>{right}}" for g, x in zip(genes, numbers)]


def grey_css(scope: str, grey: Sequence[bool]) -> str:
    """A style greying the options of the list of class ``scope`` where ``grey`` (their
    interval includes 0); ``""`` when none is."""
    rows = [f".{scope} option:nth-child({i + 1})" for i, g in enumerate(grey) if g]
    return f"<style>{', '.join(rows)} {{ color: {GREY}; }}</style>" if rows else ""


class OverlayPanel(Panel):
    """Factual / counterfactual / difference expression on the tissue, and top changed genes.

    The factual and counterfactual views share one colour scale; the difference view is
    symmetric around 0. Cells not intervened on are grey in the difference view.
    """

    def __init__(self, session: AppState, size: float = 4.0) -> None:
        super().__init__(session)
        self.size = size
        self.figure = None
        self.overlay = None
        self.intervention = widgets.Dropdown(description="do()",
                                             layout=widgets.Layout(width="420px"))
        self.gene = widgets.Dropdown(description="Gene")
        self.view = widgets.ToggleButtons(options=list(VIEW_PRESETS),
                                          value="factual | counterfactual",
                                          style={"button_width": "auto"})
        self.top = widgets.Select(description="Top changed", rows=10,
                                  layout=widgets.Layout(width="400px"),
                                  style={"description_width": "initial"})
        self.scope = f"causcell-top-{next(_SCOPES)}"  # this panel's list, for grey_css
        self.top.add_class("causcell-top")
        self.top.add_class(self.scope)
        self.top_title = widgets.Label("", layout=widgets.Layout(width="400px"))
        self.top_note = widgets.Label("", layout=widgets.Layout(width="400px"))
        self.top_css = widgets.HTML(TOP_CSS, layout=widgets.Layout(display="none"))
        self.grey_css = widgets.HTML("", layout=widgets.Layout(display="none"))
        self.fade = widgets.Checkbox(value=True, description="Fade uncertain cells",
                                     tooltip="Fade the cells whose group's 90 % interval of "
                                     "the gene's change includes 0",
                                     indent=False)
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.image.add_class("causcell-overlay")
        self._drawing = threading.Lock()
        self.gene.observe(lambda _: self.draw(), "value")
        self.view.observe(lambda _: self.draw(), "value")
        self.fade.observe(lambda _: self.draw(), "value")
        self.intervention.observe(lambda _: self._on_intervention(), "value")
        self.top.observe(self._on_top, "value")
        for signal in (session.events.model, session.events.trained,
                       session.events.interventions):
            signal.connect(self.refresh)
        self.refresh()
        self.children = [
            widgets.HBox([self.intervention, self.gene]), widgets.HBox([self.view, self.fade]),
            widgets.HBox([self.image, widgets.VBox([self.top_title, self.top, self.top_note])]),
            self.status, self.top_css, self.grey_css,
        ]

    def refresh(self, *_: Any) -> None:
        """Re-read genes and interventions from the state."""
        set_options(self.gene, self.state.genes)
        names = list(self.state.interventions)
        if list(self.intervention.options) != names:
            set_options(self.intervention, names)
            if names:
                self.intervention.value = names[-1]

    def show(self, intervention: str | Intervention, gene: str | None = None) -> None:
        """Show an intervention (by name), its top changed gene unless ``gene`` is given."""
        name = intervention.name if isinstance(intervention, Intervention) else intervention
        self.refresh()
        self.intervention.value = name
        self.gene.value = gene or str(top_genes(self.state, name, n=1)["gene"].iloc[0])
        self.draw()

    def _on_intervention(self) -> None:
        name = self.intervention.value
        if not name:
            self.top.options, self.top_title.value = [], ""
            self.top_note.value = self.grey_css.value = ""
            return
        self.top_title.value = top_genes_title(self.state, name)
        df = top_genes(self.state, name, n=20)
        genes = [str(g) for g in df["gene"]]
        self.top.options = list(zip(top_labels(genes, change_texts(df)), genes))
        self.grey_css.value = grey_css(self.scope, greyed(df))
        self.top_note.value = top_note(df, self.state.get_intervention(name))
        self.draw()

    def _on_top(self, change: Mapping[str, Any]) -> None:
        if change["new"] and change["new"] in self.gene.options:
            self.gene.value = change["new"]

    def draw(self) -> bool:
        """Redraw the tissue for the chosen gene, view and intervention."""
        if self.gene.value is None:
            return False
        request = OverlayRequest.preset(self.view.value, self.gene.value,
                                        self.intervention.value or None,
                                        fade_uncertain=self.fade.value)
        try:
            ov, text = request.run(self.state)
        except USER_ERRORS as err:
            self.message(describe_error(err), error=True)
            return False
        with self._drawing:
            fig = new_figure(*pl.overlay_grid(self.state.coords, len(ov.values))[2])
            pl.tissue_overlay(ov, self.state.coords, fig=fig, size=self.size,
                              sections=sections_of(self.state),
                              unit=coordinate_unit(self.state.adata))
            self.figure, self.overlay = fig, ov
            self.image.value = figure_png(fig)
        self.message(text)
        return True
