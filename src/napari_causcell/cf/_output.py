"""The counterfactual AnnData: expression layers, counterfactual obs, provenance."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._utils import warn_user
from .._keys import Key
from ._engine import Draw


def share(x: float) -> str:
    """A share as a percentage that never reads 0 % or 100 % when it is neither."""
    if 0 < x < 0.01:
        return f"{x:.2%}" if x >= 1e-4 else "under 0.01%"
    return f"{x:.0%}" if x == 1 or x < 0.995 else "over 99.5%"


def cf_obs(model, adata: ad.AnnData, y, y_cf, desc: list[str], s: int,
           n_samples: int) -> pd.DataFrame:
    """obs of one counterfactual sample: counterfactual labels, factual descendants."""
    obs = adata.obs.copy()
    y_np, cf_np = y.cpu().numpy(), y_cf.cpu().numpy()
    for k, name in enumerate(model.concepts):
        cats = model.concept_space.categories[name]
        if name in desc:
            obs[Key.obs.factual(name)] = pd.Categorical.from_codes(y_np[:, k], categories=cats)
        if name in desc or (cf_np[:, k] != y_np[:, k]).any() or name not in obs:
            obs[name] = pd.Categorical.from_codes(cf_np[:, k], categories=cats)
    obs[Key.obs.SOURCE_ID] = adata.obs_names.astype(str).to_numpy()
    obs[Key.obs.SAMPLE] = s
    obs.index = [f"{i}-cf{s}" if n_samples > 1 else str(i) for i in adata.obs_names]
    return obs


def assemble(model, adata: ad.AnnData, factual: np.ndarray, y, draws: list[Draw],
             settings: dict[str, Any], desc: list[str]) -> ad.AnnData:
    """The AnnData of :meth:`CausCell.counterfactual` from its draws."""
    n_samples = len(draws)
    obs_parts = []
    for s, d in enumerate(draws):
        obs = cf_obs(model, adata, y, d.action.y_cf, desc, s, n_samples)
        obs[Key.obs.EXTRAPOLATED] = d.extrapolated
        obs_parts.append(obs)
    gen = np.concatenate([d.generated for d in draws])
    recon = np.concatenate([d.reconstructed for d in draws])
    out = ad.AnnData(gen, obs=pd.concat(obs_parts), var=pd.DataFrame(index=list(model.genes)))
    if "spatial" in adata.obsm:
        out.obsm["spatial"] = np.tile(np.asarray(adata.obsm["spatial"]), (n_samples, 1))
    out.layers[Key.layers.FACTUAL] = np.tile(factual, (n_samples, 1))
    out.layers[Key.layers.RECONSTRUCTED] = recon
    out.layers[Key.layers.DELTA] = gen - recon
    unsupported = [d.action.unsupported for d in draws if d.action.unsupported is not None]
    out.uns[Key.uns.CAUSCELL] = {
        "kind": "counterfactual", **settings,
        "output": "expected" if settings["sampler"] == "mean" else "sample",
        "descendants": desc, "switched": float(np.mean([d.action.switched for d in draws])),
        "unsupported": float(np.mean(unsupported)) if unsupported else 0.0,
        "held_unseen": float(np.mean([d.action.held_unseen for d in draws])),
    }
    held_unseen = out.uns[Key.uns.CAUSCELL]["held_unseen"]
    if held_unseen > 0:
        warn_user(
            f"{share(held_unseen)} of the cells keep a held label ({', '.join(settings['hold'])})"
            f" never seen in training with the new labels under do({settings['do']}) "
            "(uns['causcell']['held_unseen']): "
            + _unseen_text(settings["unseen"])[2:],
            UserWarning)
    if unsupported and np.mean(unsupported) > 0:
        warn_user(
            f"{share(np.mean(unsupported))} of the cells have a label never seen in training "
            f"with the new parent labels under do({settings['do']}); they keep their label "
            "(uns['causcell']['unsupported'])"
            + _unseen_text(settings["unseen"]),
            UserWarning)
    return out


def _unseen_text(unseen: str) -> str:
    """How the change of an unseen combination was made (the end of a warning)."""
    if unseen == "decoder":
        return "; the decoder extrapolates for them."
    what = {"average": "averaged over the labels seen with both parent labels",
            "blend": "the mean of the decoder's own and the change averaged over the labels "
                     "seen with both parent labels"}.get(unseen, f"made by unseen={unseen!r}")
    return f"; their change is {what} (obs['extrapolated'])."
