"""PCGrad: project each task gradient off the gradients it conflicts with."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from mtl_core.aggregation import Aggregation, Aggregator, TwoTaskRule


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

    def _two_task_rule(self) -> TwoTaskRule:
        """Two tasks have one order each (each task's only partner is the other): see
        :func:`pcgrad_two_rule`."""
        return TwoTaskRule(pcgrad_two_rule)


def pcgrad_two_rule(g11: float, g12: float, g22: float, params: np.ndarray) -> tuple[float, float, bool]:
    """PCGrad's weights for two tasks (a :class:`~mtl_core.aggregation.TwoTaskRule`): on a conflict
    g_1 loses its component along g_2 and g_2 along g_1, so ``w = (1 - g12 / g11, 1 - g12 / g22)``;
    without one, ``(1, 1)``. No parameters."""
    if not math.isfinite(g11 + g12 + g22):
        return 0.0, 0.0, False
    if g12 >= 0.0:  # only a negative inner product projects
        return 1.0, 1.0, True
    # A conflict implies both gradients are non-zero: the divisions are safe.
    return 1.0 - g12 / g11, 1.0 - g12 / g22, True


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
