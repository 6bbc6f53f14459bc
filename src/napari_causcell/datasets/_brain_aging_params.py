"""Parameters of the simulated brain-aging tissue (:func:`brain_aging`): ages, domains, cell
types and their proportions, section geometry, gene programmes and the planted age effects.

Everything here is a constant or a deterministic function of the constants; the random draws
are in :mod:`._brain_aging_noise`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_VERSION = 1
_TABLE = "table"
_REGION = "cells"

AGES: tuple[str, ...] = ("4wk", "24wk", "90wk")
# fraction of the full (90wk) age effect reached at each age
_AGE_SCALE = np.array([0.0, 0.4, 1.0])
# broad ageing: this share of filler genes shifts in every cell type, log2fc ~ N(0, sd) at 90wk
_BROAD_FRACTION = 0.25
_BROAD_SD = 0.7

DOMAINS: tuple[str, ...] = ("L1", "L2/3", "L4/5", "L6", "WM", "Striatum", "Ventricle")

# fixed order of the cell-type "core" intervals on the u_type axis (see _type_segments)
CELL_TYPES: tuple[str, ...] = (
    "ExN_L23", "ExN_L5", "ExN_L6", "InN", "MSN",
    "Microglia", "Oligo", "OPC", "Astro", "Endo",
)

# section geometry (µm)
_SECTION_W = 1000.0
_SECTION_H = 800.0
_SECTION_GAP = 200.0
_CELL_RADIUS = 5.0
# lower depth boundary of L1, L2/3, L4/5, L6, WM (everything below WM is striatum)
_BAND_BOTTOMS = np.array([60.0, 220.0, 400.0, 520.0, 600.0])
_BAND_CURVE = 80.0  # bands bend downwards laterally by up to this much
_VENTRICLE = (140.0, 630.0, 80.0, 55.0)  # centre x, centre y, radius x, radius y

# --------------------------------------------------------------------------------------
# cell-type proportions per domain at 4wk (rows: DOMAINS, columns: CELL_TYPES)
_PROP_4WK = np.array(
    [  # ExN23 ExN5  ExN6  InN   MSN   Micro Oligo OPC   Astro Endo
        [0.02, 0.01, 0.00, 0.20, 0.00, 0.10, 0.04, 0.08, 0.40, 0.15],  # L1
        [0.55, 0.03, 0.01, 0.12, 0.00, 0.05, 0.05, 0.04, 0.10, 0.05],  # L2/3
        [0.08, 0.45, 0.04, 0.12, 0.00, 0.05, 0.08, 0.04, 0.09, 0.05],  # L4/5
        [0.02, 0.06, 0.48, 0.10, 0.00, 0.05, 0.12, 0.04, 0.08, 0.05],  # L6
        [0.00, 0.01, 0.02, 0.02, 0.00, 0.07, 0.65, 0.08, 0.10, 0.05],  # WM
        [0.00, 0.00, 0.00, 0.08, 0.55, 0.06, 0.10, 0.04, 0.12, 0.05],  # Striatum
        [0.00, 0.00, 0.00, 0.02, 0.03, 0.15, 0.05, 0.05, 0.45, 0.25],  # Ventricle
    ]
)
# multiplicative change of each type's weight at 90wk vs 4wk (then renormalised); the
# 24wk proportions lie 0.4 of the way from 4wk to 90wk (like the expression effects)
_AGE_WEIGHT_90WK = {
    "ExN_L23": 0.92, "ExN_L5": 0.92, "ExN_L6": 0.92, "InN": 0.92, "MSN": 0.92,
    "Microglia": 1.8, "Oligo": 1.5, "OPC": 0.65, "Astro": 1.0, "Endo": 1.0,
}


def _proportions() -> np.ndarray:
    """Cell-type proportions, shape (n_domains, n_ages, n_types)."""
    p0 = _PROP_4WK / _PROP_4WK.sum(-1, keepdims=True)
    p90 = p0 * np.array([_AGE_WEIGHT_90WK[t] for t in CELL_TYPES])[None, :]
    p90 /= p90.sum(-1, keepdims=True)
    return p0[:, None, :] + _AGE_SCALE[None, :, None] * (p90 - p0)[:, None, :]


def _type_segments(domain: int, age: int) -> tuple[np.ndarray, np.ndarray]:
    """Segments of the u_type axis [0, 1) and their cell types for one (domain, age).

    The cell type of a cell is the label of the segment holding its ``u_type`` (an inverse
    CDF over the (domain, age) proportions with a fixed segment layout). Every type owns a
    "core" interval of length min(p_4wk, p_90wk) in the order of ``CELL_TYPES``; the mass a
    type loses with age (p_4wk - p_90wk) is a slot split into sub-slots, one per gaining
    type (sized by the gains), of which the decreasing type keeps the bottom (1 - s) and
    the gaining type takes the top s, s = 0, 0.4, 1 at 4wk, 24wk, 90wk. So with the same
    u_type, changing age only moves cells from types that shrink with age (neurons, OPC,
    ...) to types that grow (Oligo, Microglia), the minimum possible number of switches,
    and a cell switched at 24wk is switched to the same type at 90wk.
    """
    P = _proportions()
    p0, p90, s = P[domain, 0], P[domain, -1], _AGE_SCALE[age]
    lengths: list[float] = list(np.minimum(p0, p90))
    labels: list[int] = list(range(len(CELL_TYPES)))
    gain = np.clip(p90 - p0, 0.0, None)
    w = gain / gain.sum() if gain.sum() > 0 else gain
    for i in np.flatnonzero(p0 > p90):
        loss = p0[i] - p90[i]
        for j in np.flatnonzero(w > 0):
            lengths += [loss * w[j] * (1.0 - s), loss * w[j] * s]
            labels += [int(i), int(j)]
    lengths_arr, labels_arr = np.asarray(lengths), np.asarray(labels)
    keep = lengths_arr > 0
    starts = np.concatenate([[0.0], np.cumsum(lengths_arr[keep])[:-1]])
    return starts, labels_arr[keep]


# --------------------------------------------------------------------------------------
# genes. Programmes are log2 fold changes over the gene's baseline.
_MARKERS: dict[str, dict[str, float]] = {
    "ExN_L23": {"Slc17a7": 5.0, "Cux2": 5.0, "Lamp5": 4.5, "Otof": 4.0, "Rorb": 1.5},
    "ExN_L5": {"Slc17a7": 5.0, "Fezf2": 5.0, "Bcl11b": 4.5, "Rorb": 4.0, "Deptor": 4.0},
    "ExN_L6": {"Slc17a7": 5.0, "Foxp2": 5.0, "Syt6": 4.5, "Nxph4": 4.0, "Tle4": 4.0},
    "InN": {"Gad1": 5.0, "Gad2": 5.0, "Pvalb": 4.0, "Sst": 4.0},
    "MSN": {"Ppp1r1b": 5.5, "Penk": 5.0, "Tac1": 4.5, "Drd1": 4.0, "Gad1": 4.0, "Gad2": 3.5},
    "Astro": {"Gfap": 4.5, "Aqp4": 5.0, "Aldh1l1": 4.5, "Slc1a3": 5.0},
    "Oligo": {"Mbp": 5.5, "Plp1": 5.5, "Mog": 5.0, "Opalin": 4.5},
    "OPC": {"Pdgfra": 5.0, "Cspg4": 4.5, "Vcan": 4.5, "Gpr17": 4.0, "Plp1": 1.5},
    "Microglia": {"Cx3cr1": 5.0, "P2ry12": 5.0, "Tmem119": 4.5, "Csf1r": 4.5},
    "Endo": {"Cldn5": 5.0, "Flt1": 5.0, "Pecam1": 4.5, "Slco1a4": 4.5},
}
_DOMAIN_MARKERS: dict[str, dict[str, float]] = {
    "L1": {"Reln": 3.0},
    "L2/3": {"Calb1": 2.5},
    "L4/5": {"Rspo1": 2.5},
    "L6": {"Nr4a2": 2.5},
    "WM": {"Cd9": 2.0},
    "Striatum": {"Gpr88": 3.0},
    "Ventricle": {"Ttr": 5.0},
}
_AGE_GENES = ("C4b", "Xdh", "Gpc5", "Lilrb4a", "B2m", "Il33", "Apod", "Cst7", "Lgals3", "H2-K1")
# baseline mean (before library size) of the named non-filler genes
_BASE_MARKER = 0.15
_BASE_DOMAIN = 0.1
_BASE_AGE = {
    "C4b": 0.2, "Xdh": 0.05, "Gpc5": 0.1, "Lilrb4a": 0.05, "B2m": 0.5,
    "Il33": 0.1, "Apod": 0.2, "Cst7": 0.03, "Lgals3": 0.05, "H2-K1": 0.3,
}
# cell-type baseline programme of the age genes (log2), so that the age effects act on
# genes actually expressed in the affected types
_AGE_GENE_PROGRAMME: dict[str, dict[str, float]] = {
    "C4b": {"Astro": 2.0, "Oligo": 1.5},
    "Xdh": {"Endo": 3.0},
    "Gpc5": {"Astro": 4.0},
    "Lilrb4a": {"Microglia": 2.0},
    "B2m": {"Astro": 1.0, "Oligo": 1.0, "OPC": 1.0, "Microglia": 1.0, "Endo": 1.5},
    "Il33": {"Oligo": 2.5, "Astro": 1.0},
    "Apod": {"Oligo": 2.0, "Endo": 1.0},
    "Cst7": {"Microglia": 1.5},
    "Lgals3": {"Microglia": 1.5, "Endo": 1.0},
    "H2-K1": {"Endo": 1.5, "Microglia": 1.0},
}
# planted cell-type-specific age effects: (gene, cell_type, log2fc at 90wk vs 4wk,
# log2fc at 90wk in striatum)
_PLANTED = [
    ("C4b", "Oligo", 1.5, 1.5),
    ("C4b", "Astro", 1.2, 1.2),
    ("Xdh", "Endo", 1.5, 1.5),
    ("Gpc5", "Astro", -1.2, -1.2),
    ("Lilrb4a", "Microglia", 1.5, 2.5),
    ("B2m", "Astro", 1.0, 1.0),
    ("B2m", "Oligo", 1.0, 1.0),
    ("B2m", "OPC", 1.0, 1.0),
    ("B2m", "Microglia", 1.0, 1.0),
    ("Il33", "Oligo", 1.2, 1.2),
    ("Apod", "Oligo", 1.0, 1.0),
    ("Cst7", "Microglia", 2.0, 2.0),
    ("Lgals3", "Microglia", 1.2, 1.2),
    ("H2-K1", "Microglia", 1.0, 1.0),
    ("H2-K1", "Oligo", 1.0, 1.0),
]

PLANTED_AGE_EFFECTS: pd.DataFrame = pd.DataFrame(
    {
        "gene": [g for g, *_ in _PLANTED],
        "cell_type": [t for _, t, *_ in _PLANTED],
        "direction": ["up" if fc > 0 else "down" for _, _, fc, _ in _PLANTED],
        "log2fc_90wk": [fc for _, _, fc, _ in _PLANTED],
        "log2fc_90wk_striatum": [fcs for *_, fcs in _PLANTED],
    }
)
"""Ground-truth age effects planted in :func:`brain_aging`.

Columns ``gene``, ``cell_type``, ``direction`` ("up"/"down"), ``log2fc_90wk`` (log2 fold
change of the expected count at 90wk vs 4wk, in every domain) and ``log2fc_90wk_striatum``
(the same in the striatum; differs only for Lilrb4a in microglia). The effect at 24wk is
0.4 times the 90wk effect. Fold changes are for cells of a fixed type; cell-type
composition also shifts with age (more Oligo/Microglia, fewer OPC/neurons).
"""


def _named_genes() -> list[str]:
    names: list[str] = []
    for prog in _MARKERS.values():
        names += [g for g in prog if g not in names]
    for prog in _DOMAIN_MARKERS.values():
        names += [g for g in prog if g not in names]
    names += [g for g in _AGE_GENES if g not in names]
    return names


_NAMED_GENES = _named_genes()
_MIN_GENES = 60
_N_LATENT = 3
