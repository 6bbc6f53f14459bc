"""Abduction, action, prediction and transport: one ``do()`` on a set of cells."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._constants import MEAN_DRAWS
from ..errors import ConceptError
from ..model.noise import CellNoise, cell_keys

# streams of per-cell noise (model.noise.CellNoise): one per use, so no two share numbers
LABELS, DONORS, SWITCHED, SAMPLER, TRANSPORT = 1, 2, 3, 4, 5


def noise_for(keys: np.ndarray, seed: int, use: int, sample: int = 0) -> CellNoise:
    """The per-cell noise of draw ``sample`` for one ``use`` (a stream constant)."""
    return CellNoise(keys, seed, (use, sample))


@dataclass
class Abduction:
    """The cells as the model sees them: encoded parts, label codes, tokens."""

    resid: torch.Tensor  # posterior means of the encoded tokens (n, K, d)
    y: torch.Tensor  # label codes (n, M): obs, or the heads' predictions
    eps0: torch.Tensor  # exogenous tokens, anchored on the labels
    z0: torch.Tensor  # endogenous tokens (after the SCM)
    keys: np.ndarray  # one uint64 per cell (its obs name): keys its random streams


@dataclass
class Action:
    """One counterfactual draw: new labels and tokens."""

    y_cf: torch.Tensor
    eps: torch.Tensor  # exogenous tokens, switched labels' replaced by donors'
    z: torch.Tensor  # tokens after do() and the SCM
    values: dict[int, torch.Tensor]  # the intervened concepts' tokens
    kept: torch.Tensor  # (n, M): label kept for lack of training evidence
    unsupported: float | None = None  # share of cells with a kept label (propagate="labels")
    switched: float = 0.0  # share of cells whose descendant label changed
    held_unseen: float = 0.0  # share of cells whose held label was never seen with new parents
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def encode(model, source, y: torch.Tensor | None = None, batch_size: int = 2048
           ) -> torch.Tensor:
    """Posterior means of the encoded tokens ``(n, K, d)``, read chunk-wise from ``source``
    (an :class:`~napari_causcell.data.stream.ExpressionSource`); ``y`` the cells' label codes
    where known."""
    model.module.eval()
    enc = model.module.encode
    out = [enc(torch.from_numpy(b).to(model.device),
               None if y is None else y[torch.from_numpy(r).to(y.device)])[0]
           for r, b in source.chunks(size=batch_size)]
    return torch.cat(out)


@torch.no_grad()
def exogenous(model, adata, source, use_labels: bool | None = None) -> torch.Tensor:
    """Exogenous tokens, anchored on the labels when obs has every concept column
    (``use_labels=None``; ``True`` requires them), else on the heads' predictions."""
    has = all(c in adata.obs for c in model.concepts)
    if use_labels or (use_labels is None and has):
        y = torch.from_numpy(model.concept_space.encode(adata.obs)).to(model.device)
        return model.module.anchor(encode(model, source, y=y), y)
    return model.module.anchor(encode(model, source))


@torch.no_grad()
def abduct(model, adata, source) -> Abduction:
    """Encode the cells; labels from obs when every concept column is there, else from the
    heads (their soft prototypes anchor the tokens, as in ``reconstruct``)."""
    labelled = all(c in adata.obs for c in model.concepts)
    y_obs = (torch.from_numpy(model.concept_space.encode(adata.obs)).to(model.device)
             if labelled else None)
    resid = encode(model, source, y=y_obs)
    y = y_obs if labelled else model.module.predicted_labels(resid)
    eps0 = model.module.anchor(resid, y if labelled else None)
    return Abduction(resid, y, eps0, model.module.tokens(eps0), cell_keys(adata.obs_names))


