"""CausCellModule: encoder -> exogenous tokens -> linear SCM -> heads, adversaries, diffusion.

Pure torch: no AnnData here. Inputs are log-normalised expression ``x`` ``(B, G)`` and integer
concept codes ``y`` ``(B, M)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import Denoiser, NoiseSchedule, sample
from .noise import CellNoise, draw_randn
from .scm import LabelSCM, LinearSCM


@dataclass
class ModuleConfig:
    """Architecture hyperparameters (stored with a saved model)."""

    n_genes: int
    n_classes: list[int]
    adjacency: list[list[float]]
    token_dim: int = 32
    hidden: int = 256
    width: int = 128
    depth: int = 2
    heads: int = 4
    n_queries: int = 4
    n_steps: int = 1000
    dropout: float = 0.1
    self_attention: bool = False
    global_cond: bool = True
    u_shuffle: float = 0.0  # share of training cells whose u token is swapped with another's
    anchor: bool = True  # add a learned prototype of the cell's label to each concept token
    t_power: float = 0.5  # training steps drawn as T * U**t_power; < 1 favours high noise
    standardize: bool = True  # diffuse per-gene standardised expression (equal weight per gene)
    u_dim: int | None = None  # entries of the u token that carry information (None: token_dim)
    u_residual: bool = False  # u encoded from the cell's residual from its labels' mean
    u_kl: float = 1.0  # multiplier of u's KL term

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LossWeights:
    """Weights of the averaged loss terms (each term is a mean, so weights compare)."""

    recon: float = 1.0
    concept: float = 1.0
    adversary: float = 1.0
    kl: float = 1.0  # ~ the ELBO weight on standardised genes; measured in benchmarks/ablation.py
    extra: dict = field(default_factory=dict)


@dataclass
class LossOutput:
    """What :meth:`CausCellModule.loss` returns: the weighted total, its averaged parts
    (``recon``, ``concept``, ``confusion``, ``kl``) and the sampled exogenous tokens, which
    the adversaries' step reads detached."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]
    eps: torch.Tensor


def mlp(n_in: int, n_hidden: int, n_out: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, n_hidden), nn.LayerNorm(n_hidden), nn.Mish(), nn.Dropout(dropout),
        nn.Linear(n_hidden, n_out),
    )


