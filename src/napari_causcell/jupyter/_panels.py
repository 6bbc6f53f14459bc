"""ipywidgets panels: Train, Intervene, Overlay, and the tabbed :class:`CausCellPanel`.

Each panel is an ``ipywidgets.VBox`` over a :class:`~napari_causcell.session.CausCellSession`.
They hold no model logic: inputs go to the session, results are drawn with
:mod:`napari_causcell.pl` into PNG images (thread-safe, and shown the same in JupyterLab,
Notebook, VS Code and a static HTML export).
"""

from __future__ import annotations

import html
import io
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from .. import pl
from .._constants import DEFAULT_STEPS
from .._model import SELECT_LABELS, ModelFileError, validation_loss
from ..data import DAGError, DataError
from ..errors import CausCellError
from ..session import MODEL_SIZES, CausCellSession, Intervention

#: Errors a user can cause with an input; shown in the panel, not raised.
USER_ERRORS = (CausCellError, DataError, DAGError, ModelFileError, ValueError, KeyError,
               OSError)

#: Views of the Overlay panel -> (session view, show the factual panel beside it).
OVERLAY_VIEWS = {
    "factual | counterfactual": ("counterfactual", True),
    "factual": ("factual", False),
    "counterfactual": ("counterfactual", False),
    "difference": ("difference", False),
}


def figure_png(fig, dpi: int = 90) -> bytes:
    """PNG bytes of a matplotlib figure (no pyplot state involved)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def set_options(dropdown: widgets.Dropdown, options: Sequence[Any]) -> None:
    """Replace a dropdown's options, keeping its value when still offered (else the first)."""
    options = list(options)
    keep = dropdown.value if dropdown.value in options else (options[0] if options else None)
    if list(dropdown.options) == options and dropdown.value == keep:
        return
    if list(dropdown.options) != options:
        dropdown.options = options
    dropdown.value = keep


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


class _Panel(widgets.VBox):
    """A panel with a status line and at most one background job at a time."""

    def __init__(self, session: CausCellSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.status = widgets.HTML()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # -- status ----------------------------------------------------------------------------
    def message(self, text: str, error: bool = False) -> None:
        colour = "#b00020" if error else "inherit"
        self.status.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

    @property
    def status_text(self) -> str:
        """The status line as plain text."""
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value))

    # -- background jobs ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self, job: Callable[[], Any], done: Callable[[Any], Any]) -> bool:
        """Run ``job`` on a thread; ``done(result)`` runs on it too when ``job`` succeeds."""
        if self.busy:
            self.message("Busy: wait for the running job (or stop it).", error=True)
            return False
        self.error = None

        def run() -> None:
            try:
                done(job())
            except USER_ERRORS as err:
                self.error = err
                self.message(f"Refused: {err}", error=True)
            except BaseException as err:  # noqa: BLE001 - shown to the user, kept for tests
                self.error = err
                self.message(f"Failed: {type(err).__name__}: {err}", error=True)
            finally:
                self._job_finished()

        self._thread = threading.Thread(target=run, daemon=True, name=type(self).__name__)
        self._thread.start()
        return True

    def _job_finished(self) -> None:
        """Hook: re-enable buttons after a job."""

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job ends (for scripts and tests); re-raise its error."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"{type(self).__name__} job still running after {timeout} s")
        if self.error is not None:
            raise self.error


