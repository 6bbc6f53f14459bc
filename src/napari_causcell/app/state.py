"""The application state of one dataset: data, table, model and kept interventions.

:class:`AppState` declares its events with ``psygnal`` (as napari-spatialdata's ``DataModel``
does), which needs neither Qt nor ipywidgets. Events are emitted on the thread that made the
change; a GUI marshals them to its own thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from psygnal import Signal, SignalGroup

from .._keys import Key
from ..data import coordinates, expression, is_spatialdata, resolve_table, table_attrs
from ..data.sections import laid_out, section_boxes, section_key, section_titles
from ..errors import DataError

if TYPE_CHECKING:
    from .._model import CausCell
    from .intervene import Intervention

__all__ = ["AppEvents", "AppState", "data_from_metadata"]

_GUESSES = {
    "cell_type": ("cell_type", "celltype", "cell type", "cell_types", "cluster", "clusters",
                  "leiden", "louvain", "annotation", "class"),
    "domain": ("domain", "spatial_domain", "causcell_domain", "domains", "niche", "layer",
               "region_annotation", "tissue_region", "locus"),
    "time": ("age", "time", "timepoint", "time_point", "day", "days", "stage", "week", "month"),
}
_AUTO: Any = object()  # section key not looked for yet
#: sample-level column words: nothing among the concepts can cause them (exogenous)
BATCH_WORDS = ("batch", "slice", "sample", "donor", "mouse", "section", "replicate", "sex")


class AppEvents(SignalGroup):
    """What changed in an :class:`AppState`."""

    #: a model was built, set or loaded (the model, or ``None``)
    model = Signal(object)
    #: a training ended (the model)
    trained = Signal(object)
    #: an ``obs`` column was added or changed (its name)
    obs = Signal(str)
    #: an intervention was kept (the :class:`~napari_causcell.app.intervene.Intervention`)
    interventions = Signal(object)
    #: the section key changed, so did :attr:`AppState.coords` (the key, or ``None``)
    layout = Signal(object)


class AppState:
    """One dataset in a front end.

    Parameters
    ----------
    data
        A SpatialData (with a table) or an AnnData.
    table_key
        Table of the SpatialData (default: ``"table"`` or its only table).
    """

    def __init__(self, data: Any, table_key: str | None = None) -> None:
        self.events = AppEvents()
        self.data = data
        self.adata, self.table_key = resolve_table(data, table_key)
        self.model: CausCell | None = None
        self.interventions: dict[str, Intervention] = {}
        self._coords: np.ndarray | None = None
        self._section_key: str | None = _AUTO
        self._factual: Any = None
        self._factual_genes: list[str] | None = None
        self._predicted: pd.DataFrame | None = None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> AppState:
        """State for a layer carrying data the napari-spatialdata way (``sdata``/``adata``)."""
        data, key = data_from_metadata(metadata)
        return cls(data, key)

    # -- the table ---------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return int(self.adata.n_obs)

    @property
    def tissue_coords(self) -> np.ndarray:
        """The data's own coordinates ``(n_cells, 2)`` as ``(x, y)`` (sections may overlap)."""
        return coordinates(self.data, self.table_key)

    @property
    def coords(self) -> np.ndarray:
        """Display coordinates ``(n_cells, 2)`` as ``(x, y)``: the tissue coordinates with
        overlapping sections laid side by side (:attr:`section_key`). Every front end draws,
        picks and selects in this frame."""
        if self._coords is None:
            key = self.section_key
            xy = self.tissue_coords
            self._coords = xy if key is None else laid_out(xy, self.adata.obs[key])
        return self._coords

    # -- sections ------------------------------------------------------------------------------
    @property
    def section_key(self) -> str | None:
        """The ``obs`` column naming the tissue sections (found in the data unless set with
        :meth:`set_section_key`), or ``None``."""
        if self._section_key is _AUTO:
            self._section_key = section_key(self.adata, None, self.attrs.get("region_key"))
        return self._section_key

    def set_section_key(self, key: str | None) -> None:
        """Choose the section column (``None``: one section, nothing moved); redraws follow
        the ``layout`` event."""
        self._section_key = section_key(self.adata, key) if key else None
        self._coords = None
        self.events.layout.emit(self._section_key)

    def section_titles(self) -> dict[str, str]:
        """``{section: title}`` (with the section's age when a time column exists)."""
        key = self.section_key
        if key is None:
            return {}
        return section_titles(self.adata.obs, key, self.guess_column("time"))

    def section_boxes(self) -> dict[str, np.ndarray]:
        """``{section: [xmin, ymin, xmax, ymax]}`` in display coordinates
        (``{"": box of all cells}`` without sections)."""
        key = self.section_key
        if key is None:
            xy = self.coords
            return {"": np.r_[np.nanmin(xy, 0), np.nanmax(xy, 0)]}
        return section_boxes(self.coords, self.adata.obs[key])

    @property
    def attrs(self) -> dict:
        """``region``, ``region_key``, ``instance_key`` of a SpatialData table (or empty)."""
        return table_attrs(self.adata)

    @property
    def is_spatialdata(self) -> bool:
        return is_spatialdata(self.data)

    def categorical_columns(self, max_categories: int = 60) -> list[str]:
        """``obs`` columns usable as concepts or labels (2..max_categories distinct values)."""
        out = []
        skip = {self.attrs.get("instance_key"), self.attrs.get("region_key"),
                Key.obs.SOURCE_ID}
        for col in self.adata.obs.columns:
            s = self.adata.obs[col]
            if col in skip or (pd.api.types.is_float_dtype(s)
                               and not isinstance(s.dtype, pd.CategoricalDtype)):
                continue
            if 2 <= s.nunique(dropna=True) <= max_categories:
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
        return next((c for c in cols if any(n in c.lower() for n in _GUESSES[kind])), None)

    def default_concepts(self) -> list[str]:
        """Time, domain and cell-type columns when they can be guessed."""
        found = [self.guess_column(k) for k in ("time", "domain", "cell_type")]
        return list(dict.fromkeys(c for c in found if c))

    def concept_role(self, concept: str) -> str:
        """``"time / age"``, ``"locus (spatial domain)"`` or ``""`` for a hint beside a choice."""
        if concept == self.guess_column("time"):
            return "time / age"
        return "locus (spatial domain)" if concept == self.guess_column("domain") else ""

    def table_keys(self) -> list[str]:
        """Tables of the SpatialData that are not CausCell results (``[]`` for an AnnData)."""
        if not self.is_spatialdata:
            return []
        return [k for k, t in self.data.tables.items()
                if not (isinstance(t.uns.get(Key.uns.CAUSCELL), Mapping)
                        and "do" in t.uns[Key.uns.CAUSCELL])]

    def mark_obs_changed(self, column: str) -> None:
        """Tell listeners that ``obs[column]`` was written (e.g. derived domains)."""
        self.events.obs.emit(column)

    # -- the model ---------------------------------------------------------------------------
    def set_model(self, model: CausCell | None) -> None:
        self.model = model
        self._factual, self._factual_genes, self._predicted = None, None, None
        self.events.model.emit(model)

    def require_model(self, trained: bool = True) -> CausCell:
        if self.model is None:
            raise DataError("No model yet: train one (or load a saved one) first.")
        if trained and not self.model.is_trained:
            raise DataError("The model is not trained yet: train it (or load a trained one).")
        return self.model

    @property
    def ready(self) -> bool:
        """Whether a trained model is there (Intervene and Trends can run)."""
        return self.model is not None and self.model.is_trained

    def model_concepts(self, time_first: bool = False) -> list[str]:
        """The model's concepts (``[]`` without one); with ``time_first`` the guessed time and
        domain concepts lead, the interventions the tool is for."""
        concepts = list(self.model.concepts) if self.model is not None else []
        if not time_first:
            return concepts
        lead = [c for c in (self.guess_column("time"), self.guess_column("domain"))
                if c in concepts]
        return list(dict.fromkeys([*lead, *concepts]))

    def concept_labels_of_model(self, concept: str | None) -> list[str]:
        """The labels the model knows for ``concept`` (``[]`` without a model or concept)."""
        if self.model is None or not concept or concept not in self.model.concepts:
            return []
        return [str(c) for c in self.model.concept_space.categories[concept]]

    def trained(self) -> None:
        """Tell listeners that a training ended (cached predictions are dropped)."""
        self._predicted = None
        self.events.trained.emit(self.model)

    # -- expression ----------------------------------------------------------------------------
    @property
    def genes(self) -> list[str]:
        """Genes that can be shown (the model's genes, or the table's without a model)."""
        if self.model is not None:
            return list(self.model.genes)
        return [str(g) for g in self.adata.var_names]

    def factual_expression(self, gene: str) -> np.ndarray:
        """Log-normalised observed expression of ``gene`` for every cell."""
        genes = self.genes
        if gene not in genes:
            raise DataError(f"Gene {gene!r} is not among the model's {len(genes)} genes.")
        if self._factual is None or self._factual_genes != genes:
            self._factual, self._factual_genes = self._expression_matrix(genes), genes
        col = self._factual[:, genes.index(gene)]
        return np.asarray(col.toarray()).ravel().astype(float)

    def _expression_matrix(self, genes: list[str]) -> Any:
        m = self.model
        try:
            x = (expression(self.adata, genes, m.layer, m.log_normalized) if m is not None
                 else expression(self.adata, genes))
        except DataError:  # not counts: show the stored values as they are
            from scipy import sparse

            x = sparse.csr_matrix(self.adata[:, genes].X, dtype=np.float32)
        return x.tocsc()

    def predictions(self) -> pd.DataFrame:
        """The model's predicted concept labels of every cell (cached until retraining)."""
        if self._predicted is None:
            self._predicted = self.require_model().predict_concepts(self.adata)
        return self._predicted

    # -- interventions ---------------------------------------------------------------------------
    def add_intervention(self, intervention: Intervention) -> Intervention:
        self.interventions[intervention.name] = intervention
        self.events.interventions.emit(intervention)
        return intervention

    def get_intervention(self, name: Any) -> Intervention | None:
        """The kept intervention ``name`` (an Intervention passes through; ``None`` too)."""
        if name is None or not isinstance(name, str):
            return name
        if name not in self.interventions:
            raise DataError(f"No intervention named {name!r}; have {list(self.interventions)}.")
        return self.interventions[name]

    def taken_keys(self) -> set[str]:
        """Result keys in use: kept interventions, tables, ``uns['causcell']`` entries."""
        taken = set(self.interventions) | {iv.key for iv in self.interventions.values()}
        if self.is_spatialdata:
            return taken | set(self.data.tables.keys())
        return taken | set(self.adata.uns.get(Key.uns.CAUSCELL, {}) or {})

    def source_rows(self, table: Any) -> np.ndarray:
        """Row in this table of each cell of a counterfactual table (its ``source_id``)."""
        ids = table.obs[Key.obs.SOURCE_ID].astype(str)
        return pd.Index(self.adata.obs_names).get_indexer(ids)


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


def unique_key(base: str, taken: Sequence[str] | set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... the first not in ``taken``."""
    key, i = base, 2
    while key in taken:
        key, i = f"{base}_{i}", i + 1
    return key
