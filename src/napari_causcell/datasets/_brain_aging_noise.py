"""The exogenous noise of :func:`brain_aging` and the structural equations that turn it into
labels and counts.

Every random number is drawn in :func:`_draw_noise`, in a fixed order that does not depend on
any label; the labels (domain, cell type) and the counts are deterministic functions of the
noise and the parameters, so :func:`brain_aging_truth` can recompute a cell under an
intervention with the same noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SettingError
from ._brain_aging_params import (
    _AGE_GENE_PROGRAMME,
    _AGE_GENES,
    _AGE_SCALE,
    _BAND_BOTTOMS,
    _BAND_CURVE,
    _BASE_AGE,
    _BASE_DOMAIN,
    _BASE_MARKER,
    _BROAD_FRACTION,
    _BROAD_SD,
    _DOMAIN_MARKERS,
    _MARKERS,
    _MIN_GENES,
    _N_LATENT,
    _NAMED_GENES,
    _PLANTED,
    _SECTION_H,
    _SECTION_W,
    _VENTRICLE,
    CELL_TYPES,
    DOMAINS,
    _type_segments,
)

_LN2 = np.log(2.0)


@dataclass
class _Noise:
    """All exogenous randomness of one simulation (depends only on the parameters)."""

    genes: list[str]
    gene_class: np.ndarray  # (G,) str
    log_base: np.ndarray  # (G,) natural-log baseline mean
    type_prog: np.ndarray  # (T, G) natural-log cell-type programme
    domain_prog: np.ndarray  # (D, G)
    age_eff: np.ndarray  # (D, T, G) natural-log full (90wk) age effect
    loadings: np.ndarray  # (K, G) latent-factor loadings
    batch: np.ndarray  # (M, G) per-mouse offsets
    r: np.ndarray  # (G,) NB size = 1 / dispersion
    mouse: np.ndarray  # (N,) mouse index
    xy_local: np.ndarray  # (N, 2) within-section coordinates
    u_type: np.ndarray  # (N,)
    z: np.ndarray  # (N, K)
    log_lib: np.ndarray  # (N,)
    u_counts: np.ndarray  # (N, G)


def _check_params(n_cells: int, n_genes: int, n_mice_per_age: int) -> None:
    if int(n_genes) < _MIN_GENES:
        raise SettingError(f"n_genes must be >= {_MIN_GENES}, got {n_genes}")
    if int(n_mice_per_age) < 1:
        raise SettingError(f"n_mice_per_age must be >= 1, got {n_mice_per_age}")
    if int(n_cells) < 3 * int(n_mice_per_age):
        raise SettingError(f"n_cells must be >= 3 * n_mice_per_age, got {n_cells}")


def _gene_names(n_genes: int) -> tuple[list[str], np.ndarray]:
    """Gene names (the named genes, then ``Gene_###`` fillers) and each gene's class."""
    n_filler = n_genes - len(_NAMED_GENES)
    genes = _NAMED_GENES + [f"Gene_{i:03d}" for i in range(1, n_filler + 1)]
    marker_set = {g for p in _MARKERS.values() for g in p}
    domain_set = {g for p in _DOMAIN_MARKERS.values() for g in p}
    gene_class = np.array(
        [
            "marker" if g in marker_set else "domain" if g in domain_set
            else "age" if g in _AGE_GENES else "filler"
            for g in genes
        ],
        dtype=object,
    )
    return genes, gene_class


def _draw_genes(rng: np.random.Generator, G: int, K: int, M: int) -> dict[str, np.ndarray]:
    """Gene-level random parameters (first in the draw order; the order is fixed)."""
    n_filler, T = G - len(_NAMED_GENES), len(CELL_TYPES)
    out = {}
    out["filler_log_base"] = rng.normal(np.log(0.6), 0.9, size=n_filler)
    out["filler_type_prog"] = rng.normal(0.0, 0.4, size=(T, n_filler))
    load_mask = rng.random((K, G)) < 0.25
    load_val = rng.normal(0.0, 0.35, size=(K, G))
    out["loadings"] = load_mask * load_val
    out["batch"] = rng.normal(0.0, 0.1, size=(M, G))
    out["r"] = 1.0 / rng.uniform(0.2, 0.5, size=G)  # NB size = 1 / dispersion
    return out


def _draw_cells(rng: np.random.Generator, N: int, G: int, K: int) -> dict[str, np.ndarray]:
    """Cell-level random draws (after the gene-level ones; the order is fixed)."""
    out = {}
    out["xy_local"] = rng.random((N, 2)) * np.array([_SECTION_W, _SECTION_H])
    out["u_type"] = rng.random(N)
    out["z"] = rng.normal(size=(N, K))
    out["log_lib"] = rng.normal(0.0, 0.3, size=N)
    out["u_counts"] = rng.random((N, G))
    return out


def _baseline(gidx: dict[str, int], G: int, filler_log_base: np.ndarray) -> np.ndarray:
    """Natural-log baseline mean of every gene (named genes fixed, fillers drawn)."""
    n_named = len(_NAMED_GENES)
    log_base = np.empty(G)
    log_base[:n_named] = np.log(_BASE_MARKER)
    for d_prog in _DOMAIN_MARKERS.values():
        for g in d_prog:
            log_base[gidx[g]] = np.log(_BASE_DOMAIN)
    for g, b in _BASE_AGE.items():
        log_base[gidx[g]] = np.log(b)
    log_base[n_named:] = filler_log_base
    return log_base


def _programmes(
    gidx: dict[str, int], G: int, filler_type_prog: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Natural-log cell-type (T, G) and domain (D, G) programmes and the planted full
    (90wk) age effects (D, T, G), before the broad ageing programme."""
    T, D = len(CELL_TYPES), len(DOMAINS)
    type_prog = np.zeros((T, G))
    domain_prog = np.zeros((D, G))
    age_eff = np.zeros((D, T, G))
    for t, prog in _MARKERS.items():
        for g, fc in prog.items():
            type_prog[CELL_TYPES.index(t), gidx[g]] = fc * _LN2
    for d, prog in _DOMAIN_MARKERS.items():
        for g, fc in prog.items():
            domain_prog[DOMAINS.index(d), gidx[g]] = fc * _LN2
    for g, prog in _AGE_GENE_PROGRAMME.items():
        for t, fc in prog.items():
            type_prog[CELL_TYPES.index(t), gidx[g]] = fc * _LN2
    type_prog[:, len(_NAMED_GENES):] = filler_type_prog
    striatum = DOMAINS.index("Striatum")
    for g, t, fc, fc_str in _PLANTED:
        age_eff[:, CELL_TYPES.index(t), gidx[g]] = fc * _LN2
        age_eff[striatum, CELL_TYPES.index(t), gidx[g]] = fc_str * _LN2
    return type_prog, domain_prog, age_eff


def _broad_ageing(seed: int, G: int) -> tuple[np.ndarray, np.ndarray]:
    """Broad ageing programme shared by all cell types, on a quarter of the filler genes.

    Drawn from its own stream (``default_rng([seed, 1])``) so the main draws keep their
    values. Returns the natural-log effect per gene (G,) and the mask of chosen fillers.
    """
    n_named = len(_NAMED_GENES)
    broad_rng = np.random.default_rng([int(seed), 1])
    broad = np.zeros(G)
    chosen = broad_rng.random(G - n_named) < _BROAD_FRACTION
    broad[n_named:][chosen] = broad_rng.normal(0.0, _BROAD_SD, size=int(chosen.sum()))
    return broad * _LN2, chosen


def _draw_noise(n_cells: int, n_genes: int, n_mice_per_age: int, seed: int) -> _Noise:
    """Draw every random quantity in a fixed order that does not depend on any label."""
    _check_params(n_cells, n_genes, n_mice_per_age)
    N, G, K = int(n_cells), int(n_genes), _N_LATENT
    M = 3 * int(n_mice_per_age)
    rng = np.random.default_rng(seed)
    genes, gene_class = _gene_names(G)
    gidx = {g: i for i, g in enumerate(genes)}

    # random draws: gene-level parameters first, then the cells
    gene_draws = _draw_genes(rng, G, K, M)
    cells = _draw_cells(rng, N, G, K)

    # deterministic programmes, then the broad ageing programme (its own stream)
    log_base = _baseline(gidx, G, gene_draws["filler_log_base"])
    type_prog, domain_prog, age_eff = _programmes(gidx, G, gene_draws["filler_type_prog"])
    broad, chosen = _broad_ageing(seed, G)
    age_eff += broad
    gene_class[len(_NAMED_GENES):][chosen] = "age_broad"

    # cells split evenly over mice (contiguous blocks)
    mouse = np.repeat(np.arange(M), [len(a) for a in np.array_split(np.arange(N), M)])

    return _Noise(
        genes=genes, gene_class=gene_class, log_base=log_base, type_prog=type_prog,
        domain_prog=domain_prog, age_eff=age_eff, loadings=gene_draws["loadings"],
        batch=gene_draws["batch"], r=gene_draws["r"], mouse=mouse, **cells,
    )


def _domain_of(xy_local: np.ndarray) -> np.ndarray:
    """Spatial domain index from within-section position (x right, y = depth from pia)."""
    x, y = xy_local[:, 0], xy_local[:, 1]
    depth = y - _BAND_CURVE * (x / _SECTION_W) ** 2
    dom = np.searchsorted(_BAND_BOTTOMS, depth, side="right")  # 0..5 (5 = striatum)
    cx, cy, rx, ry = _VENTRICLE
    vent = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    dom[vent] = DOMAINS.index("Ventricle")
    return dom


def _cell_type_of(u_type: np.ndarray, domain: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Cell type from u_type and the (domain, age) proportions (see _type_segments)."""
    out = np.empty(len(u_type), dtype=np.int64)
    for d, a in set(zip(domain.tolist(), age.tolist())):
        m = (domain == d) & (age == a)
        starts, labels = _type_segments(d, a)
        out[m] = labels[np.searchsorted(starts, u_type[m], side="right") - 1]
    return out


def _factual_labels(noise: _Noise, n_mice_per_age: int) -> tuple[np.ndarray, ...]:
    age = noise.mouse // int(n_mice_per_age)
    domain = _domain_of(noise.xy_local)
    ctype = _cell_type_of(noise.u_type, domain, age)
    return age, domain, ctype


def _expected(
    noise: _Noise, idx: np.ndarray, age: np.ndarray, domain: np.ndarray, ctype: np.ndarray
) -> np.ndarray:
    """Noiseless expected counts for cells ``idx`` with the given labels, shape (n, G)."""
    eta = noise.log_base[None, :] + noise.type_prog[ctype] + noise.domain_prog[domain]
    eta += _AGE_SCALE[age][:, None] * noise.age_eff[domain, ctype]
    # latent term as an explicit sum (row-wise identical for any subset of cells)
    for k in range(noise.loadings.shape[0]):
        eta += noise.z[idx, k, None] * noise.loadings[k][None, :]
    eta += noise.batch[noise.mouse[idx]]
    eta += noise.log_lib[idx, None]
    return np.exp(eta)


def _nb_inverse_cdf(u: np.ndarray, mu: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Smallest k with NB-CDF(k; mean mu, size r) >= u (vectorised, elementwise).

    Equals ``scipy.stats.nbinom.ppf(u, r, r / (r + mu))`` but is ~10x faster for the small
    counts typical here (walks the pmf recursion upwards, dropping finished entries).
    """
    shape = u.shape
    u = np.minimum(u.ravel(), 1.0 - 1e-12)
    mu = mu.ravel()
    r = np.broadcast_to(r, shape).ravel()
    out = np.zeros(u.size, dtype=np.int64)
    p = r / (r + mu)
    pmf = np.exp(r * np.log(p))
    act = np.flatnonzero(pmf < u)
    pm, cd, uu, rr, qq = pmf[act], pmf[act], u[act], r[act], 1.0 - p[act]
    k = 0
    while act.size:
        pm = pm * (k + rr) / (k + 1) * qq
        cd = cd + pm
        k += 1
        done = (cd >= uu) | (pm <= 0.0)
        out[act[done]] = k
        keep = ~done
        act, pm, cd, uu, rr, qq = act[keep], pm[keep], cd[keep], uu[keep], rr[keep], qq[keep]
    return out.reshape(shape)


def _simulate_counts(
    noise: _Noise, idx: np.ndarray, age: np.ndarray, domain: np.ndarray, ctype: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    mu = _expected(noise, idx, age, domain, ctype)
    counts = _nb_inverse_cdf(noise.u_counts[idx], mu, noise.r[None, :])
    return counts, mu