@torch.no_grad()
def act(model, ab: Abduction, do: dict[str, Any], *, desc_k: list[int], donor: str,
        hard: bool, propagate: str, seed: int, sample: int = 0,
        hold: tuple[str, ...] = ()) -> Action:
    """``do()``: descendants' labels through the label SCM with each cell's own abducted
    noise (``propagate="labels"``), donor tokens for switched labels and the intervened
    concepts, then the token SCM (``hard``: edges into the intervened concepts cut).
    Concepts in ``hold`` keep each cell's own label and exogenous token; their endogenous
    token follows the new parents through the token SCM, as for a cell with that label
    under those parents in training ("this cell, with its type, in the new domain"); a held
    label never seen with its new parents is marked ``kept`` (transported, as any unseen
    combination). Every random choice is drawn from the cell's own stream."""
    mod, concepts = model.module, model.concepts
    do_codes = {concepts.index(c): model.concept_space.code(c, v) for c, v in do.items()}
    held = {concepts.index(c): ab.y[:, concepts.index(c)] for c in hold}
    y_cf, eps = ab.y.clone(), ab.eps0.clone()
    for k, code in do_codes.items():
        y_cf[:, k] = code
    kept = torch.zeros_like(ab.y, dtype=torch.bool)
    unsupported = None
    if propagate == "labels":
        noise = mod.label_scm.abduct(ab.y, noise_for(ab.keys, seed, LABELS, sample))
        y_cf, kept = mod.label_scm.counterfactual(ab.y, {**do_codes, **held}, noise)
        unsupported = float(kept.any(-1).float().mean())
        for k in desc_k:
            moved = torch.nonzero(y_cf[:, k] != ab.y[:, k]).flatten()
            for code in y_cf[moved, k].unique().tolist():
                rows = moved[y_cf[moved, k] == code]
                pick = noise_for(ab.keys[rows.cpu().numpy()], seed, SWITCHED, sample).child(k)
                eps[rows, k] = _switched_token(model, k, code, ab.resid[rows, k], donor, pick)
    switched = (float((y_cf[:, desc_k] != ab.y[:, desc_k]).any(-1).float().mean())
                if desc_k else 0.0)
    kind, n = ("z" if hard else "eps"), ab.y.shape[0]
    picks = noise_for(ab.keys, seed, DONORS, sample)
    values = {k: model.donors.value(concepts[k], do[concepts[k]], kind, donor, n,
                                    picks.child(k)).to(model.device) for k in do_codes}
    z = mod.scm.intervene(eps, values, hard=hard)
    unseen = _held_unseen(mod.label_scm, held, y_cf)
    return Action(y_cf, eps, z, values, kept | unseen, unsupported, switched,
                  float(unseen.any(-1).float().mean()) if len(unseen) else 0.0)


def _held_unseen(scm, held: dict[int, torch.Tensor], y_cf: torch.Tensor) -> torch.Tensor:
    """``(n, M)`` mask: the held label was never seen in training with its new parents."""
    unseen = torch.zeros_like(y_cf, dtype=torch.bool)
    for k, own in held.items():
        if scm.parents[k]:
            unseen[:, k] = ~scm.seen_with_parents(k, y_cf, own)
    return unseen


def _switched_token(model, k: int, code: int, resid: torch.Tensor, donor: str,
                    pick: CellNoise) -> torch.Tensor:
    """Exogenous token of concept ``k`` for cells whose label became ``code``: a donor's,
    or without donors the cells' own encoded part plus the new label's prototype."""
    name = model.concepts[k]
    label = model.concept_space.categories[name][code]
    try:
        return model.donors.value(name, label, "eps", donor, len(resid), pick).to(model.device)
    except ConceptError:
        mod = model.module
        return resid + mod.prototypes[k][code] if mod.config.anchor else resid


@torch.no_grad()
def predict(module, z: torch.Tensor, sampler: str, steps: int, noise: CellNoise,
            batch_size: int, progress: Callable[[float], Any] | None = None) -> np.ndarray:
    """Expression generated from tokens ``z``: the expected value (``sampler="mean"``) or
    one sample per cell (``"ddim"``, ``"ddpm"``), each row from its own ``noise`` (so a
    row's result does not depend on the batch); ``progress(fraction)`` after each step."""
    starts = range(0, z.shape[0], batch_size)
    parts = []
    for b, i in enumerate(starts):
        step = None
        if progress is not None:
            def step(done, total, b=b):  # fraction of this call's work
                progress((b + done / total) / len(starts))
        g = noise.rows(slice(i, i + batch_size))
        if sampler == "mean":
            parts.append(module.expected(z[i : i + batch_size], MEAN_DRAWS, g))
            if step is not None:
                step(1, 1)
        else:
            parts.append(module.generate(z[i : i + batch_size], sampler, steps, g, step))
    return torch.cat(parts).cpu().numpy().astype(np.float32)


