"""Leakage diagnostics: what each concept token knows about every label."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def leakage(
    model: Any, data: Any = None, *, exogenous: bool = True, folds: int = 3, seed: int = 0,
    max_cells: int = 3000,
) -> pd.DataFrame:
    """Linear-probe accuracy of every token for every concept label.

    A logistic-regression probe is cross-validated on the token embeddings of ``data``
    (default: the model's validation cells). Rows are tokens (concepts and ``u``), columns
    are labels; the ``chance`` row gives the majority-class rate. A token should predict its
    own label well and other labels near chance (``u`` ideally near chance everywhere).
    With label anchoring (the default) a concept token contains its label's prototype, so its
    own-label entry is ~1 by construction: read the off-diagonal entries and the ``u`` row.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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
    codes = model.concept_space.encode(adata.obs)
    rows = {}
    for token, x in emb.items():
        accs = {}
        for j, label in enumerate(model.concepts):
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
            accs[label] = float(cross_val_score(probe, x, codes[:, j], cv=folds).mean())
        rows[token] = accs
    chance = {c: float(np.bincount(codes[:, j]).max() / len(codes))
              for j, c in enumerate(model.concepts)}
    rows["chance"] = chance
    return pd.DataFrame(rows).T
