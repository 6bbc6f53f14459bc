"""Age trends on the shipped real MERFISH data (Sun et al.; one mouse per age).

Trains a small ensemble (``--seeds`` models, ``--max-time`` seconds each) on
``datasets.merfish_brain_aging()`` with concepts age, domain (annotated region), cell_type and
the DAG age -> cell_type <- domain, runs ``tl.age_trends`` young -> old per cell type, and prints
the known ageing markers (``datasets.SUN2024_AGE_MARKERS``) beside the observed old - young
difference (``tl.direct_trends``, cells as units: the only possible unit with one mouse per
age). Every row is flagged ``one_donor``: mouse and age are confounded, so these are effect
sizes with model-uncertainty intervals, not tests of ageing. Writes
``benchmarks/results/trends-merfish_sun2024-<date>.json``.

    OMP_NUM_THREADS=1 python -m benchmarks.trends_real --seeds 3 --max-time 40
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import warnings

import numpy as np

from ._results import write_result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--max-time", type=float, default=40.0)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from napari_causcell import tl
    from napari_causcell.datasets import SUN2024_AGE_MARKERS, merfish_brain_aging

    sdata = merfish_brain_aging()
    t0 = time.perf_counter()
    models = tl.train_ensemble(sdata, ["age", "domain", "cell_type"],
                               [("age", "cell_type"), ("domain", "cell_type")],
                               n_models=args.seeds, max_epochs=args.epochs,
                               max_time=args.max_time)
    train_s = time.perf_counter() - t0
    epochs = [len(m.history) for m in models]
    kw = dict(concept="age", source="young", targets="old", groupby=["cell_type"],
              marginal=False, genes=list(models[0].genes))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cc = tl.age_trends(sdata, models, copy=True, **kw)
        direct = tl.direct_trends(sdata, copy=True, **kw)
    rows = []
    for rec in SUN2024_AGE_MARKERS.itertuples():
        c = cc[(cc["gene"] == rec.gene) & (cc["cell_type"] == rec.cell_type)].iloc[0]
        d = direct[(direct["gene"] == rec.gene) & (direct["cell_type"] == rec.cell_type)].iloc[0]
        rows.append({"gene": rec.gene, "cell_type": rec.cell_type, "expected": rec.direction,
                     "n_young_cells": int(c["n_source"]), "n_old_cells": int(d["n_target"]),
                     "counterfactual": float(c["mean_change"]), "cf_ci_low": float(c["ci_low"]),
                     "cf_ci_high": float(c["ci_high"]), "cf_unit": c["unit"],
                     "cf_one_donor": bool(c["one_donor"]),
                     "observed_old_minus_young": float(d["mean_change"]),
                     "obs_ci_low": float(d["ci_low"]), "obs_ci_high": float(d["ci_high"])})
        print(f"{rec.gene:>6} {rec.cell_type:<10} counterfactual {c['mean_change']:+.2f} "
              f"[{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] ({c['unit']}, one donor: "
              f"{bool(c['one_donor'])})   observed {d['mean_change']:+.2f}", flush=True)
    result = {
        "date": dt.date.today().isoformat(),
        "settings": {**vars(args), "data": "datasets.merfish_brain_aging() (Sun et al., MIT)",
                     "concepts": ["age", "domain", "cell_type"],
                     "dag": ["age->cell_type", "domain->cell_type"], "groupby": ["cell_type"]},
        "training": {"time_s": train_s, "epochs": epochs,
                     "val_acc_age": [float(m.history[-1].get("val_acc_age", np.nan))
                                     for m in models]},
        "markers": rows,
        "all_rows_one_donor": bool(cc["one_donor"].all()),
        "units": sorted(set(cc["unit"])),
        "n_significant_q05": int(cc["significant"].sum()),
        "warnings": sorted({str(w.message)[:120] for w in caught}),
    }
    print(json.dumps({k: result[k] for k in ("training", "units", "all_rows_one_donor")}))
    write_result(args.out, f"trends-merfish_sun2024-{result['date']}", result)


if __name__ == "__main__":
    main()
