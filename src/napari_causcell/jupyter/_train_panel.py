"""Train panel: concepts and their parents, Suggest graph, train with live progress, save/load."""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from .. import pl
from ..app import MODEL_SIZES, USER_ERRORS, AppState, Progress, describe_error
from ..app import graph, train
from ..app.forms import GraphForm
from ._base import Panel, figure_png, new_figure


class TrainPanel(Panel, GraphForm):
    """Choose concepts and their causal parents, train with live progress, stop, save, load.

    Parameters
    ----------
    session
        The :class:`~napari_causcell.app.AppState` whose data the model is trained on.
    """

    def __init__(self, session: AppState) -> None:
        super().__init__(session)
        cols = session.categorical_columns()
        self.concepts = widgets.SelectMultiple(
            options=cols, value=tuple(c for c in session.default_concepts() if c in cols),
            description="Concepts", rows=min(6, max(2, len(cols))),
            style={"description_width": "initial"})
        self.parents_box = widgets.VBox()
        self._ticks: dict[tuple[str, str], widgets.Checkbox] = {}
        self.suggest_button = widgets.Button(
            description="Suggest graph", icon="lightbulb-o",
            tooltip="Propose the parents from the labels (conditional-independence tests, "
                    "tl.suggest_dag); you decide what the tests cannot orient")
        self.suggest_button.add_class("causcell-suggest")
        self.undirected_label = widgets.HTML()
        self.dag_image = widgets.Image(format="png", layout=widgets.Layout(width="360px",
                                                                           display="none"))
        self.dag_image.add_class("causcell-dag")
        self._build_training_controls()
        self.concepts.observe(lambda _: self._rebuild_parents(), "value")
        self.suggest_button.on_click(lambda _: self.suggest())
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        self.save_button.on_click(lambda _: self.save())
        self.load_button.on_click(lambda _: self.load())
        self._rebuild_parents()
        self._last_draw = 0.0
        self.children = [
            widgets.HTML("<b>Concepts</b> (obs columns) and their causal parents"),
            self.concepts, self.parents_box,
            widgets.HBox([self.suggest_button, self.undirected_label]), self.dag_image,
            widgets.HBox([self.epochs, self.seed]), widgets.HBox([self.size, self.max_time]),
            widgets.HBox([self.train_button, self.stop_button, self.progress]),
            self.status, self.loss_image,
            widgets.HBox([self.path, self.save_button, self.load_button]),
        ]

    def _build_training_controls(self) -> None:
        self.epochs = widgets.BoundedIntText(value=train.DEFAULT_EPOCHS, min=1, max=100_000,
                                             description="Epochs")
        self.seed = widgets.IntText(value=0, description="Seed")
        self.size = widgets.Dropdown(options=list(MODEL_SIZES), value="default",
                                     description="Model")
        self.max_time = widgets.BoundedFloatText(value=train.DEFAULT_MAX_TIME, min=0.0, max=1e7,
                                                 description="Time limit (s)",
                                                 style={"description_width": "initial"})
        self.train_button = widgets.Button(description="Train", button_style="primary",
                                           icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="Epoch")
        self.loss_image = widgets.Image(format="png", layout=widgets.Layout(width="460px"))
        self.loss_image.add_class("causcell-loss")
        self.path = widgets.Text(value="causcell_model", description="Model dir")
        self.save_button = widgets.Button(description="Save", icon="save")
        self.load_button = widgets.Button(description="Load", icon="folder-open")

    # -- parent ticks ------------------------------------------------------------------------
    def _rebuild_parents(self) -> None:
        chosen = list(self.concepts.value)
        old = {k: cb.value for k, cb in self._ticks.items()}
        self._ticks, rows = {}, []
        for child in chosen:
            boxes = []
            for parent in (p for p in chosen if p != child):
                cb = widgets.Checkbox(value=old.get((parent, child), False), description=parent,
                                      indent=False, layout=widgets.Layout(width="auto"))
                cb.observe(lambda _: self._show_undirected(), "value")
                self._ticks[(parent, child)] = cb
                boxes.append(cb)
            label = widgets.HTML(f"{html.escape(child)} &larr;",
                                 layout=widgets.Layout(width="150px"))
            rows.append(widgets.HBox([label, *boxes]) if boxes else label)
        self.parents_box.children = rows

    def parents(self) -> dict[str, list[str]]:
        """The ticked parents of each chosen concept."""
        out: dict[str, list[str]] = {c: [] for c in self.concepts.value}
        for (parent, child), cb in self._ticks.items():
            if cb.value:
                out[child].append(parent)
        return out

    def set_parents(self, parents: Mapping[str, Sequence[str]]) -> None:
        """Tick exactly these parents (``{child: [parents]}``); others are cleared."""
        for (parent, child), cb in self._ticks.items():
            cb.value = parent in parents.get(child, ())

    def edges(self) -> list[tuple[str, str]]:
        return train.edges_from_parents(self.parents())

    # -- causal graph assistant ----------------------------------------------------------------
    def suggest(self) -> bool:
        """Propose parents from the labels on a background thread and tick them."""
        request = graph.SuggestRequest(list(self.concepts.value))
        return self.start(lambda: graph.suggest_job(self.state, request), self._on_suggested)

    def _on_suggested(self, result: graph.SuggestResult) -> None:
        if not self.accept(result, list(self.concepts.value)):
            return
        self.set_parents(result.parents)
        fig = new_figure(4.0, 3.0)
        pl.dag(result.suggestion, ax=fig.subplots(), title="")
        self.dag_image.value = figure_png(fig)
        self.dag_image.layout.display = None
        self._show_undirected()
        self.message(result.message)

    def _show_undirected(self) -> None:
        pending, text = self.undirected()
        colour = "#8a5a00" if pending else "#1b5e20"
        self.undirected_label.value = (f"<span style='color:{colour}'>{html.escape(text)}"
                                       "</span>" if text else "")

    # -- training ------------------------------------------------------------------------------
    def train(self) -> bool:
        """Build a model from the controls and train it on a background thread."""
        request = train.TrainRequest(list(self.concepts.value), self.parents(),
                                     int(self.epochs.value), int(self.seed.value), "auto",
                                     self.size.value, float(self.max_time.value) or None)
        self.progress.max, self.progress.value = int(self.epochs.value), 0
        return self.start(lambda: train.train_job(self.state, request), self._on_trained,
                           self._on_epoch)

    def _on_epoch(self, p: Progress) -> None:
        if p.data is None:
            return
        self.progress.value = p.data.epoch
        if time.monotonic() - self._last_draw > 1.0:  # at most one redraw per second
            self.draw_loss()

    def _on_trained(self, result: train.TrainResult) -> None:
        self.draw_loss()
        self.message(result.message)

    def _set_busy(self, busy: bool) -> None:
        self.train_button.disabled = self.suggest_button.disabled = busy
        self.stop_button.disabled = not busy

    def draw_loss(self) -> None:
        """Redraw the loss curves of the state's model."""
        self._last_draw = time.monotonic()
        model = self.state.model
        if model is None or not model.history:
            return
        fig = new_figure(5.5, 3.0)
        pl.loss(model, ax=fig.subplots())
        self.loss_image.value = figure_png(fig)

    def stop(self) -> None:
        """Stop training after the current step; the best weights so far are kept."""
        self.cancel()

    # -- save / load ----------------------------------------------------------------------------
    def save(self) -> None:
        self._file_action(train.save_model, self.path.value)

    def load(self) -> None:
        if self._file_action(train.load_model, self.path.value):
            self.draw_loss()

    def _file_action(self, action: Any, path: str) -> bool:
        try:
            self.message(action(self.state, path))
        except USER_ERRORS as err:
            self.message(describe_error(err), error=True)
            return False
        return True
