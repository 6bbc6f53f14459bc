"""scVI (scvi-tools) on a benchmark task; runs in the "scverse" peer venv.

usage: python scvi_adapter.py task.json   (see benchmarks/peers.py for the contract)

- Model: ``scvi.model.SCVI`` on the raw counts, every concept a categorical covariate
  (``categorical_covariate_keys``: one-hot into the decoder; the encoder sees expression only,
  scVI's default ``encode_covariates=False``), gene likelihood zinb (the default).
- Embedding "latent": posterior mean of z (``get_latent_representation``). scVI has no
  per-concept embedding (covariates are one-hot inputs), so no concept keys.
- Reconstruction: ``get_normalized_expression`` of the query cells with their own labels
  (expression fractions, library_size=1: the observed library only informs the encoder, the
  output is scale-free), mean of N_SAMPLES posterior samples, then log1p(fraction * 1e4).
- Counterfactual: copy of the cells with the concept edited in ``.obs``, same call; the paired
  reconstruction is the unedited copy, both drawn with the same seed so the posterior samples
  of z are identical and only the decoder's covariate differs.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

N_SAMPLES = 20
BATCH = 256


def main() -> None:
    task = C.load_task()
    C.set_seed(task["seed"])
    import numpy as np
    import scvi
    import torch

    scvi.settings.seed = int(task["seed"])
    scvi.settings.num_threads = 1
    torch.set_num_threads(1)
    train, query = C.read_inputs(task)
    concepts = list(task["concepts"])
    notes = [
        "all concepts are scVI categorical covariates (decoder input); counterfactual = edit the "
        "covariate and decode the same posterior z samples",
        f"expression = mean of {N_SAMPLES} posterior samples of normalized expression "
        "(library_size=1), log1p(x*1e4)",
        "no per-concept embedding in scVI; 'latent' = posterior mean of z",
    ]

    scvi.model.SCVI.setup_anndata(train, layer="counts", categorical_covariate_keys=concepts)
    model = scvi.model.SCVI(train)
    trainer_kwargs = C.lightning_max_time(task["max_time"])
    with C.Timer() as t:
        model.train(max_epochs=int(task["max_epochs"]), train_size=1.0, batch_size=128,
                    accelerator="cpu", devices=1, early_stopping=False,
                    enable_progress_bar=False, **trainer_kwargs)
    hist = model.history.get("elbo_train")
    epochs = int(len(hist)) if hist is not None else int(model.trainer.current_epoch)
    if epochs < int(task["max_epochs"]):
        notes.append(f"stopped after {epochs} of {task['max_epochs']} epochs by max_time")
    C.log(f"trained {epochs} epochs in {t.seconds:.1f} s")

    def expr(a):
        torch.manual_seed(int(task["seed"]))
        F = model.get_normalized_expression(adata=a, n_samples=N_SAMPLES, return_mean=True,
                                            library_size=1, batch_size=BATCH,
                                            return_numpy=True)
        return C.fractions_to_lognorm(F)

    q = query.copy()
    q.X = q.layers["counts"]
    latent = model.get_latent_representation(adata=q, batch_size=BATCH)
    recon = expr(q)
    cfs = {}
    for cf in task["counterfactuals"]:
        (c, v), = cf["do"].items()
        rows = np.asarray(cf["cells"], dtype=int)
        src = q[rows].copy()
        dst = src.copy()
        dst.obs[c] = C.cf_obs(q, cf)[c].values
        cfs[cf["name"]] = (expr(dst), expr(src))
    C.write_outputs(task, query, package_version=scvi.__version__, train_seconds=t.seconds,
                    epochs=epochs, n_train=train.n_obs, notes=notes,
                    embeddings={"latent": latent}, reconstruction=recon, counterfactuals=cfs)


if __name__ == "__main__":
    main()
