"""Workflow: do(concept = value) on chosen cells -> a counterfactual kept in the data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import tl
from .._constants import DEFAULT_STEPS
from .._keys import Key
from ..data import descendants
from ..errors import ConceptError, DataError
from ..tl._counterfactual import stored_counterfactual
from ..tl._switches import confound_note
from .cells import Selection, select
from .intervals import intervals_for
from .jobs import Job, Progress, pump
from .state import AppState, unique_key

__all__ = ["DONORS", "SAMPLERS", "InterveneRequest", "InterveneResult", "Intervention",
           "compute_intervention", "intervene_job", "intervention_key", "intervention_name",
           "keep_text", "keepable"]

#: Samplers and donor tokens the forms offer (``CausCell.counterfactual``).
SAMPLERS = ("mean", "ddim", "ddpm")
DONORS = ("random", "mean")


@dataclass
class Intervention:
    """One counterfactual kept in the state (and written into the data as ``key``)."""

    name: str
    key: str
    do: dict[str, str]
    selection: Selection
    table: Any  # the counterfactual AnnData returned by tl.counterfactual
    rows: np.ndarray  # table rows (positions in the state's table) of the intervened cells
    delta: np.ndarray  # (len(rows), n_genes) paired change, averaged over samples
    genes: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    #: per entry of ``rows``: the cell's label combination was never measured, its change is
    #: transported from measured labels (``obs['extrapolated']`` of any of its samples)
    extrapolated: np.ndarray | None = None
    #: :func:`~napari_causcell.tl.change_intervals` of the pooled intervened cells (one group
    #: ``"all"``, level :data:`~napari_causcell.app.intervals.LEVEL`); ``None`` when they
    #: could not be computed, with the reason in :attr:`intervals_note`
    intervals: pd.DataFrame | None = None
    intervals_note: str = ""
    #: the same intervals per stratum of the intervened cells (``group``: the label of
    #: ``strata.attrs['calibration']['stratum']``, e.g. the cell type); ``None`` without
    #: intervals
    strata: pd.DataFrame | None = None
    #: per entry of ``rows``: the cell's stratum label (a ``group`` of :attr:`strata`)
    stratum_of: np.ndarray | None = None

    def cell_uncertain(self, gene: str) -> np.ndarray | None:
        """Per entry of ``rows``: the 90 % interval of its stratum's change of ``gene``
        includes 0 (False where the stratum has none); ``None`` without intervals."""
        if self.strata is None or self.stratum_of is None:
            return None
        at = self.strata[self.strata["gene"] == gene].set_index("group")
        spans = (at["lower"] <= 0) & (at["upper"] >= 0)
        return spans.reindex(self.stratum_of, fill_value=False).to_numpy(bool)

    def gene_delta(self, gene: str) -> np.ndarray:
        return self.delta[:, self.genes.index(gene)]

    def describe(self) -> str:
        """A line for a list of kept interventions."""
        return f"{self.name}  [{self.selection.n_cells} cells -> {self.key}]"


def keepable(state: AppState, concept: str | None) -> list[str]:
    """The concepts a do() on ``concept`` may change through the model's graph (its
    descendants): what the forms' "keep" box holds at each cell's own label."""
    model = state.model
    if model is None or not concept or concept not in model.concepts:
        return []
    return sorted(descendants(model.concepts, model.edges, concept))


def keep_text(state: AppState, concept: str | None) -> str:
    """The "keep" box's caption for ``concept``."""
    kept = keepable(state, concept)
    if not kept:
        return "Keep each cell's labels (nothing downstream in the graph)"
    return f"Keep each cell's {', '.join(kept)} (direct effect)"


def intervention_name(do: Mapping[str, Any], selection: Selection | None = None) -> str:
    """Display name, e.g. ``do(age=90wk) on cell_type=Astro``."""
    text = "do(" + ", ".join(f"{k}={v}" for k, v in do.items()) + ")"
    if selection is not None and selection.description != "all cells":
        text += f" on {selection.description}"
    return text


def intervention_key(state: AppState, do: Mapping[str, Any],
                     selection: Selection | None = None) -> str:
    """A new result key ``causcell_<concept>_<value>[_<cells>]``, made unique."""
    cells = selection.description if selection is not None else ""
    base = Key.table.counterfactual(do, "" if cells == "all cells" else cells)
    return unique_key(base, state.taken_keys())


