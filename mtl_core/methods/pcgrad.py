"""PCGrad (Yu et al., NeurIPS 2020): project each task gradient off the gradients it conflicts with."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from mtl_core.methods.base import GramAggregator, TwoTaskRule, torch
from mtl_core.registry import JACOBIAN_COST, MethodInfo, Paper

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor


class PCGrad(GramAggregator):
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

    def weights(self, gram: Tensor, eps: float) -> Tensor:
        # The orders are drawn on the CPU, as the Gram matrix lives: the same whatever the device.
        return pcgrad_coefficients(gram, random_partner_orders(gram.shape[0], self._generator)).sum(dim=0)

    def _two_task_rule(self) -> TwoTaskRule:
        """Two tasks have one order each (each task's only partner is the other): see
        :func:`pcgrad_two_rule`."""
        return TwoTaskRule(pcgrad_two_rule)


ENTRY = MethodInfo(
    key="pcgrad",
    name="PCGrad",
    kind="aggregation",
    category="gradient surgery",
    summary="Where two task gradients conflict, remove from each the part that opposes the other; add up what is left.",
    formula=(r"g_i^{\mathrm{PC}} \leftarrow g_i^{\mathrm{PC}} - \frac{\min(g_i^{\mathrm{PC}} \cdot g_j,\ 0)}"
             r"{\lVert g_j \rVert^2}\, g_j \quad (j \neq i \text{ in random order}), \qquad "
             r"d = \sum_{i=1}^{T} g_i^{\mathrm{PC}}"),
    cost=JACOBIAN_COST,
    factory="mtl_core.methods.pcgrad:PCGrad",
    paper=Paper(authors="Yu, Kumar, Gupta, Levine, Hausman & Finn",
                title="Gradient Surgery for Multi-Task Learning", venue="NeurIPS", year=2020,
                arxiv="2001.06782"),
    extra={
        "known_for": "The best-known gradient surgery: drop the part of each task's gradient "
                     "that conflicts with another's; simple, and effective in multi-task "
                     "reinforcement learning (Meta-World).",
        "struggles_with": "It acts only on conflicting directions, not on magnitude "
                          "differences, its random task order makes steps noisy, and careful "
                          "comparisons found small gains over tuned equal weighting.",
        "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "pcgrad", "steps": 300},
                   "why": "The left and right digits share one trunk and their gradients "
                          "often conflict: watch the cosines and how PCGrad combines them."},
    },
)


def pcgrad_two_rule(g11: float, g12: float, g22: float, params: np.ndarray) -> tuple[float, float, bool]:
    """PCGrad's weights for two tasks (a :class:`~mtl_core.methods.base.TwoTaskRule`): on a conflict
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
