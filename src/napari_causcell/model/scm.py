"""Linear structural causal model over concept tokens."""

from __future__ import annotations

import torch
from torch import nn


class LinearSCM(nn.Module):
    """``z = A^T z + eps``, solved in closed form as ``z = (I - A^T)^-1 eps``.

    Parameters
    ----------
    adjacency
        Binary ``(K, K)`` matrix, ``adjacency[i, j] = 1`` when token ``i`` causes token ``j``.
        Must be acyclic (checked by :func:`napari_causcell.data.dag.validate_dag`).
    """

    def __init__(self, adjacency: torch.Tensor) -> None:
        super().__init__()
        a = torch.as_tensor(adjacency, dtype=torch.float32)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"adjacency must be square, got shape {tuple(a.shape)}")
        self.register_buffer("adjacency", a)
        self.register_buffer("mixing", self.mixing_matrix(a))

    @staticmethod
    def mixing_matrix(a: torch.Tensor) -> torch.Tensor:
        """``(I - A^T)^-1``; entry ``[j, i]`` counts the causal paths from ``i`` to ``j``."""
        eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
        return torch.linalg.inv(eye - a.T)

    def forward(self, eps: torch.Tensor) -> torch.Tensor:
        """Endogenous tokens ``z`` ``(B, K, d)`` from exogenous ``eps`` ``(B, K, d)``."""
        return torch.einsum("jk,bkd->bjd", self.mixing, eps)

    def intervene(
        self, eps: torch.Tensor, values: dict[int, torch.Tensor], hard: bool = True
    ) -> torch.Tensor:
        """Tokens under ``do(token[k] = values[k])`` for each ``k``, propagated to descendants.

        ``hard=True`` cuts the edges into every intervened token and sets its endogenous token
        to the value (the textbook do-operator). ``hard=False`` replaces only the exogenous
        parts ``eps[k]`` and keeps the parents' contributions (the soft swap). Each value is
        ``(d,)`` or ``(B, d)``.
        """
        eps = eps.clone()
        for k, value in values.items():
            eps[:, k] = value
        if not hard:
            return self(eps)
        a = self.adjacency.clone()
        a[:, list(values)] = 0.0
        return torch.einsum("jk,bkd->bjd", self.mixing_matrix(a), eps)
