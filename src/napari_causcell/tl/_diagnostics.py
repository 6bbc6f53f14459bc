"""Leakage diagnostics: what each concept token knows about every label."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._utils import warn_user
from ._defaults import is_model


def leakage(
    model: Any, data: Any = None, *, exogenous: bool = True, folds: int = 3, seed: int = 0,
    max_cells: int = 3000,
) -> pd.DataFrame:
    """Linear-probe accuracy of every token for every concept label.

    A logistic-regression probe (:func:`napari_causcell.metrics.probe`) is cross-validated
    on the token embeddings of ``data`` (default: the model's validation cells). Rows are tokens (concepts and ``u``), columns
    are labels; the ``chance`` row gives the majority-class rate. A token should predict its
    own label well and other labels near chance (``u`` ideally near chance everywhere).
    With label anchoring (the default) a concept token contains its label's prototype, so its
    own-label entry is ~1 by construction: read the off-diagonal entries and the ``u`` row.

    The model comes first because ``data`` is optional; ``leakage(data, model)`` (the order
    of :func:`counterfactual`) is accepted too, told apart by type.

    A class with fewer cells than ``folds`` (e.g. two macrophages) cannot be split in
    stratified folds: its cells are left out of that label's probe, and the result says so
    in ``attrs["left_out"]`` (``{label: "Macrophage (2 cells)"}``) and a ``UserWarning``.

    Returns
    -------
    pandas.DataFrame
        Tokens x concept labels (probe accuracy), plus the ``chance`` row.
    """
    from ..metrics import probe

    if data is not None and is_model(data) and not is_model(model):
        model, data = data, model
    if data is None:
        adata = model._table(None)
        val = getattr(model, "_val_index", None)
        if val is not None and len(val) >= 50:
            adata = adata[val]
    else:
        adata = model._table(data)
    if adata.n_obs > max_cells:
        idx = np.sort(np.random.default_rng(seed).choice(adata.n_obs, max_cells, replace=False))
        adata = adata[idx]
    emb = model.concept_embeddings(adata, exogenous=exogenous, write=False)
    labels = adata.obs[model.concepts].astype(str)
    table = probe(emb, labels, folds=folds, seed=seed, max_cells=None)
    wide = table.pivot(index="embedding", columns="label", values="accuracy")
    wide = wide.reindex(index=list(emb), columns=model.concepts)
    chance = table.drop_duplicates("label").set_index("label")["chance"]
    wide.loc["chance"] = chance.reindex(model.concepts)
    wide.index.name = wide.columns.name = None
    left = table.drop_duplicates("label").set_index("label")["left_out"]
    wide.attrs["left_out"] = {k: v for k, v in left.items() if v}
    if wide.attrs["left_out"]:
        parts = "; ".join(f"{k}: {v}" for k, v in wide.attrs["left_out"].items())
        warn_user(f"leakage: classes with fewer cells than folds={folds} are left out of "
                      f"the probe ({parts}).", UserWarning)
    return wide
