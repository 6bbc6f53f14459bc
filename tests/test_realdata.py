"""Real STARmap mPFC data from ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

STARMAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "starmap_mpfc.h5ad"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not STARMAP.exists(), reason="../shared/data/starmap_mpfc.h5ad absent"),
]


def test_starmap_trains_and_reconstructs():
    import anndata as ad

    from napari_causcell import CausCell, metrics

    adata = ad.read_h5ad(STARMAP)
    model = CausCell(adata, ["slice", "domain", "celltype"],
                     dag=[("slice", "celltype"), ("domain", "celltype")], seed=0)
    model.train(max_epochs=20, validation_fraction=0.2, early_stopping=False)
    val = adata[model._val_index]
    rec = model.reconstruct(val, steps=20, seed=0)
    x, f = rec.X, rec.layers["factual"]
    r = np.nanmean(metrics.per_cell_pearson(f, x))
    print(f"STARmap held-out per-cell Pearson r after 20 epochs: {r:.3f}")
    assert r > 0.52  # beats the global mean profile (0.52) with one sample per cell
    pred = model.predict_concepts(val)
    acc = (pred["celltype"].astype(str).to_numpy() == val.obs["celltype"].astype(str).to_numpy())
    assert acc.mean() > 0.5  # 15 types; the largest is ~0.2 of cells
    first, last = model.concept_space.categories["slice"][0], model.concept_space.categories["slice"][-1]
    cf = model.counterfactual(val[val.obs["slice"] == first], do={"slice": last}, seed=0)
    assert (cf.obs["slice"] == last).all() and np.isfinite(cf.layers["delta"]).all()
