"""Quickstart: built-in tissue -> train -> do(age=90wk) on the 4-week cells -> overlay -> save.

Run from the repository root after `make setup`:
    OMP_NUM_THREADS=1 .venv/bin/python examples/quickstart.py
"""

import matplotlib

matplotlib.use("Agg")
import torch

from napari_causcell import CausCell, datasets, pl, tl

torch.set_num_threads(1)

sdata = datasets.brain_aging(n_cells=3000, seed=0)
model = CausCell(sdata, concepts=["age", "domain", "cell_type"],
                 dag=[("age", "cell_type"), ("domain", "cell_type")], seed=0)
model.train(max_epochs=200, max_time=90, progress_bar=True)
print(model)
print("held-out accuracy:", {k: round(v, 3) for k, v in model.history[-1].items() if "acc" in k})
print(tl.leakage(model).round(2))

tl.counterfactual(sdata, model, do={"age": "90wk"}, cells={"age": "4wk"})  # writes a table
cf = sdata.tables["causcell_age_90wk"]
print(tl.top_changed_genes(cf, n=10))
pl.counterfactual_overlay(cf, "C4b", background=sdata).savefig("quickstart_C4b.png", dpi=110)
model.save("quickstart_model", overwrite=True)
print("wrote quickstart_C4b.png, quickstart_model/ and table", cf.uns["causcell"]["key"])
