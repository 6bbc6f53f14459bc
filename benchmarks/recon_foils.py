"""How much of a cell the labels alone reconstruct (issue #13, target 4).

``python -m benchmarks.recon_foils [--datasets starmap brain_aging] [--seeds 3]`` scores, on
the reconstruction cells of :mod:`benchmarks.compare`'s splits (OOD for STARmap: the held-out
domain x type combinations; ID for the simulated tissue; no training), the per-cell Pearson r
of two label-only predictors: each cell's own label combination's mean over all cells (an
oracle: for held-out combinations it uses the held-out cells themselves) and its cell type's
mean over the training cells. A model whose reconstruction reaches the oracle has used what
the labels say; per-cell detail beyond it must come from the cell's own latent. Prints one
line per split.
"""

from __future__ import annotations

import argparse

import numpy as np

from . import compare

SETTING = {"starmap": "ood", "brain_aging": "id", "merfish": "ood"}


def predictors(ds: compare.Dataset, sp: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each label-only predictor's expression for the split's reconstruction cells."""
    obs = ds.adata.obs
    cells = sp["test"][sp["recon_pos"]]
    combo = obs[ds.concepts].astype(str).agg("|".join, axis=1).to_numpy()
    typ = obs[ds.type_key].astype(str).to_numpy()
    means = {c: x[combo == c].mean(0) for c in np.unique(combo[cells])}
    tr = compare.train_mask(sp, len(obs))
    type_means = {t: x[tr & (typ == t)].mean(0) for t in np.unique(typ[cells])}
    return {"own combination's mean (oracle)": np.stack([means[c] for c in combo[cells]]),
            "cell type's training mean": np.stack([type_means[t] for t in typ[cells]])}


def main(argv=None) -> None:
    from napari_causcell import metrics as M

    p = argparse.ArgumentParser(prog="python -m benchmarks.recon_foils")
    p.add_argument("--datasets", nargs="+", default=["starmap", "brain_aging"])
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args(argv)
    for name in a.datasets:
        ds = compare.load_dataset(name)
        x = compare.lognorm(ds.adata)
        setting = SETTING[compare.base_name(name)]
        for seed in range(a.seeds):
            sp = compare.split(ds, setting, seed)
            real = x[sp["test"][sp["recon_pos"]]]
            for foil, pred in predictors(ds, sp, x).items():
                r = float(np.nanmean(M.per_cell_pearson(real, pred)))
                print(f"{name} {setting} seed {seed} {foil}: per-cell r {r:.3f} "
                      f"({len(real)} cells)", flush=True)


if __name__ == "__main__":
    main()