class TrainPanel(_Panel):
    """Choose concepts and their causal parents, train with live progress, stop, save, load.

    Parameters
    ----------
    session
        The session whose data the model is trained on.
    """

    def __init__(self, session: CausCellSession) -> None:
        super().__init__(session)
        cols = session.categorical_columns()
        self.concepts = widgets.SelectMultiple(
            options=cols, value=tuple(c for c in session.default_concepts() if c in cols),
            description="Concepts", rows=min(6, max(2, len(cols))),
            style={"description_width": "initial"},
        )
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
        self.suggestion: Any = None
        self.epochs = widgets.BoundedIntText(value=60, min=1, max=100_000, description="Epochs")
        self.seed = widgets.IntText(value=0, description="Seed")
        self.size = widgets.Dropdown(options=list(MODEL_SIZES), value="default",
                                     description="Model")
        self.max_time = widgets.BoundedFloatText(value=0.0, min=0.0, max=1e7,
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

        self.concepts.observe(lambda _: self._rebuild_parents(), "value")
        self.suggest_button.on_click(lambda _: self.suggest())
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        self.save_button.on_click(lambda _: self.save())
        self.load_button.on_click(lambda _: self.load())
        self._rebuild_parents()
        self._stop_asked = False
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

    # -- DAG ticks -----------------------------------------------------------------------------
    def _rebuild_parents(self) -> None:
        chosen = list(self.concepts.value)
        old = {k: cb.value for k, cb in self._ticks.items()}
        self._ticks = {}
        rows = []
        for child in chosen:
            boxes = []
            for parent in chosen:
                if parent == child:
                    continue
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
        return CausCellSession.edges_from_parents(self.parents())

    # -- causal graph assistant ----------------------------------------------------------------
    def suggest(self) -> bool:
        """Propose parents from the labels on a background thread and tick them.

        Undirected edges (the tests cannot orient them) are listed for the user to decide;
        the suggested graph is drawn with :func:`napari_causcell.pl.dag`.
        """
        concepts = list(self.concepts.value)
        if len(concepts) < 2:
            self.message("Choose at least two concepts to suggest a graph.", error=True)
            return False
        self.message(f"Suggesting a graph over {concepts} from the labels...")
        started = self._start(lambda: self.session.suggest_dag(concepts), self._on_suggested)
        if started:
            self.suggest_button.disabled = self.train_button.disabled = True
        return started

    def _on_suggested(self, suggestion: Any) -> None:
        if list(suggestion.concepts) != list(self.concepts.value):
            self.message("The concepts changed while suggesting; suggest again.", error=True)
            return
        parents, _ = CausCellSession.suggestion_ticks(suggestion)
        self.suggestion = suggestion
        self.set_parents(parents)
        fig = _new_figure(4.0, 3.0)
        pl.dag(suggestion, ax=fig.subplots(), title="")
        self.dag_image.value = figure_png(fig)
        self.dag_image.layout.display = None
        self._show_undirected()
        self.message(CausCellSession.suggestion_message(suggestion))

    def undirected_pending(self) -> list[tuple[str, str]]:
        """Suggested undirected edges for which neither direction is ticked yet."""
        if self.suggestion is None:
            return []
        return CausCellSession.undirected_pending(self.suggestion.undirected, self.parents())

    def _show_undirected(self) -> None:
        if self.suggestion is None:
            self.undirected_label.value = ""
            return
        pending = self.undirected_pending()
        text = ("Undirected, tick one direction (or neither): "
                + ", ".join(f"{html.escape(a)} &mdash; {html.escape(b)}" for a, b in pending)
                if pending else "Every suggested edge is oriented.")
        colour = "#8a5a00" if pending else "#1b5e20"
        self.undirected_label.value = f"<span style='color:{colour}'>{text}</span>"

    # -- training ------------------------------------------------------------------------------
    def train(self) -> bool:
        """Build a model from the controls and train it on a background thread.

        Returns whether training started (errors in the inputs are shown in the status line).
        """
        s, concepts = self.session, list(self.concepts.value)
        if not concepts:
            self.message("Choose at least one concept column.", error=True)
            return False
        try:
            edges = CausCellSession.check_dag(concepts, self.edges())
        except DAGError as err:
            self.message(str(err), error=True)
            return False
        epochs, seed = int(self.epochs.value), int(self.seed.value)
        size = MODEL_SIZES[self.size.value]
        max_time = float(self.max_time.value) or None
        self.progress.max, self.progress.value = epochs, 0
        self._stop_asked = False

        def job() -> int:
            s.build_model(concepts, edges, seed=seed, **size)
            if self._stop_asked:
                s.request_stop()
            for p in s.train_iter(epochs, max_time=max_time):
                self._on_epoch(p)
            return len(s.model.history)

        dag = ", ".join(f"{a} -> {b}" for a, b in edges) or "none"
        self.message(f"Training on {s.n_cells} cells: concepts {concepts}, DAG {dag}...")
        if not self._start(job, self._on_trained):
            return False
        self.train_button.disabled, self.stop_button.disabled = True, False
        return True

    def _on_epoch(self, p: Any) -> None:
        if self._stop_asked:
            self.session.request_stop()
        self.progress.value = p.epoch
        val_text = ""
        val = validation_loss(p.val_losses)  # the quantity early stopping watches
        if val is not None:
            val_text = f", {SELECT_LABELS['recon']} {val:.3f}"
        total = p.losses.get("total", float("nan"))
        self.message(f"Epoch {p.epoch}/{p.max_epochs}: loss {total:.3f}{val_text} "
                     f"({p.elapsed:.0f} s)")
        if time.monotonic() - self._last_draw > 1.0:  # at most one redraw per second
            self.draw_loss()

    def _on_trained(self, n_epochs: int) -> None:
        self.draw_loss()
        model = self.session.model
        reason = model.train_params.get("stop_reason", "")
        best = model.train_params.get("best_val_loss", float("nan"))
        label = SELECT_LABELS.get(model.train_params.get("select", "recon"), "validation loss")
        self.message(f"Trained {n_epochs} epochs (ended by {reason}); best {label} "
                     f"{best:.3f}, whose weights are kept.")
        self.session.notify("training")

    def _job_finished(self) -> None:
        self.train_button.disabled, self.stop_button.disabled = False, True
        self.suggest_button.disabled = False

    def draw_loss(self) -> None:
        """Redraw the loss curves of the session's model."""
        self._last_draw = time.monotonic()
        model = self.session.model
        if model is None or not model.history:
            return
        fig = _new_figure(5.5, 3.0)
        pl.loss(model, ax=fig.subplots())
        self.loss_image.value = figure_png(fig)

    def stop(self) -> None:
        """Stop training after the current step; the best weights so far are kept."""
        self._stop_asked = True
        self.session.request_stop()
        self.message("Stopping after the current step...")

    # -- save / load ----------------------------------------------------------------------------
    def save(self) -> None:
        try:
            path = self.session.save_model(self.path.value)
        except USER_ERRORS as err:
            self.message(f"Refused: {err}", error=True)
            return
        self.message(f"Saved the model to {path}.")

    def load(self) -> None:
        try:
            model = self.session.load_model(self.path.value)
        except USER_ERRORS as err:
            self.message(f"Refused: {err}", error=True)
            return
        self.message(f"Loaded a model of {model.concepts} from {self.path.value}.")
        self.draw_loss()


class IntervenePanel(_Panel):
    """do(concept = value) for all cells, one cell type or one domain.

    Parameters
    ----------
    session
        The session; its model must be trained before :meth:`run`.
    on_result
        Called with each new :class:`~napari_causcell.session.Intervention` (on the worker
        thread), e.g. to show it in an :class:`OverlayPanel`.
    """

    CELLS = {"all cells": "all", "one cell type": "cell_type", "one domain": "domain"}

    def __init__(self, session: CausCellSession,
                 on_result: Callable[[Intervention], Any] | None = None) -> None:
        super().__init__(session)
        self.on_result = on_result
        self.concept = widgets.Dropdown(description="Concept")
        self.target = widgets.Dropdown(description="Set to")
        self.cells = widgets.Dropdown(options=list(self.CELLS), description="Cells")
        self.cells_label = widgets.Dropdown(description="Which", disabled=True)
        self.sampler = widgets.Dropdown(options=["mean", "ddim", "ddpm"], value="mean",
                                        description="Sampler")
        self.steps = widgets.BoundedIntText(value=DEFAULT_STEPS, min=1, max=1000,
                                            description="Steps")
        self.seed = widgets.IntText(value=0, description="Seed")
        self.donor = widgets.Dropdown(options=["random", "mean"], value="random",
                                      description="Donor u")
        self.run_button = widgets.Button(description="Intervene", button_style="primary",
                                         icon="magic")
        self.run_button.add_class("causcell-intervene")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0,
                                              description="Sampling")
        self.concept.observe(lambda _: self._fill_targets(), "value")
        self.cells.observe(lambda _: self._fill_cells(), "value")
        self.run_button.on_click(lambda _: self.run())
        session.subscribe(self._on_session)
        self.refresh()
        self.children = [
            widgets.HBox([self.concept, self.target]),
            widgets.HBox([self.cells, self.cells_label]),
            widgets.HBox([self.sampler, self.steps]), widgets.HBox([self.seed, self.donor]),
            widgets.HBox([self.run_button, self.progress]), self.status,
        ]

    def _on_session(self, what: str) -> None:
        if what in ("model", "training", "obs"):
            self.refresh()

    def refresh(self) -> None:
        """Re-read the model's concepts (after training or loading)."""
        model = self.session.model
        concepts = list(model.concepts) if model is not None else []
        # age/time and domain first: the interventions the tool is for
        order = [c for c in (self.session.guess_column("time"), self.session.guess_column("domain"))
                 if c in concepts]
        set_options(self.concept, dict.fromkeys([*order, *concepts]))
        self._fill_targets()
        self._fill_cells()
        self.run_button.disabled = model is None

    def _fill_targets(self) -> None:
        model, concept = self.session.model, self.concept.value
        if model is None or concept is None:
            set_options(self.target, [])
            return
        set_options(self.target, [str(c) for c in model.concept_space.categories[concept]])

    def _fill_cells(self) -> None:
        mode = self.CELLS[self.cells.value]
        if mode == "all":
            set_options(self.cells_label, [])
            self.cells_label.disabled = True
            return
        column = self.session.guess_column(mode)
        set_options(self.cells_label, self.session.labels(column) if column else [])
        self.cells_label.disabled = column is None
        if column is None:
            self.message(f"No {mode.replace('_', ' ')} column found in obs.", error=True)

    def selection(self):
        """The cells the controls describe (raises DataError when none)."""
        mode = self.CELLS[self.cells.value]
        return self.session.select(mode, None if mode == "all" else self.cells_label.value)

    def run(self) -> bool:
        """Generate the counterfactual on a background thread; returns whether it started."""
        s = self.session
        try:
            s.require_model()
            concept, value = self.concept.value, self.target.value
            if not concept or value is None:
                raise DataError("Choose a concept and a target value.")
            selection = self.selection()
        except USER_ERRORS as err:
            self.message(f"Refused: {err}", error=True)
            return False
        do = {concept: value}
        name = s.intervention_name(do, selection)
        kwargs = dict(sampler=self.sampler.value, steps=int(self.steps.value),
                      seed=int(self.seed.value), donor=self.donor.value)
        self.progress.value = 0.0

        def report(fraction: float) -> None:
            self.progress.value = float(fraction)

        def job() -> Intervention:
            return s.compute_intervention(do, selection, progress=report, **kwargs)

        self.message(f"Generating {name} for {selection.n_cells} cells...")
        if not self._start(job, self._on_result):
            return False
        self.run_button.disabled = True
        return True

    def _on_result(self, iv: Intervention) -> None:
        s = self.session
        s.add_intervention(iv)
        self.progress.value = 1.0
        where = "table" if hasattr(s.data, "tables") else "adata.uns['causcell']"
        self.message(f"Kept {iv.name} ({iv.selection.n_cells} cells) as {where} {iv.key!r}.")
        if self.on_result is not None:
            self.on_result(iv)

    def _job_finished(self) -> None:
        self.run_button.disabled = self.session.model is None


