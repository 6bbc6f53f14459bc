"""GPU smoke check of the CUDA paths: train a few epochs with bf16 autocast, a
counterfactual, save and load; prints training cells/s. Skips cleanly without CUDA.

    python scripts/gpu_check.py [--cells 20000] [--epochs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device (torch.cuda.is_available() is False)")
        return 0
    from napari_causcell import CausCell, datasets

    print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
    table = datasets.brain_aging(n_cells=args.cells, seed=0).tables["table"]
    results = {}
    for precision in ("32", "bf16-mixed"):
        model = CausCell(table, ["age", "domain", "cell_type"],
                         dag=[("age", "cell_type"), ("domain", "cell_type")], device="cuda")
        t = time.perf_counter()
        model.train(max_epochs=args.epochs, batch_size=1024, precision=precision,
                    early_stopping=False)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        speed = model.train_params["n_train"] * args.epochs / dt
        results[precision] = speed
        last = model.history[-1]
        assert np.isfinite(last["val_recon"]), last
        print(f"precision={precision}: {speed:,.0f} training cells/s, "
              f"val recon {last['val_recon']:.4f}")
    young = table[table.obs["age"] == table.obs["age"].cat.categories[0]][:2000]
    cf = model.counterfactual(young, do={"age": table.obs["age"].cat.categories[-1]})
    assert np.isfinite(cf.layers["delta"]).all()
    print(f"counterfactual: {cf.n_obs} cells, mean |delta| {np.abs(cf.layers['delta']).mean():.4f}")
    with tempfile.TemporaryDirectory() as tmp:
        model.save(f"{tmp}/m")
        back = CausCell.load(f"{tmp}/m", device="cuda")
        again = back.counterfactual(young, do={"age": table.obs["age"].cat.categories[-1]})
        diff = float(np.abs(again.X - cf.X).max())
        print(f"save/load on CUDA: max |difference| of the counterfactual {diff:.2e}")
        assert diff < 1e-4
    print("OK", {k: round(v) for k, v in results.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
