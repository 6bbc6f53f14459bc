"""The concept schema's labels and assembly, shared by the MERFISH (CELLxGENE) and MERSCOPE
readers: harmonised cell-type names, age labels, the obs mapping and the output AnnData.
See :mod:`._merfish` for the schema itself."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.preprocess import DataError
from ..errors import SettingError

# (pattern on the lower-cased label, short name); first match wins, so specific first
CELL_TYPE_ALIASES: tuple[tuple[str, str], ...] = (
    (r"precursor|^opc", "OPC"),
    (r"oligodendro|^olig", "Oligo"),
    (r"astro", "Astro"),
    (r"microgli|^micro", "Microglia"),
    (r"macrophage", "Macrophage"),
    (r"endothel|^endo", "Endo"),
    (r"pericyte|^peri", "Peri"),
    (r"leptomening|^vlmc", "VLMC"),
    (r"ependym", "Ependymal"),
    (r"medium spiny|^msn", "MSN"),
    (r"inhibitory|gabaergic|interneuron|^inn?$|^inh", "InN"),
    (r"excitatory|glutamatergic|pyramidal|^exn?$|^exc", "ExN"),
)


def harmonize_cell_types(labels: Sequence[Any]) -> np.ndarray:
    """Short cell-type names (``Oligo``, ``Astro``, ...) for CELLxGENE / author labels.

    Rules: :data:`CELL_TYPE_ALIASES`, first match on the lower-cased label; other labels
    are kept as they are.
    """
    out = []
    for lab in map(str, labels):
        low = lab.lower().strip()
        out.append(next((short for pat, short in CELL_TYPE_ALIASES if re.search(pat, low)), lab))
    return np.asarray(out, dtype=object)


_UNITS = {"wk": 7.0, "week": 7.0, "weeks": 7.0, "w": 7.0, "mo": 30.4, "month": 30.4,
          "months": 30.4, "m": 30.4, "d": 1.0, "day": 1.0, "days": 1.0, "y": 365.0,
          "year": 365.0, "years": 365.0}
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-?\s*([a-z]*)")
_SHORT = {7.0: "wk", 30.4: "mo", 1.0: "d", 365.0: "y"}


def age_labels(values: Sequence[Any], unit: str = "wk") -> pd.Categorical:
    """Age values -> ordered categorical labels like ``"4wk"``.

    Accepts numbers (in ``unit``) and strings such as ``"4wk"``, ``"4 weeks"``,
    ``"90-week-old stage"`` (CELLxGENE ``development_stage``), ``"18mo"``, ``"30 days"``.
    Categories are ordered by time.

    Raises
    ------
    DataError
        A value that is not an age (e.g. ``"unknown"``) or missing.
    """
    if unit not in _UNITS:
        raise SettingError(f"unit must be one of {sorted(_UNITS)}, got {unit!r}")
    labels, days = [], {}
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            raise DataError("Missing age values: fill or drop those cells first.")
        if isinstance(v, (int, float, np.integer, np.floating)):
            num, u = float(v), unit
        else:
            m = _AGE_RE.match(str(v).lower())
            if not m:
                raise DataError(f"Cannot read an age from {v!r} (expected e.g. '4wk', "
                                "'24 weeks', '90-week-old stage' or a number).")
            num, u = float(m.group(1)), m.group(2) or unit
            if u not in _UNITS:
                raise DataError(f"Unknown age unit {u!r} in {v!r}; known: {sorted(_UNITS)}.")
        factor = _UNITS[u]
        text = f"{num:g}{_SHORT[factor]}"
        labels.append(text)
        days[text] = num * factor
    order = sorted(days, key=days.get)
    return pd.Categorical(labels, categories=order, ordered=True)


def _first(obs: pd.DataFrame, wanted: str | None, candidates: Sequence[str]) -> str | None:
    if wanted is not None:
        return wanted
    return next((c for c in candidates if c in obs.columns), None)


def _counts_matrix(adata: ad.AnnData, layer: str | None) -> tuple[Any, pd.Index, str]:
    """Raw counts and their gene index: ``layer``, else ``.raw.X``, else ``.X``."""
    if layer is not None:
        if layer not in adata.layers:
            raise DataError(f"Layer {layer!r} not found; layers are {list(adata.layers)}.")
        return adata.layers[layer], adata.var_names, f"layers[{layer!r}]"
    if adata.raw is not None:
        return adata.raw.X, adata.raw.var_names, "raw.X"
    return adata.X, adata.var_names, "X"


def _map_obs(
    obs: pd.DataFrame, *, age: str, donor: str, cell_type: str, slice_: str | None,
    domain: str | None, batch: str, age_unit: str, harmonize: bool,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Our schema's obs columns from source columns (already checked to exist)."""
    out = pd.DataFrame(index=obs.index)
    out["age"] = age_labels(obs[age].tolist(), unit=age_unit)
    out["donor"] = pd.Categorical(obs[donor].astype(str))
    out["slice"] = pd.Categorical(obs[slice_].astype(str)) if slice_ else out["donor"].copy()
    if batch not in ("donor", "slice"):
        raise SettingError(f"batch must be 'donor' or 'slice', got {batch!r}")
    out["batch"] = out[batch].copy()
    original = obs[cell_type].astype(str)
    if original.isin(["nan", "None", ""]).any():
        raise DataError(f"Column {cell_type!r} has missing cell types; fill or drop those cells.")
    names = harmonize_cell_types(original) if harmonize else original.to_numpy()
    out["cell_type"] = pd.Categorical(names)
    out["cell_type_original"] = pd.Categorical(original)
    if domain:
        out["domain"] = pd.Categorical(obs[domain].astype(str))
    schema = {"age": age, "donor": donor, "slice": slice_ or donor, "batch": batch,
              "cell_type": cell_type, "domain": domain or ""}
    return out, schema




def _schema_anndata(
    x: Any, obs: pd.DataFrame, var: pd.DataFrame, xy: np.ndarray, schema: dict[str, Any], *,
    uns: dict[str, Any] | None = None, unique_var_names: bool = False,
) -> ad.AnnData:
    """The output: counts (CSR float32) in ``.X`` and ``layers['counts']``, ``obsm['spatial']``
    and ``uns['causcell_schema']``."""
    counts = sp.csr_matrix(x, dtype=np.float32)
    out = ad.AnnData(X=counts, obs=obs, var=var, uns=uns)
    if unique_var_names:
        out.var_names_make_unique()
    out.layers["counts"] = counts.copy()
    out.obsm["spatial"] = xy
    out.uns["causcell_schema"] = schema
    return out
