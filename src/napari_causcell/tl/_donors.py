"""The paper's small-data setting (a few donors per age), and cells per domain and slice."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..data import resolve_table
from ..errors import DataError, SettingError
from ._trend_common import DONOR_GUESSES, check_columns


def subsample_donors(data: Any, per_age: int = 2, by: str = "cell count",
                     which: str = "highest", *, age_key: str = "age",
                     donor_key: str | None = None, seed: int = 0,
                     table_key: str | None = None) -> ad.AnnData:
    """Keep ``per_age`` donors (mice) per age: the paper's small-data setting.

    Parameters
    ----------
    data
        AnnData or SpatialData (its table is used).
    per_age
        Donors kept per age label.
    by
        ``"cell count"`` (rank donors by their number of cells; ties by name) or ``"random"``
        (seeded).
    which
        ``"highest"`` or ``"lowest"`` cell counts (ignored for ``by="random"``).
    age_key
        The age column.
    donor_key
        The donor column (default: the first of ``donor``, ``donor_id``, ``mouse``, ... in obs).
    seed
        Seed for ``by="random"``.
    table_key
        Table of a SpatialData.

    Returns
    -------
    anndata.AnnData
        A copy of the chosen donors' cells, with unused categories removed and
        ``uns['causcell_subsample'] = {"per_age", "by", "which", "donors": {age: [donors]},
        "n_cells": {donor: n}}``.

    Raises
    ------
    DataError
        Missing columns, or an age with fewer than ``per_age`` donors.
    """
    _check_subsample(per_age, by, which)
    table, _ = resolve_table(data, table_key)
    donor_key = _donor_key(table, donor_key)
    check_columns(table, [age_key, donor_key], "Age/donor")
    donors = table.obs[donor_key].astype(str).to_numpy()
    counts = pd.Series(donors).value_counts()
    chosen = _choose_donors(table.obs[age_key].astype(str).to_numpy(), donors, counts,
                            per_age, by, which, seed)
    out = table[np.isin(donors, [d for v in chosen.values() for d in v])].copy()
    for col in out.obs.columns:
        if isinstance(out.obs[col].dtype, pd.CategoricalDtype):
            out.obs[col] = out.obs[col].cat.remove_unused_categories()
    out.uns["causcell_subsample"] = {
        "per_age": int(per_age), "by": by, "which": which, "age_key": age_key,
        "donor_key": donor_key, "donors": chosen,
        "n_cells": {d: int(counts[d]) for v in chosen.values() for d in v},
    }
    return out


def _check_subsample(per_age: int, by: str, which: str) -> None:
    if by not in ("cell count", "random"):
        raise SettingError(f"by must be 'cell count' or 'random', got {by!r}")
    if which not in ("highest", "lowest"):
        raise SettingError(f"which must be 'highest' or 'lowest', got {which!r}")
    if int(per_age) < 1:
        raise SettingError(f"per_age must be >= 1, got {per_age}")


def _donor_key(table: ad.AnnData, donor_key: str | None) -> str:
    """The given donor column, or the first of :data:`DONOR_GUESSES` in obs."""
    if donor_key is None:
        donor_key = next((c for c in DONOR_GUESSES if c in table.obs), None)
        if donor_key is None:
            raise DataError(f"No donor column found (tried {list(DONOR_GUESSES)}); pass "
                            "donor_key=.")
    return donor_key


def _choose_donors(ages: np.ndarray, donors: np.ndarray, counts: pd.Series, per_age: int,
                   by: str, which: str, seed: int) -> dict[str, list[str]]:
    """``{age: [donors]}``: ``per_age`` donors of each age, by cell count or at random."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[str]] = {}
    for age in pd.unique(ages):
        names = sorted(set(donors[ages == age]))
        if len(names) < per_age:
            raise DataError(f"Age {age!r} has {len(names)} donor(s), fewer than per_age="
                            f"{per_age}.")
        if by == "random":
            pick = list(rng.choice(names, size=per_age, replace=False))
        else:
            sign = -1 if which == "highest" else 1
            pick = sorted(names, key=lambda d: (sign * counts[d], d))[:per_age]
        chosen[str(age)] = sorted(map(str, pick))
    return chosen


def domains_per_slice(data: Any, domain_key: str = "domain", slice_key: str = "slice",
                      table_key: str | None = None) -> pd.DataFrame:
    """Cells per spatial domain (rows) and slice (columns), given or from
    :func:`~napari_causcell.tl.spatial_domains`; writes nothing."""
    table, _ = resolve_table(data, table_key)
    check_columns(table, [domain_key, slice_key], "Domain/slice")
    return pd.crosstab(table.obs[domain_key].astype(str), table.obs[slice_key].astype(str))