class OverlayPanel(_Panel):
    """Factual / counterfactual / difference expression on the tissue, and top changed genes.

    The factual and counterfactual views share one colour scale; the difference view is
    symmetric around 0. Cells not intervened on are grey in the difference view.
    """

    def __init__(self, session: CausCellSession, size: float = 4.0) -> None:
        super().__init__(session)
        self.size = size
        self.figure = None
        self.intervention = widgets.Dropdown(description="do()",
                                             layout=widgets.Layout(width="420px"))
        self.gene = widgets.Dropdown(description="Gene")
        self.view = widgets.ToggleButtons(options=list(OVERLAY_VIEWS),
                                          value="factual | counterfactual")
        self.top = widgets.Select(description="Top changed", rows=10,
                                  layout=widgets.Layout(width="330px"),
                                  style={"description_width": "initial"})
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.image.add_class("causcell-overlay")
        self._drawing = threading.Lock()
        self.gene.observe(lambda _: self.draw(), "value")
        self.view.observe(lambda _: self.draw(), "value")
        self.intervention.observe(lambda _: self._on_intervention(), "value")
        self.top.observe(self._on_top, "value")
        session.subscribe(self._on_session)
        self.refresh()
        self.children = [
            widgets.HBox([self.intervention, self.gene]), self.view,
            widgets.HBox([self.image, self.top]), self.status,
        ]

    def _on_session(self, what: str) -> None:
        if what in ("model", "interventions", "training"):
            self.refresh()

    def refresh(self) -> None:
        """Re-read genes and interventions from the session."""
        set_options(self.gene, self.session.genes)
        names = list(self.session.interventions)
        if list(self.intervention.options) != names:
            set_options(self.intervention, names)
            if names:
                self.intervention.value = names[-1]

    def show(self, intervention: str | Intervention, gene: str | None = None) -> None:
        """Show an intervention (by name), its top changed gene unless ``gene`` is given."""
        name = intervention.name if isinstance(intervention, Intervention) else intervention
        self.refresh()
        self.intervention.value = name
        top = self.session.top_genes(name, n=1)
        self.gene.value = gene or str(top["gene"].iloc[0])
        self.draw()

    def _on_intervention(self) -> None:
        name = self.intervention.value
        if not name:
            self.top.options = []
            return
        df = self.session.top_genes(name, n=20)
        self.top.options = [(f"{g:<12} {d:+.3f}", str(g))
                            for g, d in zip(df["gene"], df["mean_change"])]
        self.draw()

    def _on_top(self, change: Mapping[str, Any]) -> None:
        if change["new"] and change["new"] in self.gene.options:
            self.gene.value = change["new"]

    def draw(self) -> bool:
        """Redraw the tissue for the chosen gene, view and intervention."""
        gene = self.gene.value
        if gene is None:
            return False
        view, with_factual = OVERLAY_VIEWS[self.view.value]
        iv = self.intervention.value or None
        ivs = (None, iv) if with_factual else (iv,)
        try:
            if view != "factual" and iv is None:
                raise DataError(f"The {view} view needs an intervention: run one first.")
            ov = self.session.overlay("expression", gene=gene, view=view, interventions=ivs)
        except USER_ERRORS as err:
            self.message(f"Refused: {err}", error=True)
            return False
        with self._drawing:
            fig = _new_figure(*pl.overlay_grid(self.session.coords, len(ov.values))[2])
            pl.tissue_overlay(ov, self.session.coords, fig=fig, size=self.size)
            self.figure, self.overlay = fig, ov
            self.image.value = figure_png(fig)
        self.message(f"{gene}: {self.view.value}" + (f" of {iv}" if iv else ""))
        return True


