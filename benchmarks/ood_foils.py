"""Where the pooled shift's lead in the simulated OOD task comes from (issue #13).

``python -m benchmarks.ood_foils [--datasets brain_aging brain_aging@1] [--seeds 3]`` scores,
on the OOD splits of :mod:`benchmarks.compare` (no training), the pooled-shift foil against
two variants: the pooled shift without the held-out cell types, and the training-frequency
weighted mean of the per-type shifts (the observed analogue of CausCell's transported
change, ``unseen="average"``). Prints one line per split.
"""

from __future__ import annotations

import argparse

import numpy as np

from . import compare


def variants(ds: compare.Dataset, sp: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-cell predicted change of each foil for the split's counterfactual cells."""
    (key, src), = ds.cf_source.items()
    tgt = ds.cf_do[key]
    obs = ds.adata.obs
    lab, typ = obs[key].astype(str).to_numpy(), obs[ds.type_key].astype(str).to_numpy()
    tr = compare.train_mask(sp, len(obs))
    rest = tr & ~np.isin(typ, np.unique(typ[sp["cf"]]))
    without = x[rest & (lab == tgt)].mean(0) - x[rest & (lab == src)].mean(0)
    both = [t for t in np.unique(typ[tr])
            if min(((tr & (typ == t) & (lab == v)).sum() for v in (src, tgt))) >= compare.MIN_CELLS]
    w = np.array([(tr & (typ == t)).sum() for t in both], float)
    per_type = sum(wi / w.sum() * (x[tr & (typ == t) & (lab == tgt)].mean(0)
                                   - x[tr & (typ == t) & (lab == src)].mean(0))
                   for wi, t in zip(w, both))
    n = len(sp["cf"])
    return {"pooled shift": compare.run_foils(ds, sp, x)["mean shift"].cf_delta,
            "pooled shift without the held-out types": np.tile(without, (n, 1)),
            "frequency-weighted per-type shift": np.tile(per_type, (n, 1))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ood_foils")
    p.add_argument("--datasets", nargs="+", default=["brain_aging", "brain_aging@1"])
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args(argv)
    for name in a.datasets:
        ds = compare.load_dataset(name)
        x = compare.lognorm(ds.adata)
        for seed in range(a.seeds):
            sp = compare.split(ds, "ood", seed)
            truth = compare.truth_for(ds, sp, x)
            fact = x[sp["cf"]]
            for foil, delta in variants(ds, sp, x).items():
                sc = compare.score_cf(truth, compare.Output(cf=fact + delta, cf_delta=delta),
                                      seed)
                print(f"{name} ood seed {seed} {foil}: r {sc['cf_r']:.3f} "
                      f"MSE {sc['cf_mse']:.3f}", flush=True)


if __name__ == "__main__":
    main()