@torch.no_grad()
def transport(model, ab: Abduction, action: Action, *, hard: bool, donor: str,
              seed: int, sample: int, gen_args: tuple, noise: CellNoise) -> np.ndarray:
    """Change of the cells with an unsupported label (``action.kept``): the mean, weighted
    by training frequency, of their change when that label is replaced by each label seen
    with both their factual and their counterfactual parent labels (NaN where none was).
    ``noise``: the cells' sampler noise; donors drawn from each cell's own stream."""
    kept = action.kept
    rows = torch.nonzero(kept.any(-1)).flatten()
    acc = np.zeros((len(rows), model.module.config.n_genes), np.float32)
    total = np.zeros(len(rows), np.float32)
    for j in torch.nonzero(kept.any(0)).flatten().tolist():
        sub = rows[kept[rows, j]]
        pos = torch.searchsorted(rows, sub).cpu().numpy()
        for w, ok, change in _label_changes(model, ab, action, j, sub, hard, donor, seed,
                                            sample, gen_args, noise):
            at = pos[ok.cpu().numpy()]
            acc[at] += w * change
            total[at] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return acc / total[:, None]


def _label_changes(model, ab, action, j, sub, hard, donor, seed, sample, gen_args, noise):
    """For each label of concept ``j`` seen with both parent sets of some of the cells
    ``sub``: ``(training frequency, mask of those cells, their change)``."""
    mod, name = model.module, model.concepts[j]
    scm, priors = mod.label_scm, mod.priors()
    y, y_cf = ab.y, action.y_cf
    for code, label in enumerate(model.concept_space.categories[name]):
        ok = scm.seen_with_parents(j, y[sub], code) & scm.seen_with_parents(j, y_cf[sub], code)
        w = float(priors[j][code])
        if not bool(ok.any()) or w <= 0 or f"{name}={label}" not in model.donors:
            continue
        cells = sub[ok]
        pick = noise_for(ab.keys[cells.cpu().numpy()], seed, TRANSPORT, sample).child(j, code)
        tok = model.donors.value(name, label, "eps", donor, len(cells), pick).to(model.device)
        e1, e0 = action.eps[cells].clone(), ab.eps0[cells].clone()
        e1[:, j], e0[:, j] = tok, tok
        vals = {k: v if v.dim() == 1 else v[cells] for k, v in action.values.items()}
        own = noise.rows(cells)
        z1 = mod.scm.intervene(e1, vals, hard=hard)
        change = (predict(mod, z1, *gen_args[:2], own, gen_args[2])
                  - predict(mod, mod.tokens(e0), *gen_args[:2], own, gen_args[2]))
        yield w, ok, change


@dataclass
class Draw:
    """One counterfactual sample of every cell."""

    action: Action
    generated: np.ndarray
    reconstructed: np.ndarray
    extrapolated: np.ndarray


def run(model, ab: Abduction, do: dict[str, Any], *, desc_k: list[int], donor: str,
        hard: bool, propagate: str, unseen: str, sampler: str, steps: int, n_samples: int,
        seed: int, batch_size: int, progress: Callable[[float], Any] | None,
        hold: tuple[str, ...] = ()) -> list[Draw]:
    """``n_samples`` counterfactual draws: each with its own donors, label noise and sampler
    noise, paired with the cells generated without intervention from the same noise. All
    noise is per cell (keyed by ``seed``, the draw and the cell's obs name): a cell's answer
    does not depend on which other cells are selected, their order or the batch size."""
    passes, draws = 2 * n_samples, []

    def part(k):  # progress of pass k out of ``passes``
        return None if progress is None else (lambda f: progress((k + f) / passes))

    for s in range(n_samples):
        action = act(model, ab, do, desc_k=desc_k, donor=donor, hard=hard,
                     propagate=propagate, seed=seed, sample=s, hold=hold)
        noise = noise_for(ab.keys, seed, SAMPLER, s)
        gen_args = (sampler, steps, batch_size)
        gen = predict(model.module, action.z, sampler, steps, noise, batch_size, part(2 * s))
        # the same cell without intervention, same noise: cancels decoder bias
        recon = predict(model.module, ab.z0, sampler, steps, noise, batch_size,
                        part(2 * s + 1))
        extrapolated = np.zeros(ab.y.shape[0], bool)
        if unseen != "decoder" and bool(action.kept.any()):
            idx = torch.nonzero(action.kept.any(-1)).flatten().cpu().numpy()
            change = transport(model, ab, action, hard=hard, donor=donor, seed=seed,
                               sample=s, gen_args=gen_args, noise=noise)
            ok = np.isfinite(change).all(1)
            w = 0.5 if unseen == "blend" else 1.0  # blend: half transported, half decoder
            at = idx[ok]
            gen[at] = w * (recon[at] + change[ok]) + (1 - w) * gen[at]
            extrapolated[at] = True
        draws.append(Draw(action, gen, recon, extrapolated))
    return draws
