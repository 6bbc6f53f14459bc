"""Front-end-neutral controller shared by the napari plugin and the Jupyter front end.

A :class:`CausCellSession` holds one dataset (a SpatialData table or an AnnData), the model
trained on it and the interventions made with it. It turns user choices (a mode and a value,
a drawn polygon, a clicked point) into the arguments of the public API, and API results into
arrays a front end can draw (one value or colour per cell, shared contrast limits). It holds no
model logic, imports neither Qt nor napari, and calls only the public API
(:class:`~napari_causcell.CausCell`, :mod:`napari_causcell.tl`, :mod:`napari_causcell.data`).

Threading: the heavy calls (:meth:`CausCellSession.train_iter`,
:meth:`CausCellSession.compute_intervention`, :meth:`CausCellSession.derive_domains`) may run on
a worker thread; listeners registered with :meth:`CausCellSession.subscribe` are called on the
thread that made the change, so a GUI must marshal them to its own thread.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import tl
from ._model import CausCell, TrainProgress
from .data import (
    ConceptError,
    DataError,
    coordinates,
    expression,
    is_spatialdata,
    resolve_table,
    table_attrs,
    validate_dag,
)

__all__ = [
    "CausCellSession", "Intervention", "Overlay", "Selection", "SELECTION_MODES", "VIEWS",
    "COLOR_BY", "MODEL_SIZES", "label_palette", "to_rgba",
]

#: How cells can be chosen (see :meth:`CausCellSession.select`).
SELECTION_MODES = ("all", "cell_type", "domain", "label", "mask", "indices", "polygon")
#: What an expression overlay shows.
VIEWS = ("factual", "counterfactual", "difference")
#: What the cells can be coloured by.
COLOR_BY = ("expression", "concept", "predicted", "magnitude")

#: Model sizes the front ends offer (architecture keyword arguments of CausCell).
MODEL_SIZES = {
    "default": {},
    "small (fast)": {"token_dim": 16, "hidden": 128, "width": 64, "depth": 1},
    "tiny (tests, demos)": {"token_dim": 8, "hidden": 64, "width": 32, "depth": 1},
}

_GUESSES = {
    "cell_type": ("cell_type", "celltype", "cell type", "cell_types", "cluster", "clusters",
                  "leiden", "louvain", "annotation", "class"),
    "domain": ("domain", "spatial_domain", "causcell_domain", "domains", "niche", "layer",
               "region_annotation", "tissue_region", "locus"),
    "time": ("age", "time", "timepoint", "time_point", "day", "days", "stage", "week", "month"),
}
# sample-level columns that nothing among the concepts can cause (exogenous by default)
_BATCH_WORDS = ("batch", "slice", "sample", "donor", "mouse", "section", "replicate", "sex")
_NAN_RGBA = np.array([0.45, 0.45, 0.45, 1.0])


@dataclass
class Selection:
    """A set of cells of the session's table and how the user described it."""

    mask: np.ndarray
    description: str

    @property
    def n_cells(self) -> int:
        return int(self.mask.sum())


@dataclass
class Intervention:
    """One counterfactual kept in the session (and written into the data as ``key``)."""

    name: str
    key: str
    do: dict[str, str]
    selection: Selection
    table: Any  # the counterfactual AnnData returned by tl.counterfactual
    rows: np.ndarray  # table rows (positions in the session's table) of the intervened cells
    delta: np.ndarray  # (len(rows), n_genes) paired change, averaged over samples
    genes: list[str]
    params: dict[str, Any] = field(default_factory=dict)

    def gene_delta(self, gene: str) -> np.ndarray:
        return self.delta[:, self.genes.index(gene)]


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

    def rgba(self, i: int = 0) -> np.ndarray:
        """RGBA colours (``n_cells, 4``) of panel ``i``."""
        if self.kind == "categorical":
            grey = _NAN_RGBA
            return np.array([self.palette.get(str(v), grey) for v in self.values[i]], float)
        return to_rgba(self.values[i], self.cmap, self.limits)


def to_rgba(values: np.ndarray, cmap: str, limits: tuple[float, float]) -> np.ndarray:
    """Map numbers to RGBA with a matplotlib colormap and fixed limits (NaN -> grey)."""
    import matplotlib

    values = np.asarray(values, dtype=float)
    lo, hi = limits
    scaled = (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)
    out = matplotlib.colormaps[cmap](np.clip(scaled, 0.0, 1.0))
    out[~np.isfinite(values)] = _NAN_RGBA
    return out


