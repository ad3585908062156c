"""PCGrad: project each task gradient off the gradients it conflicts with."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtl_core.aggregation import Aggregation, Aggregator

_TINY = np.finfo(np.float64).tiny


class PCGrad(Aggregator):
    """Projecting Conflicting Gradients (Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient Surgery
    for Multi-Task Learning", NeurIPS 2020, arXiv:2001.06782).

    For each task i, in a random order of the other tasks j: when g_i^PC . g_j < 0, remove from
    g_i^PC its component along g_j (projection onto the normal plane of the *original* g_j). The
    update is the sum of the projected gradients, as in the paper's Algorithm 1.

    Every projected gradient stays a combination of the task gradients, g_i^PC = sum_k C[i, k] g_k,
    so the whole procedure runs on the T x T Gram matrix (g_i^PC . g_j = (C G)[i, j]) and the
    update is ``weights @ J`` with the exact implied weights ``weights = C.sum(0)``. The orders are
    drawn from a generator that ``reset()`` seeds with 0, so a run is reproducible. No knobs.
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__(n_tasks)
        self.reset()

    def reset(self) -> None:
        self._generator = torch.Generator().manual_seed(0)

    def __call__(self, jacobian: Tensor, /) -> Aggregation:
        # T x T work on the CPU in float64: a handful of tiny steps (kernel launches would dominate
        # on a GPU), and the same orders and numbers whatever the device.
        gram = (jacobian @ jacobian.T).to("cpu", torch.float64)
        orders = random_partner_orders(jacobian.shape[0], self._generator)
        weights = pcgrad_coefficients(gram, orders).sum(dim=0)
        weights = weights.to(jacobian.device, jacobian.dtype)
        return Aggregation(update=weights @ jacobian, weights=weights)

    def batch_weights(self, grams: np.ndarray, /) -> np.ndarray | None:
        """Batched weights (see :meth:`Aggregator.batch_weights`) for two tasks, where the order
        is not random (each task has one partner): on a conflict g_1 loses its component along g_2
        and g_2 along g_1, so ``w = (1 - g12 / g11, 1 - g12 / g22)``. More tasks: None (random
        orders, drawn per call)."""
        if grams.shape[-1] != 2:
            return None
        g11, g12, g22 = grams[:, 0, 0], grams[:, 0, 1], grams[:, 1, 1]
        conflict = np.minimum(g12, 0.0)  # only a negative inner product projects
        weights = np.empty((grams.shape[0], 2))
        weights[:, 0] = 1.0 - conflict / np.maximum(g11, _TINY)
        weights[:, 1] = 1.0 - conflict / np.maximum(g22, _TINY)
        return weights


def random_partner_orders(n_tasks: int, generator: torch.Generator) -> Tensor:
    """Row i: the tasks other than i in a random order ([T, T-1], CPU), one permutation per task
    as in the authors' implementation."""
    keys = torch.rand(n_tasks, n_tasks, generator=generator, dtype=torch.float64)
    keys.fill_diagonal_(2.0)  # a key above every draw puts task i itself last, then drop it
    return keys.argsort(dim=1)[:, : n_tasks - 1]


def pcgrad_coefficients(gram: Tensor, orders: Tensor) -> Tensor:
    """C with g_i^PC = sum_k C[i, k] g_k, for the partner ``orders`` [T, T-1] (row i visits the
    tasks orders[i, 0], orders[i, 1], ...). All tasks take their s-th projection at once."""
    n_tasks = gram.shape[0]
    coefficients = torch.eye(n_tasks, dtype=gram.dtype, device=gram.device)
    rows = torch.arange(n_tasks, device=gram.device)
    for step in range(orders.shape[1]):
        partner = orders[:, step]
        dot = (coefficients @ gram)[rows, partner]  # g_i^PC . g_j
        squared_norm = gram[partner, partner]
        # Only a conflict (dot < 0) projects; a conflict implies g_j != 0, so the division is safe.
        shift = torch.where(dot < 0, dot / squared_norm.clamp_min(torch.finfo(gram.dtype).tiny), 0.0)
        coefficients[rows, partner] -= shift
    return coefficients
