"""The model-error terms of :func:`~napari_causcell.tl.change_intervals`.

Two terms, each measured on the user's own data, nothing fitted to a benchmark:

* **in distribution** (``c * v``, ``v`` the group's expression variance per gene): each model
  predicts the change of its *validation* cells' groups (cells it never trained on); the
  counterfactual mean is compared with the mean of the validation cells that carry the target
  labels. ``c`` is the method-of-moments excess of that squared error over the sampling
  variances, pooled over (group, gene) pairs and models.
* **out of distribution** (``tau2`` per gene): where a group's target combination was never
  measured, its change is transported from other groups; its error is how much the observed
  change differs between groups (random-effects between-group variance of the observed
  contrasts target - source per group, DerSimonian-Laird moments, times ``1 + 1/K``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..data.stream import ExpressionSource


@dataclass
class ErrorTerms:
    """``c`` (in-distribution error per unit of expression variance), ``tau2`` (per gene,
    between-group variance of the change), and how many pairs / groups measured each."""

    c: float = 0.0
    tau2: np.ndarray | None = None
    pairs: int = 0
    groups: int = 0
    notes: list[str] = field(default_factory=list)


def expression(model, adata) -> np.ndarray:
    """Cells x model genes, in the model's expression space (dense)."""
    return ExpressionSource(adata, model.genes, model.layer, model.log_normalized).dense()


def target_mask(table, do: Mapping[str, object]) -> np.ndarray:
    """Cells of ``table`` whose labels are the intervention's target values."""
    mask = np.ones(table.n_obs, bool)
    for concept, value in do.items():
        mask &= table.obs[concept].astype(str).to_numpy() == str(value)
    return mask


def in_distribution(models, per_model: np.ndarray, sampling_var: np.ndarray, table,
                    source_mean: np.ndarray, v: np.ndarray, own: np.ndarray,
                    labels: list[str], do: Mapping[str, object], min_cells: int
                    ) -> tuple[float, int, str]:
    """``(c, pairs, note)``: each model's counterfactual mean ``source_mean + per_model[k]``
    against the mean of its validation cells with the target labels, per group."""
    target = target_mask(table, do)
    excess, scale = [], []
    note = "validation cells"
    for k, model in enumerate(models):
        val = np.ones(table.n_obs, bool)
        if model.val_names is not None:
            val = table.obs_names.isin(model.val_names)
        else:
            note = "all cells (a model without validation cells: optimistic)"
        for g, label in enumerate(labels):
            rows = np.flatnonzero(target & val & (own == label))
            if len(rows) < min_cells:
                continue
            x_t = expression(model, table[rows])
            err = source_mean[g] + per_model[k, g] - x_t.mean(0)
            excess.append(err**2 - sampling_var[g] - x_t.var(0, ddof=1) / len(rows))
            scale.append(v[g])
    if not excess:
        return 0.0, 0, "no validation cell carries the target labels"
    c = float(np.mean(np.concatenate(excess)) / max(np.mean(np.concatenate(scale)), 1e-12))
    return max(c, 0.0), int(sum(e.size for e in excess)), note


def between_groups(model, table, do: Mapping[str, object], source_values: Mapping[str, set],
                   own: np.ndarray, min_cells: int) -> tuple[np.ndarray | None, int]:
    """``(tau2 * (1 + 1/K), K)``: the between-group variance per gene of the observed change
    (target cells - source cells of each group with >= ``min_cells`` of both)."""
    target = target_mask(table, do)
    source = np.ones(table.n_obs, bool)
    for concept, values in source_values.items():
        source &= np.isin(table.obs[concept].astype(str).to_numpy(), list(values))
    changes, noise = [], []
    for label in np.unique(own):
        t_rows = np.flatnonzero(target & (own == label))
        s_rows = np.flatnonzero(source & (own == label))
        if len(t_rows) < min_cells or len(s_rows) < min_cells:
            continue
        x_t, x_s = expression(model, table[t_rows]), expression(model, table[s_rows])
        changes.append(x_t.mean(0) - x_s.mean(0))
        noise.append(x_t.var(0, ddof=1) / len(t_rows) + x_s.var(0, ddof=1) / len(s_rows))
    k = len(changes)
    if k < 2:
        return None, k
    tau2 = np.maximum(np.var(changes, axis=0, ddof=1) - np.mean(noise, axis=0), 0.0)
    return tau2 * (1 + 1 / k), k
