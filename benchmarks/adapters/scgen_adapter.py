"""scGen (``pertpy.tl.Scgen``, JAX) on a benchmark task; runs in the "scverse" peer venv.

usage: python scgen_adapter.py task.json   (see benchmarks/peers.py for the contract)

- Model: pertpy's scGen VAE on log1p(CP10k) expression. scGen's encoder and decoder do not see
  any label (the condition and cell-type keys only enter ``predict``'s latent arithmetic), so
  ONE trained VAE serves every intervened concept: ``setup_anndata`` registers
  batch_key = the first intervened concept and labels_key = "cell_type" (else the last concept).
- Embedding "latent": posterior mean of z. No per-concept embedding.
- Reconstruction: decoder output of the query cells' posterior mean z (deterministic, so the
  counterfactual pairs exactly).
- Counterfactual of concept c: scGen's latent vector arithmetic, per cell so rows stay paired
  with the query rows. For each source label s of c among the cells and the target t:
  delta(s->t) = mean z(training cells with c=t) - mean z(training cells with c=s), each group
  first balanced over labels_key and both subsampled to equal size, exactly as
  ``Scgen.predict`` does (with a seeded rng instead of pertpy's unseeded one); the cell's
  prediction = decode(z + delta(s->t)). ``layers["reconstructed"]`` = decode(z).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

N_LATENT = 100  # pertpy's defaults: n_hidden 800, n_latent 100, 2 layers, dropout 0.2


def main() -> None:
    task = C.load_task()
    C.set_seed(task["seed"])
    import anndata as ad
    import numpy as np
    import pertpy
    import scvi

    scvi.settings.seed = int(task["seed"])
    train, query = C.read_inputs(task)
    concepts = list(task["concepts"])
    labels_key = "cell_type" if "cell_type" in concepts else concepts[-1]
    cf_concepts = [next(iter(cf["do"])) for cf in task["counterfactuals"]]
    batch_key = cf_concepts[0] if cf_concepts else concepts[0]
    notes = [
        "trained on log1p(CP10k), pertpy defaults (n_hidden 800, n_latent 100)",
        "one VAE for all concepts (scGen's networks see no labels); per-cell counterfactual = "
        "decode(z + balanced mean-latent difference target - source), as Scgen.predict",
        f"balancing over labels_key={labels_key!r}",
        "reconstruction = decode(posterior mean z); decoder output (linear) clipped at 0",
    ]

    def mk(a):
        return ad.AnnData(X=a.layers[C.LOG_LAYER], obs=a.obs.copy(), var=a.var[[]].copy())

    tr, q = mk(train), mk(query)
    pertpy.tl.Scgen.setup_anndata(tr, batch_key=batch_key, labels_key=labels_key)
    model = pertpy.tl.Scgen(tr)
    trainer_kwargs = C.lightning_max_time(task["max_time"])
    with C.Timer() as t:
        model.train(max_epochs=int(task["max_epochs"]), batch_size=64, train_size=1.0,
                    early_stopping=False, accelerator="cpu", devices=1,
                    enable_progress_bar=False, **trainer_kwargs)
    hist = (model.history or {}).get("elbo_train") if hasattr(model, "history") else None
    epochs = int(len(hist)) if hist is not None else int(model.trainer.current_epoch)
    if epochs < int(task["max_epochs"]):
        notes.append(f"stopped after {epochs} of {task['max_epochs']} epochs by max_time")
    C.log(f"trained {epochs} epochs in {t.seconds:.1f} s")

    def decode(z):
        px = model.module.as_bound().generative(np.asarray(z, np.float32))["px"]
        return np.clip(np.asarray(px), 0, None)

    z_tr = model.get_latent_representation(tr)
    z_q = model.get_latent_representation(q)
    recon = decode(z_q)
    rng = np.random.default_rng(int(task["seed"]))

    def group_mean(c, value):
        """Mean latent of the training cells with c == value, balanced over labels_key."""
        idx = np.where(train.obs[c].astype(str).to_numpy() == value)[0]
        if len(idx) == 0:
            return None, 0
        if c != labels_key:
            lab = train.obs[labels_key].astype(str).to_numpy()[idx]
            classes = np.unique(lab)
            n_max = max(int((lab == k).sum()) for k in classes)
            idx = np.concatenate([rng.choice(idx[lab == k], n_max) for k in classes])
        return idx, len(idx)

    cfs = {}
    for cf in task["counterfactuals"]:
        (c, v), = cf["do"].items()
        v = str(v)
        rows = np.asarray(cf["cells"], dtype=int)
        src_vals = query.obs[c].astype(str).to_numpy()[rows]
        z = z_q[rows].copy()
        stim_idx, n_stim = group_mean(c, v)
        missing = 0
        for s in np.unique(src_vals):
            sel = src_vals == s
            if s == v:
                continue
            ctrl_idx, n_ctrl = group_mean(c, s)
            if stim_idx is None or ctrl_idx is None:
                missing += int(sel.sum())
                continue
            eq = min(n_ctrl, n_stim)
            a = rng.choice(ctrl_idx, eq, replace=False) if n_ctrl > eq else ctrl_idx
            b = rng.choice(stim_idx, eq, replace=False) if n_stim > eq else stim_idx
            delta = z_tr[b].mean(0) - z_tr[a].mean(0)
            z[sel] += delta
        if missing:
            notes.append(f"{cf['name']}: {missing} cells left unchanged, {c}={v!r} or their "
                         "source label has no training cells")
        cfs[cf["name"]] = (decode(z), decode(z_q[rows]))
    C.write_outputs(task, query, package_version=pertpy.__version__, train_seconds=t.seconds,
                    epochs=epochs, n_train=train.n_obs, notes=notes, embeddings={"latent": z_q},
                    reconstruction=recon, counterfactuals=cfs,
                    extra={"scgen_setup": {"batch_key": batch_key, "labels_key": labels_key}})


if __name__ == "__main__":
    main()
