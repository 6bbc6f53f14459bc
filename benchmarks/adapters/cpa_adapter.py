"""CPA (cpa-tools) on a benchmark task; runs in the "cpa" peer venv.

usage: python cpa_adapter.py task.json   (see benchmarks/peers.py for the contract)

- Model: ``cpa.CPA`` on the raw counts with CPA's default negative-binomial loss (recon_loss
  "nb", deterministic encoder); hyper-parameters after CPA's own tutorials, warm-up epochs
  scaled down to the epoch budget.
- CPA has ONE perturbation attribute: perturbation_key = the intervened concept, every label a
  perturbation of dosage 1.0 (CPA needs a control_group: the first label in sorted order, which
  in CPA still gets an embedding of its own), categorical_covariate_keys = the other concepts.
  A task intervening on k different concepts trains k CPA models, each on max_time / k seconds
  and max_epochs epochs; the embeddings and the reconstruction come from the first model
  (the first intervened concept; concepts[0] when there is no counterfactual).
- Embeddings: "latent" = the basal latent z_basal (encoder output before the perturbation and
  covariate embeddings are added); the perturbation concept's key = the perturbation
  embedding of the cell's label at dosage 1 (``get_pert_embeddings``); each other concept's
  key = CPA's covariate embedding of the cell's label (``module.covars_embeddings``, read
  directly because ``get_covar_embeddings`` returns a 3-D array AnnData cannot hold).
- Reconstruction / counterfactual: ``predict(adata)`` on a copy of the cells with ``.obs``
  edited (and CPA's perturbation index arrays in ``.obsm`` rebuilt from the edited column,
  since CPA computes them only in ``setup_anndata``), ``obsm["CPA_pred"]`` = expected counts
  for the cell's own library, converted to log1p(CP10k). The cells' observed counts are the
  encoder input in both, so the paired difference is the perturbation/covariate swap only.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

MODEL_PARAMS = {
    "n_latent": 64,
    "recon_loss": "nb",
    "doser_type": "linear",
    "n_hidden_encoder": 128,
    "n_layers_encoder": 2,
    "n_hidden_decoder": 512,
    "n_layers_decoder": 2,
    "use_batch_norm_encoder": True,
    "use_layer_norm_encoder": False,
    "use_batch_norm_decoder": False,
    "use_layer_norm_decoder": True,
    "dropout_rate_encoder": 0.0,
    "dropout_rate_decoder": 0.1,
    "variational": False,
}
PLAN_PARAMS = {
    "n_epochs_kl_warmup": None,
    "n_epochs_mixup_warmup": 0,
    "mixup_alpha": 0.0,
    "adv_steps": None,
    "n_hidden_adv": 64,
    "n_layers_adv": 3,
    "use_batch_norm_adv": True,
    "use_layer_norm_adv": False,
    "dropout_rate_adv": 0.3,
    "reg_adv": 20.0,
    "pen_adv": 5.0,
    "lr": 3e-4,
    "wd": 4e-7,
    "adv_lr": 3e-4,
    "adv_wd": 4e-7,
    "adv_loss": "cce",
    "doser_lr": 3e-4,
    "doser_wd": 4e-7,
    "do_clip_grad": True,
    "gradient_clip_value": 1.0,
    "step_size_lr": 10,
}
BATCH = 128


def _keep_trained_weights() -> None:
    """CPA.train always adds scvi's SaveBestState(monitor="cpa_metric"), which stores the
    module state at train start and loads the best validated state at train end. With no
    validation run (we train on all training cells, like the other peers) it would restore the
    UNTRAINED weights; this version restores only a state that validation actually chose."""
    import cpa._model as cm

    base = cm.SaveBestState

    class SaveValidatedBestState(base):
        def on_train_start(self, trainer, pl_module):
            self.best_module_state = None

        def on_train_end(self, trainer, pl_module):
            if self.best_module_state is not None:
                pl_module.module.load_state_dict(self.best_module_state)

    cm.SaveBestState = SaveValidatedBestState


def main() -> None:
    task = C.load_task()
    C.set_seed(task["seed"])
    import numpy as np
    import pandas as pd
    import torch
    import cpa
    import scvi
    from cpa._utils import CPA_REGISTRY_KEYS as K

    scvi.settings.seed = int(task["seed"])
    torch.set_num_threads(1)
    _keep_trained_weights()
    train, query = C.read_inputs(task)
    concepts = list(task["concepts"])
    pert_concepts = []
    for cf in task["counterfactuals"]:
        c = next(iter(cf["do"]))
        if c not in pert_concepts:
            pert_concepts.append(c)
    if not pert_concepts:
        pert_concepts = [concepts[0]]
    budget = float(task["max_time"]) / len(pert_concepts) if task["max_time"] else None
    max_epochs = int(task["max_epochs"])
    plan = dict(PLAN_PARAMS, n_epochs_pretrain_ae=min(30, max_epochs // 3),
                n_epochs_adv_warmup=min(50, max_epochs // 2))
    notes = [
        "raw counts, recon_loss nb, deterministic encoder; one CPA model per intervened "
        f"concept ({pert_concepts}), each with max_time/{len(pert_concepts)} s",
        "perturbation_key = intervened concept (each label a perturbation, dosage 1.0), "
        "categorical_covariate_keys = the other concepts",
        "embeddings/reconstruction from the model of the first intervened concept; 'latent' = "
        "z_basal, concept keys = perturbation / covariate embeddings of the cell's label",
        "expression = expected NB counts for the cell's own library -> log1p(CP10k)",
        "all training cells used for training, no validation split, so CPA's best-state "
        "restore (SaveBestState on cpa_metric) is off: the final weights are used",
        f"warm-up epochs: pretrain_ae {plan['n_epochs_pretrain_ae']}, adv "
        f"{plan['n_epochs_adv_warmup']}; model {MODEL_PARAMS}",
    ]
    total_seconds, total_epochs, epochs_list = 0.0, 0, []
    embeddings, recon, cfs = {}, None, {}

    for i, pk in enumerate(pert_concepts):
        covs = [c for c in concepts if c != pk]
        ctrl = str(train.obs[pk].cat.categories[0])
        # CPA keeps its encoders as CLASS attributes and its registry keys as module globals:
        # reset them so each model is set up from scratch (models are used one at a time).
        cpa.CPA.pert_encoder = None
        cpa.CPA.covars_encoder = None
        tr = train.copy()
        tr.X = tr.layers["counts"]
        cpa.CPA.setup_anndata(tr, perturbation_key=pk, control_group=ctrl, dosage_key=None,
                              is_count_data=True, categorical_covariate_keys=list(covs),
                              max_comb_len=1)
        first_cat = str(tr.obs[K.CATEGORY_KEY].cat.categories[0]) \
            if hasattr(tr.obs[K.CATEGORY_KEY], "cat") else str(tr.obs[K.CATEGORY_KEY].iloc[0])
        model = cpa.CPA(tr, **dict(MODEL_PARAMS, seed=int(task["seed"])))
        trainer_kwargs = C.lightning_max_time(budget)
        with C.Timer() as t:
            model.train(max_epochs=max_epochs, use_gpu=False, train_size=1.0,
                        batch_size=BATCH, plan_kwargs=dict(plan), save_path=False,
                        check_val_every_n_epoch=10**6, early_stopping_patience=10**6,
                        enable_progress_bar=False, **trainer_kwargs)
        epochs = int(model.trainer.current_epoch)
        total_seconds += t.seconds
        total_epochs += epochs
        epochs_list.append(epochs)
        C.log(f"CPA[{pk}]: trained {epochs} epochs in {t.seconds:.1f} s")
        if epochs < max_epochs:
            notes.append(f"CPA[{pk}] stopped after {epochs} of {max_epochs} epochs by max_time")

        pert_codes = model.pert_encoder

        def prepared(a, obs):
            """AnnData for predict: counts of ``a``, obs ``obs`` (labels possibly edited)."""
            import anndata as ad

            b = ad.AnnData(X=a.layers["counts"].copy(), obs=obs.copy(), var=a.var[[]].copy())
            labels = b.obs[pk].astype(str).to_numpy()
            unseen = sorted(set(labels) - set(pert_codes))
            if unseen:
                raise SystemExit(f"CPA: {pk} labels {unseen} were not in training")
            b.obsm[K.PERTURBATIONS] = np.array([[pert_codes[v]] for v in labels], dtype=int)
            b.obsm[K.PERTURBATIONS_DOSAGES] = np.ones((b.n_obs, 1), dtype=float)
            b.obs[K.PERTURBATION_DOSAGE_KEY] = "1.0"
            b.obs[K.CONTROL_KEY] = (labels == ctrl).astype(int)
            # the covariate+perturbation combination column only feeds CPA's training metrics;
            # a held-out or counterfactual combination may be absent from training
            b.obs[K.CATEGORY_KEY] = pd.Categorical([first_cat] * b.n_obs)
            return b

        def expr(a, obs):
            b = prepared(a, obs)
            model.predict(b, batch_size=BATCH, n_samples=1)
            return C.counts_to_lognorm(b.obsm["CPA_pred"])

        if i == 0:
            qb = prepared(query, query.obs)
            recon = expr(query, query.obs)
            lat = model.get_latent_representation(qb, batch_size=BATCH)
            embeddings["latent"] = np.asarray(lat["latent_basal"].X)
            pe = model.get_pert_embeddings(dosage=1.0)
            pe_rows = {str(n): r for r, n in enumerate(pe.obs["pert_name"])}
            embeddings[pk] = np.asarray(pe.X)[[pe_rows[v] for v in
                                               query.obs[pk].astype(str)]]
            with torch.no_grad():
                for c in covs:
                    enc = model.covars_encoder[c]
                    ids = torch.as_tensor([enc[v] for v in query.obs[c].astype(str)])
                    embeddings[c] = model.module.covars_embeddings[c](ids).reshape(
                        len(ids), -1).numpy()
        for cf in task["counterfactuals"]:
            (c, _v), = cf["do"].items()
            if c != pk:
                continue
            rows = np.asarray(cf["cells"], dtype=int)
            sub = query[rows].copy()
            src_obs = query.obs.iloc[rows]
            cfs[cf["name"]] = (expr(sub, C.cf_obs(query, cf)), expr(sub, src_obs))

    C.write_outputs(task, query, package_version=cpa.__version__, train_seconds=total_seconds,
                    epochs=total_epochs, n_train=train.n_obs, notes=notes,
                    embeddings=embeddings, reconstruction=recon, counterfactuals=cfs,
                    extra={"models": pert_concepts, "epochs_per_model": epochs_list})


if __name__ == "__main__":
    main()