def compute_intervention(state: AppState, do: Mapping[str, Any], selection: Selection, *,
                         name: str | None = None, key: str | None = None,
                         **kwargs: Any) -> Intervention:
    """Run ``tl.counterfactual`` (written into the data) and package the result.

    ``kwargs`` go to :meth:`CausCell.counterfactual` (``sampler``, ``steps``, ``seed``,
    ``donor``, ``hard``, ``n_samples``, ``hold``, ``progress``). Also computes the intervals
    of the intervened cells' mean change from that counterfactual (:func:`intervals_for`;
    without them, if they fail, the reason in ``intervals_note``). Does not keep it: see
    :meth:`AppState.add_intervention`.
    """
    model = state.require_model()
    do = {str(k): str(v) for k, v in do.items()}
    try:  # the model's own check, as a DataError the front ends show
        for concept, value in do.items():
            model.concept_space.code(concept, value)
    except ConceptError as err:
        raise DataError(str(err)) from err
    key = key or intervention_key(state, do, selection)
    name = name or intervention_name(do, selection)
    tl.counterfactual(state.data, model, do, cells=selection.mask,
                      table_key=state.table_key, key_added=key, **kwargs)
    cf = stored_counterfactual(state.data, key)
    genes = [str(g) for g in cf.var_names]
    delta = pd.DataFrame(np.asarray(cf.layers[Key.layers.DELTA]), columns=genes)
    delta["__row"] = state.source_rows(cf)
    mean = delta.groupby("__row", sort=True).mean()
    params = {k: v for k, v in kwargs.items() if k != "progress"}
    extra = (cf.obs[Key.obs.EXTRAPOLATED].to_numpy(bool) if Key.obs.EXTRAPOLATED in cf.obs
             else np.zeros(cf.n_obs, bool))
    extra = pd.Series(extra).groupby(delta["__row"].to_numpy(), sort=True).any()
    intervals, strata, note = intervals_for(model, state.data, do, selection.mask, cf,
                                            table_key=state.table_key, hold=kwargs.get("hold"))
    rows = mean.index.to_numpy()
    stratum_of = None
    if strata is not None:
        by = strata.attrs["calibration"]["stratum"]
        stratum_of = state.adata.obs[by].astype(str).to_numpy()[rows]
    return Intervention(name=name, key=key, do=do, selection=selection, table=cf, rows=rows,
                        delta=mean.to_numpy(dtype=np.float32), genes=genes, params=params,
                        extrapolated=extra.reindex(mean.index, fill_value=False).to_numpy(),
                        intervals=intervals, intervals_note=note, strata=strata,
                        stratum_of=stratum_of)


@dataclass
class InterveneRequest:
    """What the Intervene form holds: the target, which cells, and how to sample.

    ``mode``, ``label``, ``column``, ``polygons`` and ``where`` describe the cells as
    :func:`~napari_causcell.app.cells.select` takes them (``label`` holds the rows in the
    ``"indices"`` mode; ``where`` a second condition such as ``{"age": "young"}``).
    """

    concept: str | None
    value: str | None
    mode: str = "all"
    label: Any = None
    column: str | None = None
    polygons: Any = None
    sampler: str = "mean"
    steps: int = DEFAULT_STEPS
    seed: int = 0
    donor: str = "random"
    keep: bool = False  # hold the concept's descendants at each cell's own label
    where: Mapping[str, Any] | None = None  # further {column: label} the cells must meet

    def validate(self, state: AppState) -> tuple[dict[str, str], Selection]:
        """``(do, selection)``; raises with the message to show."""
        state.require_model()
        if not self.concept or self.value is None or self.value == "":
            raise DataError("Choose a concept and a target value.")
        if self.sampler not in SAMPLERS:
            raise DataError(f"The sampler must be one of {list(SAMPLERS)}.")
        if int(self.steps) < 1:
            raise DataError("Sample with at least one step.")
        selection = select(state, self.mode, None if self.mode == "all" else self.label,
                           column=self.column or None, polygons=self.polygons,
                           where=self.where)
        return {self.concept: str(self.value)}, selection

    def sampling(self) -> dict[str, Any]:
        return dict(sampler=self.sampler, steps=int(self.steps), seed=int(self.seed),
                    donor=self.donor)


@dataclass
class InterveneResult:
    intervention: Intervention
    message: str


def intervene_job(state: AppState, request: InterveneRequest) -> Job[InterveneResult]:
    """Generate the counterfactual (progress: the sampler's fraction done). Cancelling stops
    the sampler at its next report; the result is kept in the state at the end."""
    do, selection = request.validate(state)
    name = intervention_name(do, selection)

    def steps(job: Job) -> Any:
        yield Progress(0.0, f"Generating {name} for {selection.n_cells} cells...")

        hold = keepable(state, request.concept) if request.keep else []

        def call(report: Any) -> Intervention:
            return compute_intervention(state, do, selection, progress=report,
                                        hold=hold or None, **request.sampling())

        iv = yield from pump(job, call, lambda f: Progress(float(f)))
        yield Progress(1.0, "")
        state.add_intervention(iv)
        where = "table" if state.is_spatialdata else f"adata.uns[{Key.uns.CAUSCELL!r}]"
        switches = tl.switch_summary(iv.table)
        note = (f" Labels changed: {switches}. Tick 'Keep each cell's ...' to hold them."
                + confound_note(iv.table, state.data, table_key=state.table_key)
                if switches else "")
        if iv.intervals is None:
            note += f" No intervals: {iv.intervals_note}"
        return InterveneResult(iv, f"Kept {iv.name} ({iv.selection.n_cells} cells) as "
                                   f"{where} {iv.key!r}. Show it with Overlay.{note}")

    return Job(steps, title=f"CausCell: {name}")
