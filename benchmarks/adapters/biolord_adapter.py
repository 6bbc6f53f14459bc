"""biolord on a benchmark task; runs in the "scverse" peer venv.

usage: python biolord_adapter.py task.json   (see benchmarks/peers.py for the contract)

- Model: ``biolord.Biolord`` on log1p(CP10k) expression (gaussian likelihood, biolord's
  default), every concept a categorical attribute.
- biolord is an auto-decoder: the "unknown attributes" latent of a cell is a free code learned
  per TRAINING cell (an embedding table indexed by row), there is no encoder. Held-out query
  cells therefore get their code by test-time optimisation: the trained decoder and attribute
  embeddings are frozen and a fresh code per query cell is fitted to the cell's expression and
  own labels with biolord's own training loss (gaussian NLL + reconstruction_penalty * MSE +
  unknown_attribute_penalty * |z|^2), Adam, INFER_STEPS full-batch steps from z = 0.
- Embeddings: "latent" = that unknown-attributes code; one key per concept = the learned
  attribute embedding of the cell's label (``get_categorical_attribute_embeddings``).
- Reconstruction: decoder mean from [code, embeddings of the cell's own labels], clipped at
  0 (log-normalised space is non-negative).
- Counterfactual: the same forward with the intervened concept's embedding swapped for the
  target label's (what ``compute_prediction_adata`` does, but per cell and with the query
  cells' fitted codes, so rows stay paired with the query rows).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

INFER_STEPS = 300
INFER_LR = 1e-2
N_LATENT = 32
MODULE_PARAMS = {
    "decoder_width": 512,
    "decoder_depth": 4,
    "n_latent_attribute_categorical": 16,
    "gene_likelihood": "normal",
    "reconstruction_penalty": 1e2,
    "unknown_attribute_penalty": 1e1,
    "unknown_attribute_noise_param": 1e-1,
    "decoder_dropout_rate": 0.1,
}
PLAN_PARAMS = {"latent_lr": 1e-3, "latent_wd": 1e-5, "decoder_lr": 1e-3, "decoder_wd": 1e-5,
               "step_size_lr": 45}


def main() -> None:
    task = C.load_task()
    C.set_seed(task["seed"])
    import anndata as ad
    import biolord
    import numpy as np
    import scvi
    import torch

    scvi.settings.seed = int(task["seed"])
    torch.set_num_threads(1)
    train, query = C.read_inputs(task)
    concepts = list(task["concepts"])
    notes = [
        "trained on log1p(CP10k); gaussian likelihood; all concepts categorical attributes",
        f"query cells' unknown-attribute codes fitted by {INFER_STEPS} Adam steps with the "
        "trained decoder frozen (biolord has no encoder)",
        "per-concept embedding = learned attribute embedding of the cell's label",
        "counterfactual = swap the concept's attribute embedding for the target label's",
        "decoder means clipped at 0",
        f"n_latent={N_LATENT}, module {MODULE_PARAMS}, plan {PLAN_PARAMS}",
    ]

    tr = ad.AnnData(X=train.layers[C.LOG_LAYER], obs=train.obs.copy(),
                    var=train.var[[]].copy())
    biolord.Biolord.setup_anndata(tr, categorical_attributes_keys=concepts)
    model = biolord.Biolord(tr, n_latent=N_LATENT, module_params=dict(MODULE_PARAMS, seed=int(
        task["seed"])), train_classifiers=False)
    trainer_kwargs = C.lightning_max_time(task["max_time"])
    with C.Timer() as t:
        model.train(max_epochs=int(task["max_epochs"]), batch_size=128, train_size=1.0,
                    plan_kwargs=dict(PLAN_PARAMS), early_stopping=False,
                    enable_checkpointing=False, accelerator="cpu", device=1,
                    check_val_every_n_epoch=10**6, enable_progress_bar=False,
                    **trainer_kwargs)
    epochs = int(model.trainer.current_epoch)
    if epochs < int(task["max_epochs"]):
        notes.append(f"stopped after {epochs} of {task['max_epochs']} epochs by max_time")
    C.log(f"trained {epochs} epochs in {t.seconds:.1f} s")

    module = model.module
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)

    def codes(obs, keys=tuple(concepts)):
        out = {}
        for c in keys:
            m = model.categorical_attributes_map[c]
            vals = obs[c].astype(str).to_numpy()
            unseen = sorted(set(vals) - set(m))
            if unseen:
                raise SystemExit(f"biolord: {c} labels {unseen} were not in training")
            out[c] = torch.as_tensor([m[v] for v in vals], dtype=torch.long)
        return out

    def decode(z, cat_codes):
        emb = module._inference_attribute_embeddings(
            genes=z, categorical_attribute_dict=cat_codes, ordered_attribute_dict={})
        latent = torch.cat([z] + [emb[c].reshape(z.shape[0], -1) for c in
                                  module.categorical_embeddings.keys()], dim=-1)
        return module.generative(latent=latent)

    x = torch.as_tensor(query.layers[C.LOG_LAYER], dtype=torch.float32)
    own = codes(query.obs)
    z = torch.zeros(query.n_obs, module.n_latent, requires_grad=True)
    opt = torch.optim.Adam([z], lr=INFER_LR)
    with C.Timer() as ti:
        for _ in range(INFER_STEPS):
            opt.zero_grad()
            out = decode(z, own)
            rec = module.ae_loss_fn(input=out["means"], target=x, var=out["variances"])
            rec = rec + module.reconstruction_penalty * module.ae_loss_mse_fn(out["means"], x)
            loss = rec + module.unknown_attribute_penalty * (z**2).sum(1).mean()
            loss.backward()
            opt.step()
    C.log(f"fitted {query.n_obs} query codes in {ti.seconds:.1f} s, final loss {loss.item():.4f}")
    z = z.detach()

    with torch.no_grad():
        def expr(zz, cc):
            return np.clip(decode(zz, cc)["means"].numpy(), 0, None)

        recon = expr(z, own)
        emb = {"latent": z.numpy()}
        for c in concepts:
            emb[c] = module.categorical_embeddings[c](own[c]).numpy()
        cfs = {}
        for cf in task["counterfactuals"]:
            (c, v), = cf["do"].items()
            rows = torch.as_tensor(np.asarray(cf["cells"], dtype=int))
            src = {k: val[rows] for k, val in own.items()}
            dst = dict(src)
            dst[c] = codes(C.cf_obs(query, cf), (c,))[c]
            cfs[cf["name"]] = (expr(z[rows], dst), expr(z[rows], src))
    C.write_outputs(task, query, package_version=biolord.__version__, train_seconds=t.seconds,
                    epochs=epochs, n_train=train.n_obs, notes=notes, embeddings=emb,
                    reconstruction=recon, counterfactuals=cfs,
                    extra={"query_inference_seconds": round(ti.seconds, 3)})


if __name__ == "__main__":
    main()