def label_palette(labels: Sequence[str]) -> dict[str, np.ndarray]:
    """A fixed colour per label (tab10 / tab20 / a sampled rainbow beyond 20 labels)."""
    import matplotlib

    labels = [str(lab) for lab in labels]
    n = len(labels)
    if n <= 10:
        colors = matplotlib.colormaps["tab10"](np.arange(n))
    elif n <= 20:
        colors = matplotlib.colormaps["tab20"](np.arange(n))
    else:
        colors = matplotlib.colormaps["gist_rainbow"](np.linspace(0, 1, n))
    return {lab: np.asarray(c, float) for lab, c in zip(labels, colors)}


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")


class CausCellSession:
    """State of one dataset in a front end: data, model, selections and interventions.

    Parameters
    ----------
    data
        A SpatialData (with a table) or an AnnData.
    table_key
        Table of the SpatialData (default: ``"table"`` or its only table).
    """

    def __init__(self, data: Any, table_key: str | None = None) -> None:
        self.data = data
        self.adata, self.table_key = resolve_table(data, table_key)
        self.model: CausCell | None = None
        self.interventions: dict[str, Intervention] = {}
        self._coords: np.ndarray | None = None
        self._factual: Any = None
        self._factual_genes: list[str] | None = None
        self._predicted: pd.DataFrame | None = None
        self._listeners: list[Callable[[str], Any]] = []

    # -- construction from front-end metadata ---------------------------------------------
    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> CausCellSession:
        """Session for a layer carrying data the way napari-spatialdata does.

        Uses ``metadata['sdata']`` (with the table that is ``metadata['adata']``, if any) or
        else ``metadata['adata']``.
        """
        data, key = data_from_metadata(metadata)
        return cls(data, key)

    # -- listeners -------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(what)`` after a change; ``what`` is ``"model"``, ``"obs"``,
        ``"interventions"`` or ``"training"``."""
        if callback not in self._listeners:
            self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[str], Any]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def notify(self, what: str) -> None:
        for cb in list(self._listeners):
            cb(what)

    # -- the table ---------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return int(self.adata.n_obs)

    @property
    def coords(self) -> np.ndarray:
        """Tissue coordinates ``(n_cells, 2)`` as ``(x, y)``."""
        if self._coords is None:
            self._coords = coordinates(self.data, self.table_key)
        return self._coords

    @property
    def attrs(self) -> dict:
        """``region``, ``region_key``, ``instance_key`` of a SpatialData table (or empty)."""
        return table_attrs(self.adata)

    def categorical_columns(self, max_categories: int = 60) -> list[str]:
        """``obs`` columns usable as concepts or labels (2..max_categories distinct values)."""
        out = []
        skip = {self.attrs.get("instance_key"), self.attrs.get("region_key"), "source_id"}
        for col in self.adata.obs.columns:
            if col in skip:
                continue
            s = self.adata.obs[col]
            if pd.api.types.is_float_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype):
                continue
            n = s.nunique(dropna=True)
            if 2 <= n <= max_categories:
                out.append(str(col))
        return out

    def labels(self, column: str) -> list[str]:
        """The labels of an ``obs`` column (category order when categorical)."""
        if column not in self.adata.obs:
            raise DataError(f"Column {column!r} is not in obs.")
        s = self.adata.obs[column]
        if isinstance(s.dtype, pd.CategoricalDtype):
            present = set(s.astype(str).unique())
            return [str(c) for c in s.cat.categories if str(c) in present]
        return sorted(map(str, s.dropna().unique()))

    def guess_column(self, kind: str) -> str | None:
        """Likely column for ``kind`` in ``{"cell_type", "domain", "time"}`` (or ``None``)."""
        cols = self.categorical_columns()
        lower = {c.lower(): c for c in cols}
        for name in _GUESSES[kind]:
            if name in lower:
                return lower[name]
        for c in cols:
            if any(name in c.lower() for name in _GUESSES[kind]):
                return c
        return None

    def default_concepts(self) -> list[str]:
        """Time, domain and cell-type columns when they can be guessed."""
        found = [self.guess_column(k) for k in ("time", "domain", "cell_type")]
        return list(dict.fromkeys(c for c in found if c))

    def table_keys(self) -> list[str]:
        """Tables of the SpatialData that are not CausCell results (``[]`` for an AnnData)."""
        if not is_spatialdata(self.data):
            return []
        return [k for k, t in self.data.tables.items()
                if not (isinstance(t.uns.get("causcell"), Mapping) and "do" in t.uns["causcell"])]

    # -- DAG and model -------------------------------------------------------------------------
    @staticmethod
    def edges_from_parents(parents: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
        """``{child: [parents]}`` -> ``[(parent, child), ...]``."""
        return [(str(p), str(c)) for c, ps in parents.items() for p in ps]

    @staticmethod
    def check_dag(concepts: Sequence[str], edges: Any) -> list[tuple[str, str]]:
        """Validated edges; raises :class:`~napari_causcell.DAGError` on a cycle."""
        return validate_dag(list(concepts), edges)

    def build_model(
        self, concepts: Sequence[str], dag: Any = None, *, seed: int = 0,
        device: str | None = None, **kwargs: Any,
    ) -> CausCell:
        """Create an untrained model on the session's table (replaces the current one)."""
        if not concepts:
            raise DataError("Choose at least one concept column.")
        edges = self.check_dag(concepts, dag)
        model = CausCell(self.data, list(concepts), edges, table_key=self.table_key, seed=seed,
                         device=device, **kwargs)
        self.set_model(model)
        return model

    def set_model(self, model: CausCell) -> None:
        self.model = model
        self._factual, self._factual_genes, self._predicted = None, None, None
        self.notify("model")

    def require_model(self, trained: bool = True) -> CausCell:
        if self.model is None:
            raise DataError("No model yet: train one (or load a saved one) first.")
        if trained and not self.model.is_trained:
            raise DataError("The model is not trained yet: train it (or load a trained one).")
        return self.model

    def train_iter(self, max_epochs: int, **train_kwargs: Any) -> Iterator[TrainProgress]:
        """Train the current model, yielding a :class:`TrainProgress` after every epoch.

        Training runs on its own thread; stopping iteration early (or
        :meth:`request_stop`) stops it and keeps the best weights. The generator's return
        value is the history.
        """
        model = self.require_model(trained=False)
        events: queue.Queue = queue.Queue()
        result: dict[str, Any] = {}
        callbacks = list(train_kwargs.pop("callbacks", None) or [])

        def run() -> None:
            try:
                result["history"] = model.train(
                    max_epochs, callbacks=[lambda p: events.put(p), *callbacks], **train_kwargs
                )
            except BaseException as err:  # noqa: BLE001 - re-raised on the caller's thread
                result["error"] = err
            finally:
                events.put(None)

        thread = threading.Thread(target=run, name="causcell-train", daemon=True)
        thread.start()
        try:
            while (item := events.get()) is not None:
                yield item
        finally:
            if thread.is_alive():
                model.request_stop()
                thread.join()
        self._predicted = None
        if "error" in result:
            raise result["error"]
        return result["history"]

    def train(self, max_epochs: int, **train_kwargs: Any) -> list[dict[str, float]]:
        """Train in the calling thread (no per-epoch yield)."""
        model = self.require_model(trained=False)
        history = model.train(max_epochs, **train_kwargs)
        self._predicted = None
        return history

    def request_stop(self) -> None:
        """Ask a running training to stop after the current step (thread-safe)."""
        if self.model is not None:
            self.model.request_stop()

    def save_model(self, path: str | Path, overwrite: bool = True) -> Path:
        return self.require_model(trained=False).save(path, overwrite=overwrite)

    def load_model(self, path: str | Path, device: str | None = None) -> CausCell:
        model = CausCell.load(path, device=device, data=self.data)
        self.set_model(model)
        return model

    # -- causal graph assistant ------------------------------------------------------------------
    def suggest_dag(self, concepts: Sequence[str], **kwargs: Any) -> tl.DagSuggestion:
        """Propose the DAG between ``concepts`` (:func:`napari_causcell.tl.suggest_dag`).

        ``tiers`` defaults to ``"auto"``: time-like and batch-like concepts (age, time, slice,
        batch, sample, mouse, ...) first (exogenous), then a domain-like concept, then the rest
        (see :meth:`auto_tiers`; ``tiers=None`` uses no tiers). The result's
        :meth:`~napari_causcell.tl.DagSuggestion.summary` and ``priors`` say what was used;
        :meth:`suggestion_ticks` turns it into parent ticks. Safe on a worker thread.
        """
        tiers = kwargs.pop("tiers", "auto")
        if isinstance(tiers, str) and tiers == "auto":
            tiers = self.auto_tiers(concepts) or None
        return tl.suggest_dag(self.data, list(concepts), table_key=self.table_key, tiers=tiers,
                              **kwargs)

    def auto_tiers(self, concepts: Sequence[str]) -> list[list[str]]:
        """Default tiers from column names: ``[[time/batch...], [domain], rest]``.

        Concepts matching neither stay in the last tier; returns ``[]`` when nothing matches
        (no tier prior).
        """
        def matches(name: str, words: Sequence[str]) -> bool:
            tokens = re.split(r"[^a-z0-9]+", name.lower())
            return name.lower() in words or any(t in words for t in tokens)

        first = [c for c in concepts if matches(c, _GUESSES["time"] + _BATCH_WORDS)]
        domain = self.guess_column("domain")
        second = [c for c in concepts if c not in first
                  and (c == domain or matches(c, _GUESSES["domain"]))]
        if not first and not second:
            return []
        return [t for t in (first, second) if t]

    @staticmethod
    def suggestion_ticks(
        suggestion: tl.DagSuggestion,
    ) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
        """``({child: [parents]}, undirected)`` for a parent-tick grid.

        Oriented edges (by the tests, the priors or the user) become ticks; undirected edges
        are returned separately as ``(a, b)`` pairs for the user to decide (neither direction
        is ticked).
        """
        return suggestion.parents(), suggestion.undirected

    @staticmethod
    def undirected_pending(
        undirected: Iterable[tuple[str, str]], parents: Mapping[str, Sequence[str]],
    ) -> list[tuple[str, str]]:
        """Undirected edges ``(a, b)`` between chosen concepts (keys of ``parents``) for which
        neither direction is ticked yet."""
        return [(a, b) for a, b in undirected
                if a in parents and b in parents
                and a not in parents[b] and b not in parents[a]]

    def derive_domains(
        self, n_domains: int = 6, cluster_key: str | None = None, key_added: str | None = None,
        seed: int = 0,
    ) -> str:
        """Spatial domains from neighbourhood composition (``tl.spatial_domains``).

        Writes ``obs[key_added]`` (default ``"domain"``, or ``"causcell_domain"`` when a
        ``domain`` column already exists) and returns the column name.
        """
        cluster_key = cluster_key or self.guess_column("cell_type")
        if cluster_key is None:
            raise DataError("Choose the cell-type column the domains are built from.")
        if key_added is None:
            key_added = "causcell_domain" if "domain" in self.adata.obs else "domain"
        tl.spatial_domains(self.data, n_domains, cluster_key=cluster_key, key_added=key_added,
                           table_key=self.table_key, seed=seed)
        return key_added

    # -- which cells -----------------------------------------------------------------------
    def select(
        self, mode: str = "all", value: Any = None, *, column: str | None = None,
        polygons: Any = None,
    ) -> Selection:
        """Cells chosen by ``mode``.

        ``"all"``; ``"cell_type"`` / ``"domain"`` / ``"label"``: cells whose ``column``
        (guessed for the first two) equals ``value``; ``"mask"``: ``value`` is a boolean mask;
        ``"indices"``: ``value`` are table row positions (e.g. the selected points);
        ``"polygon"``: cells inside any of ``polygons`` (each ``(k, 2)`` in tissue ``(x, y)``).
        Raises :class:`~napari_causcell.DataError` when no cell is chosen.
        """
        if mode not in SELECTION_MODES:
            raise ValueError(f"mode must be one of {SELECTION_MODES}, got {mode!r}")
        if mode == "all":
            return Selection(tl.select_cells(self.adata, None), "all cells")
        if mode in ("cell_type", "domain", "label"):
            column = column or (self.guess_column(mode) if mode != "label" else None)
            if column is None:
                raise DataError(f"No {mode.replace('_', ' ')} column: choose one.")
            if value is None or value == "":
                raise DataError(f"Choose a label of {column!r}.")
            mask = tl.select_cells(self.adata, {column: str(value)})
            return Selection(mask, f"{column}={value}")
        if mode == "mask":
            if value is None:
                raise DataError("The cell selection is empty: no cell matches.")
            return Selection(tl.select_cells(self.adata, np.asarray(value, bool)), "masked cells")
        if mode == "indices":
            idx = np.asarray(sorted({int(i) for i in (value if value is not None else [])}))
            if idx.size == 0:
                raise DataError("The cell selection is empty: select some points first.")
            mask = tl.select_cells(self.adata, idx.astype(np.int64))
            return Selection(mask, f"{int(mask.sum())} selected cells")
        polys = _as_polygons(polygons)
        if not polys:
            raise DataError("The cell selection is empty: draw a shape around cells first.")
        mask = self.cells_in_polygons(polys)
        if not mask.any():
            raise DataError("The cell selection is empty: no cell lies inside the drawn shape.")
        n = len(polys)
        return Selection(mask, f"{int(mask.sum())} cells in {n} drawn shape{'s' * (n > 1)}")

    def cells_in_polygons(self, polygons: Any) -> np.ndarray:
        """Boolean mask of cells inside any polygon (tissue ``(x, y)`` vertices)."""
        from matplotlib.path import Path as MplPath

        mask = np.zeros(self.n_cells, dtype=bool)
        for poly in _as_polygons(polygons):
            if len(poly) >= 3:
                mask |= MplPath(poly).contains_points(self.coords)
        return mask

    def nearest_cell(self, xy: Sequence[float]) -> int:
        """Row of the cell closest to tissue position ``(x, y)``."""
        d = np.sum((self.coords - np.asarray(xy, float)[None, :2]) ** 2, axis=1)
        return int(np.argmin(d))

    def label_at(self, xy: Sequence[float], column: str) -> str:
        """Label of ``column`` of the cell under (closest to) ``(x, y)``."""
        return str(self.adata.obs[column].iloc[self.nearest_cell(xy)])

    def majority_label(self, polygons: Any, column: str) -> str:
        """Most frequent label of ``column`` among the cells inside the polygons."""
        mask = self.cells_in_polygons(polygons)
        if not mask.any():
            raise DataError("No cell lies inside the drawn shape.")
        return str(self.adata.obs[column][mask].astype(str).value_counts().idxmax())

    # -- interventions -----------------------------------------------------------------------
    @staticmethod
    def intervention_name(do: Mapping[str, Any], selection: Selection | None = None) -> str:
        """Display name, e.g. ``do(age=90wk) on cell_type=Astro``."""
        text = "do(" + ", ".join(f"{k}={v}" for k, v in do.items()) + ")"
        if selection is not None and selection.description != "all cells":
            text += f" on {selection.description}"
        return text

    def intervention_key(self, do: Mapping[str, Any], selection: Selection | None = None) -> str:
        """A new table key: ``causcell_<concept>_<value>[_<cells>]``, made unique."""
        base = "causcell_" + _slug("_".join(f"{k}_{v}" for k, v in do.items()))
        if selection is not None and selection.description != "all cells":
            base += "_" + _slug(selection.description)[:40]
        taken = set(self.interventions) | {iv.key for iv in self.interventions.values()}
        if is_spatialdata(self.data):
            taken |= set(self.data.tables.keys())
        else:
            taken |= set(self.adata.uns.get("causcell", {}) or {})
        key, i = base, 2
        while key in taken:
            key, i = f"{base}_{i}", i + 1
        return key

    def compute_intervention(
        self, do: Mapping[str, Any], selection: Selection, *, name: str | None = None,
        key: str | None = None, **kwargs: Any,
    ) -> Intervention:
        """Run ``tl.counterfactual`` (written into the data) and package the result.

        Safe on a worker thread; call :meth:`add_intervention` on the front end's thread to
        keep it. ``kwargs`` go to :meth:`CausCell.counterfactual` (``sampler``, ``steps``,
        ``seed``, ``donor``, ``hard``, ``n_samples``).
        """
        model = self.require_model()
        do = {str(k): str(v) for k, v in do.items()}
        try:  # the model's own check; front ends catch DataError
            for concept, value in do.items():
                model.concept_space.code(concept, value)
        except ConceptError as err:
            raise DataError(str(err)) from err
        key = key or self.intervention_key(do, selection)
        name = name or self.intervention_name(do, selection)
        cf = tl.counterfactual(self.data, model, do, cells=selection.mask,
                               table_key=self.table_key, key_added=key, **kwargs)
        genes = [str(g) for g in cf.var_names]
        src = pd.Index(self.adata.obs_names).get_indexer(cf.obs["source_id"].astype(str))
        delta = pd.DataFrame(np.asarray(cf.layers["delta"]), columns=genes)
        delta["__row"] = src
        mean = delta.groupby("__row", sort=True).mean()
        return Intervention(
            name=name, key=key, do=do, selection=selection, table=cf,
            rows=mean.index.to_numpy(), delta=mean.to_numpy(dtype=np.float32), genes=genes,
            params=dict(kwargs),
        )

    def add_intervention(self, intervention: Intervention) -> Intervention:
        self.interventions[intervention.name] = intervention
        self.notify("interventions")
        return intervention

    def intervene(self, do: Mapping[str, Any], selection: Selection | None = None,
                  **kwargs: Any) -> Intervention:
        """:meth:`compute_intervention` then :meth:`add_intervention`."""
        selection = selection or self.select("all")
        return self.add_intervention(self.compute_intervention(do, selection, **kwargs))

    def get_intervention(self, name: str | Intervention | None) -> Intervention | None:
        if name is None or isinstance(name, Intervention):
            return name
        if name not in self.interventions:
            raise DataError(f"No intervention named {name!r}; have {list(self.interventions)}.")
        return self.interventions[name]

    # -- trends along time (brain-aging workflow, docs/brain_aging.md) -------------------------
    def age_trends(
        self, source: str, targets: Sequence[str] | str | None = None,
        groupby: Sequence[str] | str | None = None, *, concept: str | None = None,
        **kwargs: Any,
    ) -> pd.DataFrame:
        """Expression trends along the time concept from counterfactuals (``tl.age_trends``).

        ``concept`` defaults to the guessed time column, ``groupby`` to the guessed cell-type
        and domain columns; ``kwargs`` go to :func:`napari_causcell.tl.age_trends` (``genes``,
        ``test``, ``min_effect``, ``steps``, ``seed``, ``progress``, ...). Safe on a worker
        thread. Writes what ``tl.age_trends`` writes (``uns['causcell_trends']`` and one
        counterfactual per target). Raises :class:`~napari_causcell.DataError` on bad choices.
        """
        model = self.require_model()
        concept = concept or self.guess_column("time")
        if concept is None or concept not in model.concepts:
            raise DataError(f"Choose the time concept (one of {model.concepts}).")
        if groupby is None:
            found = [self.guess_column("cell_type"), self.guess_column("domain")]
            groupby = [c for c in dict.fromkeys(found) if c and c != concept]
        try:
            return tl.age_trends(model, self.data, concept=concept, source=str(source),
                                 targets=targets, groupby=groupby, table_key=self.table_key,
                                 **kwargs)
        except ConceptError as err:
            raise DataError(str(err)) from err

    #: Columns of an age-trends table that are not group columns.
    TREND_FIELDS = frozenset({"method", "target", "gene", "n_source", "n_target",
                              "n_donors_source", "n_donors_target", "n_models", "mean_source",
                              "mean_target", "mean_change", "se", "ci_low", "ci_high", "df",
                              "statistic", "pvalue", "padj", "direction", "significant", "unit",
                              "one_donor"})

    @classmethod
    def top_trends(cls, trends: pd.DataFrame, n: int = 30) -> pd.DataFrame:
        """The ``n`` largest significant changes of an age-trends table (the largest changes
        when none is significant), as ``target``, ``group``, ``gene``, ``mean_change``,
        ``ci_low``, ``ci_high``, ``padj``, ``unit`` and ``one_donor`` rows (the interval,
        replication and one-donor columns when the table has them); ``group`` joins the group
        columns (``"Oligo | Striatum"``)."""
        groups = [c for c in trends.columns if c not in cls.TREND_FIELDS]
        sig = trends[trends["significant"]]
        pool = sig if len(sig) else trends
        top = pool.reindex(pool["mean_change"].abs().sort_values(ascending=False).index).head(n)
        group = (top[groups].astype(str).agg(" | ".join, axis=1) if groups
                 else pd.Series("all", index=top.index))
        out = pd.DataFrame({"target": top["target"].astype(str), "group": group,
                            "gene": top["gene"].astype(str), "mean_change": top["mean_change"]})
        for col in ("ci_low", "ci_high"):
            if col in top:
                out[col] = top[col]
        out["padj"] = top["padj"]
        for col in ("unit", "one_donor"):
            if col in top:
                out[col] = top[col]
        return out.reset_index(drop=True)

    @staticmethod
    def trends_message(trends: pd.DataFrame, key: str = "causcell_trends") -> str:
        """One line on an age-trends result for a status bar."""
        n_sig = int(trends["significant"].sum())
        msg = (f"Trends: {n_sig} significant of {len(trends)} tests (|change| >= min_effect "
               f"and BH padj < alpha); stored in uns[{key!r}].")
        if "one_donor" in trends and trends["one_donor"].any():
            msg += (f" {int(trends['one_donor'].sum())} rest on one donor per age (mouse and "
                    "age confounded): read them as effect sizes.")
        return msg

    @staticmethod
    def suggestion_message(suggestion: tl.DagSuggestion) -> str:
        """One line on a suggested graph: edges, test, priors, and what is left to decide."""
        tiers = suggestion.priors.get("tiers") or {}
        order = " < ".join(
            ", ".join(c for c, t in tiers.items() if t == k) for k in sorted(set(tiers.values())))
        prior = f"; tiers {order}" if order else "; no priors"
        done = ("the graph is complete" if not suggestion.undirected
                else "decide the marked edges")
        return (f"Suggested {len(suggestion.edges)} edge(s) ({suggestion.method.upper()}, "
                f"alpha {suggestion.alpha}{prior}); {done}.")

    # -- values per cell -----------------------------------------------------------------------
    @property
    def genes(self) -> list[str]:
        """Genes that can be shown (the model's genes, or the table's without a model)."""
        if self.model is not None:
            return list(self.model.genes)
        return [str(g) for g in self.adata.var_names]

    def _factual_matrix(self):
        genes = self.genes
        if self._factual is None or self._factual_genes != genes:
            m = self.model
            try:
                if m is not None:
                    x = expression(self.adata, genes, m.layer, m.log_normalized)
                else:
                    x = expression(self.adata, genes)
            except DataError:  # not counts: show the stored values as they are
                from scipy import sparse

                x = sparse.csr_matrix(self.adata[:, genes].X, dtype=np.float32)
            self._factual, self._factual_genes = x.tocsc(), genes
        return self._factual

    def factual_expression(self, gene: str) -> np.ndarray:
        """Log-normalised observed expression of ``gene`` for every cell."""
        genes = self.genes
        if gene not in genes:
            raise DataError(f"Gene {gene!r} is not among the model's {len(genes)} genes.")
        col = self._factual_matrix()[:, genes.index(gene)]
        return np.asarray(col.toarray()).ravel().astype(float)

    def gene_values(self, gene: str, view: str = "factual",
                    intervention: str | Intervention | None = None) -> np.ndarray:
        """One value per cell of the table.

        ``factual``: observed log-normalised expression. ``counterfactual``: observed plus the
        intervention's paired change (``layers['delta']``) on the intervened cells (floored at
        0), observed elsewhere. ``difference``: the paired change on the intervened cells, 0
        elsewhere.
        """
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        iv = self.get_intervention(intervention)
        fact = self.factual_expression(gene)
        if view == "factual":
            return fact
        if iv is None:
            raise DataError(f"The {view} view needs an intervention: run one first.")
        out = fact.copy() if view == "counterfactual" else np.zeros_like(fact)
        d = iv.gene_delta(gene).astype(float)
        if view == "counterfactual":
            out[iv.rows] = np.maximum(fact[iv.rows] + d, 0.0)
        else:
            out[iv.rows] = d
        return out

    def magnitude(self, intervention: str | Intervention) -> np.ndarray:
        """Per-cell root-mean-square change over genes (0 for cells not intervened on)."""
        iv = self.get_intervention(intervention)
        out = np.zeros(self.n_cells)
        out[iv.rows] = np.sqrt(np.mean(iv.delta.astype(float) ** 2, axis=1))
        return out

    def concept_labels(self, column: str,
                       intervention: str | Intervention | None = None) -> np.ndarray:
        """Labels of ``column``; with an intervention, its target on the intervened cells."""
        out = self.adata.obs[column].astype(str).to_numpy().astype(object)
        iv = self.get_intervention(intervention)
        if iv is not None and column in iv.do:
            out[iv.rows] = iv.do[column]
        return out

    def predicted_labels(self, concept: str,
                         intervention: str | Intervention | None = None) -> np.ndarray:
        """Model-predicted labels of ``concept`` (from the counterfactual on intervened cells)."""
        model = self.require_model()
        if concept not in model.concepts:
            raise DataError(f"{concept!r} is not a concept of the model.")
        if self._predicted is None:
            self._predicted = model.predict_concepts(self.adata)
        out = self._predicted[concept].astype(str).to_numpy().astype(object)
        iv = self.get_intervention(intervention)
        col = f"{concept}_predicted"
        if iv is not None and col in iv.table.obs:
            first = ~pd.Index(iv.table.obs["source_id"].astype(str)).duplicated()
            src = pd.Index(self.adata.obs_names).get_indexer(
                iv.table.obs["source_id"].astype(str)[first])
            out[src] = iv.table.obs[col].astype(str).to_numpy()[first]
        return out

    def overlay(
        self, color_by: str = "expression", *, gene: str | None = None, view: str = "factual",
        interventions: Sequence[str | Intervention | None] = (None,), concept: str | None = None,
        robust: bool = True,
    ) -> Overlay:
        """Values and shared colour settings for one or more panels.

        One panel per entry of ``interventions`` (``None`` = no intervention, e.g. the
        factual view). Expression panels share their contrast limits: the factual and
        counterfactual views use one range (1st-99th percentile with ``robust``) over the
        factual values and every panel; the difference view is symmetric around 0 with a
        diverging colormap. In the difference and magnitude views, cells that were not
        intervened on are NaN (drawn grey).
        """
        if color_by not in COLOR_BY:
            raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}")
        ivs = [self.get_intervention(i) for i in interventions] or [None]
        titles = [iv.name if iv is not None else "factual" for iv in ivs]
        if color_by in ("concept", "predicted"):
            if concept is None:
                raise DataError("Choose the concept to colour by.")
            fn = self.concept_labels if color_by == "concept" else self.predicted_labels
            values = [fn(concept, iv) for iv in ivs]
            cats = (self.model.concept_space.categories[concept]
                    if self.model is not None and concept in self.model.concepts
                    else self.labels(concept))
            extra = sorted(set().union(*map(set, values)) - set(map(str, cats)))
            palette = label_palette([*map(str, cats), *extra])
            what = "predicted " if color_by == "predicted" else ""
            return Overlay(values, titles, "categorical", label=f"{what}{concept}",
                           palette=palette)
        if color_by == "magnitude":
            if any(iv is None for iv in ivs):
                raise DataError("The magnitude of change needs an intervention: run one first.")
            values = [_only_on(self.magnitude(iv), iv) for iv in ivs]
            hi = max(float(np.nanmax(v)) for v in values) or 1.0
            return Overlay(values, titles, "continuous", "magma", (0.0, hi),
                           "RMS change over genes (log-expression); grey: not intervened on")
        if gene is None:
            raise DataError("Choose a gene.")
        ivs_eff = [None] * len(ivs) if view == "factual" else ivs
        if view == "difference" and any(iv is None for iv in ivs_eff):
            raise DataError("The difference view needs an intervention in every panel.")
        values = [self.gene_values(gene, view if iv is not None else "factual", iv)
                  for iv in ivs_eff]
        titles = [iv.name if iv is not None else "factual" for iv in ivs_eff]
        if view == "difference":
            changed = np.concatenate([v[iv.rows] for v, iv in zip(values, ivs_eff)])
            ref = np.abs(changed)
            m = float(np.percentile(ref, 99) if robust and ref.size else ref.max(initial=0))
            m = m if m > 0 else float(ref.max(initial=0)) or 1e-3
            values = [_only_on(v, iv) for v, iv in zip(values, ivs_eff)]
            return Overlay(values, titles, "continuous", "RdBu_r", (-m, m),
                           f"{gene}: change (counterfactual - factual), log-expression; "
                           "grey: not intervened on")
        # the chosen interventions' counterfactuals count in the factual view too, so that
        # switching between factual and counterfactual keeps the colour scale
        limits = self.shared_limits(gene, ivs, robust=robust)
        return Overlay(values, titles, "continuous", "viridis", limits,
                       f"{gene}: {view} log-expression")

    def shared_limits(self, gene: str, interventions: Sequence[str | Intervention | None] = (),
                      robust: bool = True) -> tuple[float, float]:
        """One contrast range for the factual and every counterfactual of ``gene``."""
        parts = [self.factual_expression(gene)]
        for iv in interventions:
            if iv is not None:
                parts.append(self.gene_values(gene, "counterfactual", iv))
        v = np.concatenate(parts)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return (0.0, 1.0)
        lo, hi = (np.percentile(v, [1, 99]) if robust else (v.min(), v.max()))
        lo, hi = float(min(lo, 0.0)), float(hi)
        if hi <= lo:
            hi = lo + (float(v.max()) - lo or 1.0)
        return (lo, hi)

    def top_genes(self, intervention: str | Intervention, n: int = 20,
                  selection: Selection | None = None) -> pd.DataFrame:
        """Top changed genes of an intervention (``tl.top_changed_genes``), optionally only
        over the intervened cells that are also in ``selection``."""
        iv = self.get_intervention(intervention)
        cells = None
        if selection is not None:
            src = pd.Index(self.adata.obs_names).get_indexer(
                iv.table.obs["source_id"].astype(str))
            cells = selection.mask[src]
        return tl.top_changed_genes(iv.table, n=n, cells=cells)


