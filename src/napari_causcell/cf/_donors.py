"""Training cells' tokens per label, the donors of interventions."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..errors import ConceptError
from ..model.noise import CellNoise

DONOR_BANK = 256  # exogenous tokens kept per label for random-donor interventions


class DonorBank:
    """Exogenous (``eps``) and endogenous (``z``) tokens of training cells, per
    ``"concept=label"`` key (at most :data:`DONOR_BANK` cells each), kept with the model."""

    def __init__(self, banks: Mapping[str, Mapping[str, torch.Tensor]] | None = None) -> None:
        self.banks = {str(k): {str(kk): vv for kk, vv in v.items()}
                      for k, v in (banks or {}).items()}

    def __contains__(self, key: str) -> bool:
        return key in self.banks

    def __len__(self) -> int:
        return len(self.banks)

    def state(self) -> dict[str, dict[str, torch.Tensor]]:
        """What ``model.pt`` stores."""
        return {k: dict(v) for k, v in self.banks.items()}

    @classmethod
    @torch.no_grad()
    def build(cls, module, source, cells: np.ndarray, y: np.ndarray, concept_space,
              seed: int, device: torch.device) -> DonorBank:
        """Encode the kept training cells (rows ``cells`` of ``source``, codes ``y``)."""
        rng = np.random.default_rng(seed + 2)
        chosen: dict[str, tuple[int, np.ndarray]] = {}
        for k, name in enumerate(concept_space.names):
            for code, label in enumerate(concept_space.categories[name]):
                rows = np.flatnonzero(y[:, k] == code)
                if len(rows) > DONOR_BANK:
                    rows = np.sort(rng.choice(rows, DONOR_BANK, replace=False))
                chosen[f"{name}={label}"] = (k, rows)
        union = np.unique(np.concatenate([np.zeros(0, np.int64),
                                          *(r for _, r in chosen.values())]))
        module.eval()
        y_u = torch.from_numpy(y[union]).to(device)
        parts = [module.encode(torch.from_numpy(block).to(device),
                               y_u[i * 2048 : (i + 1) * 2048])[0]
                 for i, (_, block) in enumerate(source.chunks(cells[union], 2048, check=False))]
        resid = torch.cat(parts) if parts else torch.zeros(
            (0, module.n_tokens, module.config.token_dim), device=device)
        eps = module.anchor(resid, y_u)
        z = module.tokens(eps)
        banks = {}
        for key, (k, rows) in chosen.items():
            pos = torch.from_numpy(np.searchsorted(union, rows)).to(device)
            banks[key] = {"eps": eps[pos, k].cpu(), "z": z[pos, k].cpu()}
        return cls(banks)

    def value(self, name: str, label: str, kind: str, donor: str, n: int,
              pick: CellNoise | np.random.Generator) -> torch.Tensor:
        """``n`` random donors' tokens (``donor="random"``; one per row of ``pick``, a
        :class:`~napari_causcell.model.CellNoise`, or drawn from a numpy generator) or the
        label's mean token (``"mean"``)."""
        key = f"{name}={label}"
        bank = self.banks.get(key)
        if bank is None or len(bank[kind]) == 0:
            raise ConceptError(f"No training cells with {key}: cannot intervene on it.")
        if donor == "mean":
            return bank[kind].mean(0)
        size = len(bank[kind])
        if isinstance(pick, CellNoise):
            idx = (pick.rand((n,)) * size).long().clamp(max=size - 1)
        else:
            idx = torch.from_numpy(pick.integers(0, size, n))
        return bank[kind][idx]

    def check(self, space, token_dim: int) -> None:
        """Refuse a bank that names no label of the model or holds no token tensors."""
        for key, bank in self.banks.items():
            name, _, label = key.partition("=")
            if name not in space.names or label not in space.categories[name]:
                raise ValueError(f"donor bank {key!r} names no concept label of the model")
            for kind, t in bank.items():
                if not isinstance(t, torch.Tensor) or (t.ndim and t.shape[-1] != token_dim):
                    raise ValueError(f"donor bank {key!r}/{kind} is not a token tensor")