ALL_OTHERS = "all other labels"


class TrendsPanel(_Panel):
    """Expression trends along a concept (age) from counterfactuals (``tl.age_trends``).

    The cells at the source label are moved to each target label; per target, group (cell
    type, domain) and gene the paired changes are tested. Shows the largest significant
    changes as a table and a heatmap (:func:`napari_causcell.pl.trend_heatmap`).

    Parameters
    ----------
    session
        The session; its model must be trained before :meth:`run`.
    n_rows
        Rows of the top-changes table.
    """

    def __init__(self, session: CausCellSession, n_rows: int = 15) -> None:
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
        session.subscribe(self._on_session)
        self.refresh()
        self.children = [
            widgets.HBox([self.concept, self.source, self.target]),
            widgets.HBox([self.steps, self.seed]),
            widgets.HBox([self.run_button, self.progress]), self.status,
            widgets.HBox([self.table, self.heatmap]),
        ]

    def _on_session(self, what: str) -> None:
        if what in ("model", "training"):
            self.refresh()

    def refresh(self) -> None:
        """Re-read the model's concepts, time-like first."""
        model = self.session.model
        concepts = list(model.concepts) if model is not None else []
        time_col = self.session.guess_column("time")
        set_options(self.concept, dict.fromkeys([c for c in [time_col] if c in concepts]
                                                + concepts))
        self._fill_labels()
        self.run_button.disabled = model is None

    def _fill_labels(self) -> None:
        model, concept = self.session.model, self.concept.value
        labels = ([str(c) for c in model.concept_space.categories[concept]]
                  if model is not None and concept else [])
        set_options(self.source, labels)
        set_options(self.target, [ALL_OTHERS, *labels] if labels else [])

    def run(self) -> bool:
        """Compute the trends on a background thread; returns whether it started."""
        s = self.session
        try:
            s.require_model()
            concept, source, target = self.concept.value, self.source.value, self.target.value
            if not concept or source is None or target is None:
                raise DataError("Choose a concept and the source label.")
            if target == source:
                raise DataError("The target equals the source.")
        except USER_ERRORS as err:
            self.message(f"Refused: {err}", error=True)
            return False
        targets = None if target == ALL_OTHERS else [target]
        kwargs = dict(steps=int(self.steps.value), seed=int(self.seed.value))
        self.progress.value = 0.0

        def report(fraction: float) -> None:
            self.progress.value = float(fraction)

        def job():
            return s.age_trends(source, targets, concept=concept, progress=report, **kwargs)

        self.message(f"Computing trends {concept}: {source} -> {target}...")
        if not self._start(job, self._on_result):
            return False
        self.run_button.disabled = True
        return True

    def _on_result(self, result) -> None:
        self.result = result
        self.progress.value = 1.0
        top = self.session.top_trends(result, self.n_rows)
        self.table.value = top.to_html(index=False, float_format=lambda v: f"{v:+.3g}",
                                       classes="causcell-trends-table", border=0)
        try:
            fig = pl.trend_heatmap(result, fig=_new_figure(7.0, 5.0))
        except DataError:  # nothing significant to draw
            self.heatmap.layout.display = "none"
        else:
            self.heatmap.value = figure_png(fig)
            self.heatmap.layout.display = None
        self.message(self.session.trends_message(result))

    def _job_finished(self) -> None:
        self.run_button.disabled = self.session.model is None


