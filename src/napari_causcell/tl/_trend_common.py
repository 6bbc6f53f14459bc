"""What the trend tools share: constants, argument checks and small helpers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np

from ..errors import ConceptError, DataError, SettingError

#: Statistical tests offered.
TESTS = ("t-test", "wilcoxon")
#: Null distributions of the test statistics (``null=`` of the trend tests; ``"auto"`` only
#: for the counterfactual test).
NULLS = ("auto", "theoretical", "empirical")
#: Fewest defined tests from which an empirical null is estimated.
MIN_EMPIRICAL_TESTS = 200
#: Default effect-size threshold (log-normalised units, natural log1p of counts per 10k).
DEFAULT_MIN_EFFECT = 0.1
#: ``unit`` of a trend row without donor replication (fewer than two donors at the source or
#: the target label): an effect size with a model-only interval, no p/q-value.
MODEL_ONLY = "model-only (no donor replication)"
ALL = "all"  # value of a groupby column in marginal rows
#: Donor columns looked for when none is given.
DONOR_GUESSES = ("donor", "donor_id", "mouse", "animal", "individual", "sample")

RESULT_COLUMNS = [
    "method", "target", "gene", "n_source", "n_target", "n_donors_source", "n_donors_target",
    "n_models", "mean_source", "mean_target", "mean_change", "se", "ci_low", "ci_high", "df",
    "statistic", "pvalue", "padj", "direction", "significant", "unit", "one_donor",
]


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def check_columns(adata: ad.AnnData, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in adata.obs]
    if missing:
        hint = ""
        if "domain" in missing:
            hint = " Derive spatial domains first with tl.spatial_domains(data)."
        raise DataError(
            f"{what} column(s) {missing} not in obs; columns: {list(adata.obs.columns)}.{hint}"
        )


def check_null(null: str) -> None:
    if null not in NULLS:
        raise SettingError(f"null must be one of {NULLS}, got {null!r}")


def check_params(test: str, alpha: float, min_effect: float, min_cells: int,
                 null: str = "theoretical") -> None:
    check_null(null)
    if test not in TESTS:
        raise SettingError(f"test must be one of {TESTS}, got {test!r}")
    if not 0 < alpha < 1:
        raise SettingError(f"alpha must be in (0, 1), got {alpha}")
    if min_effect < 0:
        raise SettingError(f"min_effect must be >= 0, got {min_effect}")
    if min_cells < 2:
        raise SettingError(f"min_cells must be >= 2 (a test needs a spread), got {min_cells}")


def check_level(level: float) -> None:
    if not 0 < level < 1:
        raise SettingError(f"level must be in (0, 1), got {level}")


def check_labels(labels: Sequence[str], concept: str, source: str,
                 targets: Sequence[str] | None) -> list[str]:
    """Validated target labels (default: every other label, in order)."""
    labels = [str(v) for v in labels]
    source = str(source)
    if source not in labels:
        raise ConceptError(f"Unknown {concept} label {source!r}; labels are {labels}.")
    if targets is None:
        targets = [v for v in labels if v != source]
    targets = as_list(targets)
    if not targets:
        raise ConceptError("Give at least one target label.")
    for t in targets:
        if t not in labels:
            raise ConceptError(f"Unknown {concept} label {t!r}; labels are {labels}.")
        if t == source:
            raise ConceptError(f"Target {t!r} equals the source: nothing to compare.")
    if len(set(targets)) != len(targets):
        raise ConceptError(f"Targets repeat: {targets}.")
    return targets


def donor_column(table: ad.AnnData, donor_key: Any) -> str | None:
    """The donor column: given, guessed (donor, donor_id, mouse, ...), or None."""
    if donor_key is False:
        return None
    if donor_key is None:
        return next((c for c in DONOR_GUESSES if c in table.obs), None)
    check_columns(table, [donor_key], "Donor")
    return str(donor_key)


def donor_labels(table: ad.AnnData, donor_col: str | None) -> np.ndarray:
    """Each cell's donor as text (``"unknown"`` for all without a donor column)."""
    if donor_col:
        return table.obs[donor_col].astype(str).to_numpy()
    return np.full(table.n_obs, "unknown")


def dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


def slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_")