def _only_on(values: np.ndarray, iv: Intervention) -> np.ndarray:
    """``values`` on the intervened cells, NaN (drawn grey) elsewhere."""
    out = np.full(values.shape, np.nan)
    out[iv.rows] = values[iv.rows]
    return out


def _as_polygons(polygons: Any) -> list[np.ndarray]:
    if polygons is None:
        return []
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2:
        return [polygons[:, :2].astype(float)]
    return [np.asarray(p, float)[:, :2] for p in polygons if len(p)]


def data_from_metadata(metadata: Mapping[str, Any]) -> tuple[Any, str | None]:
    """``(data, table_key)`` from layer metadata in the napari-spatialdata convention."""
    sdata, adata = metadata.get("sdata"), metadata.get("adata")
    if sdata is not None and is_spatialdata(sdata):
        key = None
        if adata is not None:
            key = next((k for k, t in sdata.tables.items() if t is adata), None)
        if key is None:
            names = [n for n in (metadata.get("table_names") or []) if n in sdata.tables]
            key = names[0] if len(names) == 1 else None
        if key is None:
            try:
                resolve_table(sdata)
            except DataError:
                if adata is not None:  # a table napari-spatialdata made from the data: use it
                    return adata, None
                raise
        return sdata, key
    if adata is not None:
        return adata, None
    raise DataError("This layer carries no SpatialData or AnnData (metadata 'sdata'/'adata').")


__all__ += ["data_from_metadata"]