class CausCellPanel(widgets.VBox):
    """Train, Intervene, Overlay and Trends tabs over one dataset (SpatialData or AnnData).

    Parameters
    ----------
    data
        SpatialData with a table, or AnnData, with tissue coordinates.
    table_key
        Table of the SpatialData (default: ``"table"`` or its only table).
    model
        An already trained :class:`~napari_causcell.CausCell` on this data (optional).

    Attributes
    ----------
    session, train_panel, intervene_panel, overlay_panel, trends_panel, tabs
    """

    def __init__(self, data: Any, table_key: str | None = None, model: Any = None) -> None:
        super().__init__()
        self.session = CausCellSession(data, table_key)
        if model is not None:
            self.session.set_model(model)
        self.train_panel = TrainPanel(self.session)
        self.overlay_panel = OverlayPanel(self.session)
        self.intervene_panel = IntervenePanel(self.session, on_result=self._show_result)
        self.trends_panel = TrendsPanel(self.session)
        self.tabs = widgets.Tab(children=[self.train_panel, self.intervene_panel,
                                          self.overlay_panel, self.trends_panel])
        for i, title in enumerate(["Train", "Intervene", "Overlay", "Trends"]):
            self.tabs.set_title(i, title)
        if model is not None and model.is_trained:
            self.tabs.selected_index = 1
            self.train_panel.draw_loss()
        n = self.session.n_cells
        head = widgets.HTML(f"<b>CausCell</b> &middot; {n} cells &middot; "
                            f"{len(self.session.genes)} genes")
        self.children = [head, self.tabs]

    def _show_result(self, iv: Intervention) -> None:
        self.overlay_panel.show(iv)
        self.tabs.selected_index = 2

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every panel's running job (for scripts and tests)."""
        for panel in (self.train_panel, self.intervene_panel, self.overlay_panel,
                      self.trends_panel):
            panel.wait(timeout)
