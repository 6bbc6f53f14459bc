"""Concept label codes, fixed once at set-up and stored with the model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ConceptError  # re-exported here (the old import location)


MAX_NUMERIC_LEVELS = 50  # a numeric column with more distinct values is not a concept


@dataclass
class ConceptSpace:
    """Ordered concepts, each with its ordered list of labels (stored as strings).

    Codes are positions in ``categories[concept]``; they never change after set-up, so a
    subset of the data or another AnnData is encoded with the same codes.
    """

    names: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_obs(cls, obs: pd.DataFrame, names: Sequence[str]) -> ConceptSpace:
        """Read the labels of ``names`` from ``obs`` (categorical order kept when present)."""
        names = list(names)
        if not names:
            raise ConceptError("Give at least one concept column.")
        if len(set(names)) != len(names):
            raise ConceptError(f"Concept names repeat: {names}.")
        if "u" in names:
            raise ConceptError("'u' is reserved for the unexplained concept; rename that column.")
        cats: dict[str, list[str]] = {}
        for name in names:
            col = _column(obs, name)
            if col.isna().any():
                raise ConceptError(
                    f"Concept {name!r} has {int(col.isna().sum())} missing labels; "
                    "fill or drop those cells first."
                )
            if isinstance(col.dtype, pd.CategoricalDtype):
                levels = [str(c) for c in col.cat.categories if (col == c).any()]
            else:
                numeric = (pd.api.types.is_float_dtype(col) or pd.api.types.is_integer_dtype(col)
                           ) and not pd.api.types.is_bool_dtype(col)
                if numeric and col.nunique() > MAX_NUMERIC_LEVELS:
                    raise ConceptError(
                        f"Concept {name!r} looks continuous ({col.nunique()} distinct numbers); "
                        "concepts must be categorical (bin it, or make it a pd.Categorical "
                        "if every value really is a label)."
                    )
                levels = [str(v) for v in _natural_sort(col.unique())]
            if len(levels) < 2:
                raise ConceptError(
                    f"Concept {name!r} has a single level ({levels}); it carries no information."
                )
            cats[name] = levels
        return cls(names, cats)

    def n_classes(self) -> list[int]:
        return [len(self.categories[n]) for n in self.names]

    def encode(self, obs: pd.DataFrame) -> np.ndarray:
        """Integer codes ``(n_cells, n_concepts)``; unseen labels raise :class:`ConceptError`."""
        codes = np.empty((len(obs), len(self.names)), dtype=np.int64)
        for j, name in enumerate(self.names):
            col = _column(obs, name).astype(str)
            lookup = {lab: i for i, lab in enumerate(self.categories[name])}
            mapped = col.map(lookup)
            if mapped.isna().any():
                unseen = sorted(set(col[mapped.isna()]))
                raise ConceptError(
                    f"Concept {name!r} has labels the model never saw: {unseen[:10]}; "
                    f"known labels are {self.categories[name]}."
                )
            codes[:, j] = mapped.to_numpy(dtype=np.int64)
        return codes

    def code(self, name: str, label: object) -> int:
        """Code of one label; raises a clear error for an unknown concept or label."""
        self.check_name(name)
        labels = self.categories[name]
        if str(label) not in labels:
            raise ConceptError(
                f"{label!r} is not a label of concept {name!r}; choose one of {labels}."
            )
        return labels.index(str(label))

    def check_name(self, name: str) -> None:
        if name not in self.names:
            raise ConceptError(f"Unknown concept {name!r}; the model's concepts are {self.names}.")

    def decode(self, name: str, codes: np.ndarray) -> pd.Categorical:
        labels = self.categories[name]
        return pd.Categorical.from_codes(np.asarray(codes), categories=labels)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "categories": {k: list(v) for k, v in self.categories.items()}}

    @classmethod
    def from_dict(cls, d: Mapping) -> ConceptSpace:
        return cls(list(d["names"]), {k: list(v) for k, v in d["categories"].items()})


def _column(obs: pd.DataFrame, name: str) -> pd.Series:
    if name not in obs.columns:
        raise ConceptError(
            f"Concept column {name!r} is not in obs; available columns: {list(obs.columns)}."
        )
    return obs[name]


def _natural_sort(values: np.ndarray) -> list:
    """Numbers by value, strings by leading number when they have one ('4wk' < '24wk')."""
    import re

    def key(v):
        s = str(v)
        m = re.match(r"^\s*(-?\d+(?:\.\d+)?)", s)
        return (0, float(m.group(1)), s) if m else (1, 0.0, s)

    return sorted(values, key=key)
