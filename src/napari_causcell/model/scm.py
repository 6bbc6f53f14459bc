"""Linear structural causal model over concept tokens."""

from __future__ import annotations

import torch
from torch import nn

from .noise import CellNoise, draw_rand


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


class LabelSCM(nn.Module):
    """Categorical SCM over the concept labels with Gumbel-max noise (Oberst & Sontag 2019).

    Each concept with parents in the DAG has logits ``b + sum_p W_p[label_p]`` (a log-linear
    model of main effects, fitted to the training labels by :meth:`fit`) and its label is
    ``argmax(logits + g)`` with independent Gumbel noise ``g``. Counterfactuals abduct ``g``
    from the cell's factual label (the posterior of the Gumbels given the argmax), then
    recompute the labels of the intervened concepts' descendants under the new parents with
    the same noise. Concepts without parents keep their labels unless intervened on.

    Parameters
    ----------
    n_classes
        Number of labels per concept.
    adjacency
        ``(M, M)`` (or larger: extra rows are ignored) binary matrix, ``[i, j] = 1`` when
        concept ``i`` causes ``j``.
    """

    def __init__(self, n_classes: list[int], adjacency: torch.Tensor) -> None:
        super().__init__()
        m = len(n_classes)
        a = torch.as_tensor(adjacency, dtype=torch.float32)[:m, :m]
        self.n_classes = list(n_classes)
        self.parents = [[int(i) for i in torch.nonzero(a[:, j]).flatten()] for j in range(m)]
        self.order = _topological(self.parents)
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(k), requires_grad=False)
                                     for k in n_classes)
        self.weight = nn.ParameterDict({
            f"{p}_{j}": nn.Parameter(torch.zeros(n_classes[p], n_classes[j]),
                                     requires_grad=False)
            for j in range(m) for p in self.parents[j]
        })
        # seen[p_j][a, c]: some training cell had parent label a and label c
        self.seen = nn.ParameterDict({
            k: nn.Parameter(torch.ones_like(w), requires_grad=False)
            for k, w in self.weight.items()
        })

    def logits(self, j: int, y: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K_j)`` of concept ``j`` given the labels ``y`` ``(B, M)`` of its parents."""
        out = self.bias[j].expand(y.shape[0], -1)
        for p in self.parents[j]:
            out = out + self.weight[f"{p}_{j}"][y[:, p]]
        return out

    @torch.enable_grad()
    def fit(self, y: torch.Tensor, l2: float = 1e-3, steps: int = 200) -> None:
        """Maximum-likelihood fit (L-BFGS, small L2) of every concept with parents to ``y``."""
        for j, parents in enumerate(self.parents):
            if not parents:
                continue
            for p in parents:
                seen = torch.zeros_like(self.seen[f"{p}_{j}"])
                seen[y[:, p], y[:, j]] = 1.0
                self.seen[f"{p}_{j}"].copy_(seen)
            params = [self.bias[j]] + [self.weight[f"{p}_{j}"] for p in parents]
            for q in params:
                q.requires_grad_(True)
            opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps,
                                    line_search_fn="strong_wolfe")

            def closure(j=j, params=params):
                opt.zero_grad()
                nll = nn.functional.cross_entropy(self.logits(j, y), y[:, j])
                loss = nll + l2 * sum(q.pow(2).sum() for q in params[1:])
                loss.backward()
                return loss

            opt.step(closure)
            for q in params:
                q.requires_grad_(False)

    def abduct(self, y: torch.Tensor, generator: torch.Generator | CellNoise | None = None
               ) -> dict[int, torch.Tensor]:
        """Posterior Gumbel noise ``(B, K_j)`` of every concept with parents, given ``y``.

        The observed label's perturbed logit is the maximum, a Gumbel with location
        ``logsumexp(logits)``; every other one is a Gumbel with location its logit truncated
        below that maximum. ``argmax(logits + noise)`` is then the observed label. A
        :class:`~.noise.CellNoise` ``generator`` draws each cell's noise from its own key.
        """
        noise = {}
        for j, parents in enumerate(self.parents):
            if not parents:
                continue
            lg = self.logits(j, y)
            top = lg.logsumexp(-1, keepdim=True) + _gumbel(lg.shape[:1] + (1,), generator, lg)
            g = lg + _gumbel(lg.shape, generator, lg)
            trunc = -torch.log(torch.exp(-top) + torch.exp(-g))  # Gumbel(lg) truncated at top
            obs = torch.nn.functional.one_hot(y[:, j], lg.shape[-1]).bool()
            noise[j] = torch.where(obs, top, trunc) - lg
        return noise

    def seen_with_parents(self, j: int, y: torch.Tensor, label) -> torch.Tensor:
        """``(B,)`` mask: concept ``j``'s ``label`` (an int or a ``(B,)`` tensor) was seen in
        training with each of the parent labels in ``y`` ``(B, M)``."""
        known = torch.ones(y.shape[0], dtype=torch.bool, device=y.device)
        for p in self.parents[j]:
            known &= self.seen[f"{p}_{j}"][y[:, p], label] > 0
        return known

    def counterfactual(self, y: torch.Tensor, do: dict[int, int],
                       noise: dict[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels ``(B, M)`` under ``do(concept k = label)``, descendants recomputed with the
        abducted ``noise``; concepts not downstream of an intervention keep their labels.

        A cell whose own label was never seen in training with one of its new parent labels
        keeps its label: the data say nothing about how such cells respond (a combination
        held out or never measured, not one known to be impossible). Returns the labels and
        a ``(B, M)`` mask of the labels kept for that reason.
        """
        y_cf = y.clone()
        changed = torch.zeros_like(y, dtype=torch.bool)
        unsupported = torch.zeros_like(y, dtype=torch.bool)
        for j in self.order:
            if j in do:
                y_cf[:, j] = do[j]
                changed[:, j] = y_cf[:, j] != y[:, j]
            elif self.parents[j]:
                moved = changed[:, self.parents[j]].any(-1)
                known = self.seen_with_parents(j, y_cf, y[:, j])
                unsupported[:, j] = moved & ~known
                new = (self.logits(j, y_cf) + noise[j]).argmax(-1)
                y_cf[:, j] = torch.where(moved & known, new, y[:, j])
                changed[:, j] = y_cf[:, j] != y[:, j]
        return y_cf, unsupported


def _gumbel(shape, generator, like: torch.Tensor) -> torch.Tensor:
    u = draw_rand(generator, shape, like.device)
    return -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))


def _topological(parents: list[list[int]]) -> list[int]:
    order: list[int] = []
    todo = set(range(len(parents)))
    while todo:
        ready = sorted(j for j in todo if all(p in order for p in parents[j]))
        if not ready:
            raise ValueError("the concept graph has a cycle")
        order += ready
        todo -= set(ready)
    return order
