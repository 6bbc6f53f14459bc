"""x0-predicting conditional diffusion: schedule, cross-attention denoiser, samplers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .noise import CellNoise, draw_randn


class NoiseSchedule(nn.Module):
    """DDPM schedule, betas ``linspace(sqrt(beta_1), sqrt(beta_T), T)**2``."""

    def __init__(self, n_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2):
        super().__init__()
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, n_steps, dtype=torch.float64) ** 2
        abar = torch.cumprod(1.0 - betas, dim=0)
        self.n_steps = n_steps
        self.register_buffer("betas", betas.float())
        self.register_buffer("abar", abar.float())

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        ab = self.abar[t].unsqueeze(-1)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps, any ``dim`` (odd sizes padded)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / max(half, 1))
    args = t.float().unsqueeze(-1) * freqs
    emb = torch.cat([args.sin(), args.cos()], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class GEGLU(nn.Module):
    def __init__(self, dim: int, mult: int = 2) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim * mult * 2)
        self.out = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(a * F.gelu(gate))


class CrossAttentionBlock(nn.Module):
    """Pre-norm block: self-attention over query tokens, cross-attention to concepts, GEGLU."""

    def __init__(self, width: int, heads: int, ff_mult: int = 2, self_attention: bool = True):
        super().__init__()
        self.self_attn = None
        if self_attention:
            self.norm_self = nn.LayerNorm(width)
            self.self_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm_q = nn.LayerNorm(width)
        self.norm_kv = nn.LayerNorm(width)
        self.cross_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = GEGLU(width, ff_mult)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.self_attn is not None:
            q = self.norm_self(h)
            h = h + self.self_attn(q, q, q, need_weights=False)[0]
        kv = self.norm_kv(cond)
        h = h + self.cross_attn(self.norm_q(h), kv, kv, need_weights=False)[0]
        return h + self.ff(self.norm_ff(h))


class Denoiser(nn.Module):
    """Predicts ``x0`` from ``(x_t, t)`` with cross-attention to the concept tokens.

    The noisy profile is projected to ``n_queries`` tokens of width ``width``; parameters grow
    linearly with the number of genes (two projections), not quadratically.
    """

    def __init__(
        self,
        n_genes: int,
        n_tokens: int,
        token_dim: int,
        width: int = 128,
        depth: int = 2,
        heads: int = 4,
        n_queries: int = 4,
        self_attention: bool = True,
        global_cond: bool = True,
    ) -> None:
        super().__init__()
        self.n_queries, self.width = n_queries, width
        self.inp = nn.Linear(n_genes, n_queries * width)
        self.query_pos = nn.Parameter(torch.randn(n_queries, width) * 0.02)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.cond = nn.Linear(token_dim, width)
        self.token_type = nn.Parameter(torch.randn(n_tokens, width) * 0.02)
        # global conditioning: all tokens, flattened, added to the time embedding
        self.global_cond = nn.Linear(n_tokens * token_dim, width) if global_cond else None
        self.blocks = nn.ModuleList(
            CrossAttentionBlock(width, heads, self_attention=self_attention) for _ in range(depth)
        )
        self.norm_out = nn.LayerNorm(width)
        self.out = nn.Linear(n_queries * width, n_genes)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        b = x_t.shape[0]
        h = self.inp(x_t).view(b, self.n_queries, self.width) + self.query_pos
        emb = self.time(timestep_embedding(t, self.width))
        if self.global_cond is not None:
            emb = emb + self.global_cond(z.reshape(b, -1))
        h = h + emb.unsqueeze(1)
        cond = self.cond(z) + self.token_type
        for block in self.blocks:
            h = block(h, cond)
        return self.out(self.norm_out(h).reshape(b, -1))


def _timesteps(schedule: NoiseSchedule, sampler: str, steps: int) -> list[int]:
    """The steps visited, from ``T - 1`` down to 0: all for DDPM, ``steps`` for DDIM."""
    T = schedule.n_steps
    if sampler == "ddpm":
        return list(range(T - 1, -1, -1))
    if sampler == "ddim":
        if not 1 <= steps <= T:
            raise ValueError(f"steps must be in 1..{T}, got {steps}")
        return torch.linspace(T - 1, 0, steps).round().long().unique_consecutive().tolist()
    raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")


def _ddpm_step(schedule: NoiseSchedule, x: torch.Tensor, x0: torch.Tensor, t: int,
               t_prev: int, ab_t: torch.Tensor, ab_prev: torch.Tensor,
               randn: Callable[[Any], torch.Tensor]) -> torch.Tensor:
    """One step of the posterior ``q(x_{t-1} | x_t, x0)``; noise added except at the end."""
    beta_t = schedule.betas[t]
    coef0 = ab_prev.sqrt() * beta_t / (1 - ab_t)
    coeft = (1 - beta_t).sqrt() * (1 - ab_prev) / (1 - ab_t)
    mean = coef0 * x0 + coeft * x
    if t_prev < 0:
        return mean
    var = beta_t * (1 - ab_prev) / (1 - ab_t)
    return mean + var.sqrt() * randn(x.shape)


def _ddim_step(x: torch.Tensor, x0: torch.Tensor, t_prev: int, ab_t: torch.Tensor,
               ab_prev: torch.Tensor, eta: float,
               randn: Callable[[Any], torch.Tensor]) -> torch.Tensor:
    """One DDIM step to ``t_prev`` (``x0`` itself at the end); noise only with ``eta > 0``."""
    if t_prev < 0:
        return x0
    eps = (x - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()
    sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).sqrt()
    x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        x = x + sigma * randn(x.shape)
    return x


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    z: torch.Tensor,
    n_genes: int,
    sampler: str = "ddim",
    steps: int = 20,
    generator: torch.Generator | CellNoise | None = None,
    clip: tuple[float, float] | None = None,
    eta: float = 0.0,
    progress: Callable[[int, int], Any] | None = None,
) -> torch.Tensor:
    """Generate ``x0`` for each row of ``z`` with DDPM (all T steps) or DDIM (``steps``).

    ``generator`` (on ``z``'s device, or CPU) makes the draw reproducible; a
    :class:`~.noise.CellNoise` gives each row its own noise, whatever the other rows. ``clip`` bounds the
    predicted ``x0`` at every step (log-normalised data are non-negative). ``progress`` is
    called as ``progress(done, total)`` after every step.
    """
    n, dev = z.shape[0], z.device
    times = _timesteps(schedule, sampler, steps)

    def randn(shape):
        return draw_randn(generator, shape, dev)

    x = randn((n, n_genes))
    abar = schedule.abar
    for i, t in enumerate(times):
        tt = torch.full((n,), t, device=dev, dtype=torch.long)
        x0 = denoiser(x, tt, z)
        if clip is not None:
            x0 = x0.clamp(*clip)
        if progress is not None:
            progress(i + 1, len(times))
        t_prev = times[i + 1] if i + 1 < len(times) else -1
        ab_t = abar[t]
        ab_prev = abar[t_prev] if t_prev >= 0 else torch.ones((), device=dev)
        if sampler == "ddpm" and t_prev == t - 1:
            x = _ddpm_step(schedule, x, x0, t, t_prev, ab_t, ab_prev, randn)
        else:
            x = _ddim_step(x, x0, t_prev, ab_t, ab_prev, eta, randn)
    return x
