"""Defaults of the tools derived from the model and the data (never from the built-in
simulator's column names), and the one argument order ``(data, model)``.

- :func:`time_concept`: the model's *when* concept (``age``, ``time``, ``stage``...).
- :func:`youngest_label`: the first label of a concept (the smallest ``<number><unit>``, e.g.
  ``4wk`` of ``4wk, 24wk, 90wk``, else the first category).
- :func:`other_concepts`: the model's other concepts that are columns of the data.
- :func:`cluster_key`: the cell-type column of the data, for :func:`spatial_domains`.
- :func:`data_and_model`: ``(data, model)`` from either order, a :class:`DeprecationWarning`
  for ``(model, data)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .._utils import warn_user
from ..errors import SettingError
from ._suggest_roots import concept_kind

#: the old defaults of age_trends' ``groupby`` (the simulator's names): first when present
_GROUP_FIRST = ("cell_type", "domain")
#: whole words of a cell-type column name
CELL_TYPE_WORDS = ("cell_type", "celltype", "cell_types", "celltypes", "cell_class",
                   "cellclass", "cell_subclass", "subclass", "class", "annotation", "cluster",
                   "clusters", "leiden", "louvain", "cell_label", "major_type")
_AGE_LABEL = re.compile(r"^\s*(?:p|e)?(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
#: order of age words, youngest first
_AGE_WORDS = {"embryonic": 0, "neonatal": 1, "juvenile": 2, "young": 3, "adult": 4,
              "middle": 5, "middle_aged": 5, "old": 6, "aged": 6}


def is_model(obj: Any) -> bool:
    """A trained-model-like object (``concept_space`` and ``counterfactual``) or a non-empty
    list/tuple of them (an ensemble)."""
    if isinstance(obj, (list, tuple)):
        return bool(obj) and all(is_model(m) for m in obj)
    return hasattr(obj, "concept_space") and hasattr(obj, "counterfactual")


def data_and_model(first: Any, second: Any, func: str) -> tuple[Any, Any]:
    """``(data, model)`` from ``func(data, model)`` or the old ``func(model, data)``, told
    apart by type; the old order gives a :class:`DeprecationWarning`."""
    if is_model(first) and not is_model(second):
        warn_user(f"tl.{func}(model, data) is deprecated: pass the data first, "
                      f"tl.{func}(data, model), as tl.counterfactual(data, model).",
                      DeprecationWarning)
        return second, first
    return first, second


def time_concept(concepts: Sequence[str]) -> str:
    """The model's time-like concept: ``age`` when present, else the only *when* concept
    (by name, :func:`~napari_causcell.tl.where_when`); else a :class:`SettingError` listing
    the choices."""
    concepts = [str(c) for c in concepts]
    if "age" in concepts:
        return "age"
    when = [c for c in concepts if concept_kind(c) == "when"]
    if len(when) == 1:
        return when[0]
    why = f"several time-like concepts {when}" if when else "no time-like concept"
    raise SettingError(f"Pass concept=: the model has {why}; its concepts are {concepts}.")


def youngest_label(labels: Sequence[Any]) -> str:
    """The first label of a time concept: the smallest number when every label is a number
    with one common unit (``4wk`` of ``24wk, 4wk, 90wk``; ``P7`` of ``P21, P7``), the
    youngest age word (``young`` of ``old, young``), else the first label (the data's
    category order)."""
    labels = [str(v) for v in labels]
    if not labels:
        raise SettingError("The concept has no labels.")
    parsed = [_AGE_LABEL.match(v) for v in labels]
    if all(parsed) and len({m.group(2).lower() for m in parsed}) == 1:
        return min(zip(labels, parsed), key=lambda lp: float(lp[1].group(1)))[0]
    if all(v.lower() in _AGE_WORDS for v in labels):
        return min(labels, key=lambda v: _AGE_WORDS[v.lower()])
    return labels[0]


def other_concepts(concepts: Sequence[str], concept: str, obs: pd.DataFrame) -> list[str]:
    """The model's concepts other than ``concept`` that are columns of ``obs``: ``cell_type``
    and ``domain`` first (the old default), then the others in the model's order."""
    rest = [c for c in concepts if c != concept and c in obs.columns]
    return [c for c in _GROUP_FIRST if c in rest] + [c for c in rest if c not in _GROUP_FIRST]


def labels_like(col: pd.Series) -> bool:
    """A column of labels (categorical, strings or booleans), not numbers."""
    return (isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object
            or pd.api.types.is_string_dtype(col) or pd.api.types.is_bool_dtype(col))


def cluster_key(obs: pd.DataFrame) -> str:
    """The cell-type column: ``cell_type`` when present, else the only label column whose
    name says cell type / cluster / annotation (whole words); else a :class:`SettingError`
    listing the label columns to choose from."""
    if "cell_type" in obs.columns:
        return "cell_type"
    labels = [str(c) for c in obs.columns if labels_like(obs[c])]

    def says_type(name: str) -> bool:
        lower = name.lower()
        tokens = re.split(r"[^a-z0-9]+", lower)
        return lower in CELL_TYPE_WORDS or any(t in CELL_TYPE_WORDS for t in tokens)

    found = [c for c in labels if says_type(c)]
    if len(found) == 1:
        return found[0]
    why = (f"several columns look like cell types {found}" if found
           else "no column looks like cell types")
    raise SettingError(f"Pass cluster_key= (the labels whose neighbourhood composition defines "
                       f"the domains): {why}; label columns: {labels}.")