class CausCellModule(nn.Module):
    """The CausCell network. Token ``k < M`` is observed concept ``k``; token ``M`` is ``u``."""

    def __init__(self, config: ModuleConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.n_concepts = len(c.n_classes)
        self.n_tokens = self.n_concepts + 1
        self.encoder = nn.Sequential(
            nn.Linear(c.n_genes, c.hidden), nn.LayerNorm(c.hidden), nn.Mish(), nn.Dropout(c.dropout),
            nn.Linear(c.hidden, c.hidden), nn.LayerNorm(c.hidden), nn.Mish(),
            nn.Linear(c.hidden, self.n_tokens * c.token_dim * 2),
        )
        self.scm = LinearSCM(torch.tensor(c.adjacency))
        self.label_scm = LabelSCM(c.n_classes, torch.tensor(c.adjacency))
        self.heads = nn.ModuleList(mlp(c.token_dim, c.hidden // 2, k) for k in c.n_classes)
        self.prototypes = nn.ParameterList(
            nn.Parameter(torch.randn(k, c.token_dim) * (1.0 if c.anchor else 0.0),
                         requires_grad=c.anchor)
            for k in c.n_classes
        )
        # adversary (token k, label j): every exogenous token against every label but its own
        self.adv_pairs = [
            (k, j) for k in range(self.n_tokens) for j in range(self.n_concepts) if k != j
        ]
        self.adversaries = nn.ModuleList(
            mlp(c.token_dim, c.hidden // 2, c.n_classes[j]) for _, j in self.adv_pairs
        )
        self.denoiser = Denoiser(
            c.n_genes, self.n_tokens, c.token_dim, c.width, c.depth, c.heads, c.n_queries,
            c.self_attention, c.global_cond,
        )
        self.schedule = NoiseSchedule(c.n_steps)
        self.register_buffer("clip_max", torch.tensor(20.0))
        off = None  # (K, d) mask of u's unused entries
        if c.u_dim is not None and c.u_dim < c.token_dim:
            off = torch.zeros(self.n_tokens, c.token_dim, dtype=torch.bool)
            off[-1, c.u_dim:] = True
        self.register_buffer("u_off", off, persistent=False)
        self.u_encoder = None
        if c.u_residual:  # u's own encoder, of what the cell's label combination leaves
            self.u_encoder = nn.Sequential(
                nn.Linear(c.n_genes, c.hidden), nn.LayerNorm(c.hidden), nn.Mish(),
                nn.Linear(c.hidden, 2 * c.token_dim))
            n_combo = math.prod(c.n_classes)
            # running sums of the training cells' scaled expression per label and per
            # label combination (one row per combination, row-major over the concepts)
            self.register_buffer("label_sum", torch.zeros(sum(c.n_classes), c.n_genes))
            self.register_buffer("label_cnt", torch.zeros(sum(c.n_classes)))
            self.register_buffer("combo_sum", torch.zeros(n_combo, c.n_genes))
            self.register_buffer("combo_cnt", torch.zeros(n_combo))
            strides = [math.prod(c.n_classes[k + 1:]) for k in range(len(c.n_classes))]
            self.register_buffer("combo_stride", torch.tensor(strides), persistent=False)
            offsets = [sum(c.n_classes[:k]) for k in range(len(c.n_classes))]
            self.register_buffer("label_offset", torch.tensor(offsets), persistent=False)
        self.register_buffer("label_prior", torch.zeros(sum(c.n_classes)))
        # per-gene centre and scale of the diffused expression (identity until set_scale)
        self.register_buffer("x_mean", torch.zeros(c.n_genes))
        self.register_buffer("x_std", torch.ones(c.n_genes))

    def set_scale(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardise the diffused expression with these per-gene statistics (training
        data); a no-op with ``config.standardize=False``. Near-constant genes keep a floor
        scale so their noise never swamps the others."""
        if not self.config.standardize:
            return
        self.x_mean.copy_(mean.to(self.x_mean))
        floor = max(float(std.max()) * 1e-2, 1e-3)
        self.x_std.copy_(std.to(self.x_std).clamp(min=floor))

    def to_scaled(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_std

    def from_scaled(self, xs: torch.Tensor) -> torch.Tensor:
        return xs * self.x_std + self.x_mean

    def _clip_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Bounds ``[0, clip_max]`` of the expression, in the diffused (scaled) space."""
        return self.to_scaled(torch.zeros_like(self.x_mean)), self.to_scaled(
            self.clip_max.expand_as(self.x_mean))

    # -- parts -------------------------------------------------------------------------------
    def main_parameters(self):
        skip = {id(p) for p in self.adversaries.parameters()}
        skip |= {id(p) for p in self.label_scm.parameters()}  # fitted to labels, not trained
        return [p for p in self.parameters() if id(p) not in skip]

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance of the exogenous tokens, each ``(B, K, d)``.

        ``u``'s entries beyond ``config.u_dim`` are the prior's (mean 0, log-variance 0: no
        KL, no information) and :meth:`loss` sets their samples to 0: a narrow ``u`` holds
        what the labels do not explain and little of the labels. With
        ``config.u_residual`` ``u`` is encoded from the cell minus the mean of its label
        combination ``y`` ``(B, M)`` (the heads' labels when ``y`` is None)."""
        h = self.encoder(x).view(x.shape[0], self.n_tokens, 2, self.config.token_dim)
        if self.u_encoder is not None:
            if y is None:
                y = self.predicted_labels(h[:, :, 0])
            hu = self.u_encoder(self.to_scaled(x) - self.label_mean(y))
            h = torch.cat([h[:, :-1], hu.view(x.shape[0], 1, 2, -1)], 1)
        mu, logvar = h[:, :, 0], h[:, :, 1].clamp(-10.0, 10.0)
        if self.u_off is not None:
            mu = mu.masked_fill(self.u_off, 0.0)
            logvar = logvar.masked_fill(self.u_off, 0.0)
        return mu, logvar

    @torch.no_grad()
    def label_mean(self, y: torch.Tensor) -> torch.Tensor:
        """Mean scaled expression of the training cells with each row's label combination
        ``(B, G)``; where a combination was never seen, the additive model of the labels'
        means (global mean plus each label's difference from it)."""
        means = self.label_sum / self.label_cnt.clamp(min=1).unsqueeze(-1)
        k0 = self.config.n_classes[0]
        glob = self.label_sum[:k0].sum(0) / self.label_cnt[:k0].sum().clamp(min=1)
        additive = means[y + self.label_offset].sum(1) - (y.shape[1] - 1) * glob
        c = (y * self.combo_stride).sum(1)
        n = self.combo_cnt[c].unsqueeze(-1)
        return torch.where(n > 0, self.combo_sum[c] / n.clamp(min=1), additive)

    @torch.no_grad()
    def update_label_means(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add a training batch to the running per-label and per-combination sums (under
        DistributedDataParallel the buffers follow rank 0: the means of its shares)."""
        xs = self.to_scaled(x)
        c = (y * self.combo_stride).sum(1)
        self.combo_sum.index_add_(0, c, xs)
        self.combo_cnt.index_add_(0, c, torch.ones_like(c, dtype=xs.dtype))
        idx = (y + self.label_offset).reshape(-1)
        self.label_sum.index_add_(0, idx, xs.repeat_interleave(y.shape[1], 0))
        self.label_cnt.index_add_(0, idx, torch.ones_like(idx, dtype=xs.dtype))

    def tokens(self, eps: torch.Tensor) -> torch.Tensor:
        return self.scm(eps)

    def classify(self, resid: torch.Tensor) -> list[torch.Tensor]:
        """Logits of each observed concept from its encoded (exogenous) token."""
        return [head(resid[:, k]) for k, head in enumerate(self.heads)]

    def predicted_labels(self, resid: torch.Tensor) -> torch.Tensor:
        """The heads' most likely label of each concept ``(B, M)``."""
        return torch.stack([lg.argmax(-1) for lg in self.classify(resid)], 1)

    def anchor(self, resid: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exogenous tokens: the encoded part plus the prototype of each concept's label.

        With labels ``y`` ``(B, M)`` (abduction on annotated cells) the label's prototype is
        added; without, the heads' predicted probabilities weight the prototypes. With
        ``config.anchor=False`` the encoded part is returned unchanged (the paper's design).
        """
        if not self.config.anchor:
            return resid
        eps = resid.clone()
        logits = None if y is not None else self.classify(resid)
        for k, proto in enumerate(self.prototypes):
            if y is not None:
                eps[:, k] = eps[:, k] + proto[y[:, k]]
            else:
                eps[:, k] = eps[:, k] + logits[k].softmax(-1) @ proto
        return eps

    def priors(self) -> list[torch.Tensor]:
        return list(self.label_prior.split(self.config.n_classes))

    # -- losses ------------------------------------------------------------------------------
    def loss(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: LossWeights,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        """Main loss, its averaged parts, and the sampled encoded tokens (for the adversary)."""
        if self.training and self.u_encoder is not None:
            self.update_label_means(x, y)
        mu, logvar = self.encode(x, y)
        eps = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        if self.u_off is not None:
            eps = eps.masked_fill(self.u_off, 0.0)
        z = self.tokens(self.anchor(eps, y))
        if self.training and self.config.u_shuffle > 0:
            # some cells get another cell's u: the decoder must read labels from the concepts
            swap = torch.rand(x.shape[0], device=x.device) < self.config.u_shuffle
            perm = torch.randperm(x.shape[0], device=x.device)
            z = z.clone()
            z[swap, -1] = z[perm[swap], -1]
        concept = torch.stack(
            [F.cross_entropy(lg, y[:, k]) for k, lg in enumerate(self.classify(eps))]
        ).mean()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
        if self.config.u_kl != 1.0:  # u's KL term weighted on its own
            kl = torch.cat([kl[:, :-1], kl[:, -1:] * self.config.u_kl], 1)
        kl = kl.mean()
        priors = self.priors()
        confusion = torch.stack([
            soft_cross_entropy(adv(eps[:, k]), priors[j])
            for (k, j), adv in zip(self.adv_pairs, self.adversaries)
        ]).mean()
        u = torch.rand(x.shape[0], device=x.device) ** self.config.t_power
        t = (u * self.schedule.n_steps).long().clamp(max=self.schedule.n_steps - 1)
        xs = self.to_scaled(x)
        noise = torch.randn_like(xs)
        x0_hat = self.denoiser(self.schedule.add_noise(xs, t, noise), t, z)
        recon = F.mse_loss(x0_hat, xs)
        total = (
            weights.recon * recon
            + weights.concept * concept
            + weights.adversary * confusion
            + weights.kl * kl
        )
        parts = {"recon": recon, "concept": concept, "confusion": confusion, "kl": kl}
        return LossOutput(total, parts, eps)

    def adversary_loss(self, eps: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the adversaries on detached tokens (their own update)."""
        eps = eps.detach()
        return torch.stack([
            F.cross_entropy(adv(eps[:, k]), y[:, j])
            for (k, j), adv in zip(self.adv_pairs, self.adversaries)
        ]).mean()

    # -- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def expected(self, z: torch.Tensor, n_draws: int = 8,
                 generator: torch.Generator | CellNoise | None = None) -> torch.Tensor:
        """Expected expression ``E[x0 | z]``: the x0-prediction at the last (pure-noise) step,
        averaged over ``n_draws`` noise draws (the denoiser is trained by MSE, so there it
        estimates the conditional mean); ``generator`` as in :func:`~.diffusion.sample`."""
        t = torch.full((z.shape[0],), self.schedule.n_steps - 1, device=z.device,
                       dtype=torch.long)
        acc = torch.zeros((z.shape[0], self.config.n_genes), device=z.device)
        for _ in range(n_draws):
            noise = draw_randn(generator, (z.shape[0], self.config.n_genes), z.device)
            acc += self.from_scaled(self.denoiser(noise, t, z)).clamp(0.0, float(self.clip_max))
        return acc / n_draws

    def generate(
        self,
        z: torch.Tensor,
        sampler: str = "ddim",
        steps: int = 20,
        generator: torch.Generator | CellNoise | None = None,
        progress=None,
    ) -> torch.Tensor:
        xs = sample(
            self.denoiser, self.schedule, z, self.config.n_genes, sampler, steps, generator,
            clip=self._clip_bounds(), progress=progress,
        )
        return self.from_scaled(xs).clamp(0.0, float(self.clip_max))


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a fixed distribution (minimal when the adversary learns nothing)."""
    return -(F.log_softmax(logits, dim=-1) * target_probs).sum(-1).mean()
