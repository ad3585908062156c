"""UPGrad (Quinton & Rey, arXiv 2024): project every task gradient onto the cone of non-conflicting
directions, then average."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import GramAggregator, torch
from mtl_core.methods.dual_cone import project_to_dual_cone
from mtl_core.registry import JACOBIAN_COST, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor


class UPGrad(GramAggregator):
    """Unconflicting Projection of Gradients (Quinton & Rey, "Jacobian Descent for Multi-Objective
    Optimization", arXiv:2406.16232, 2024; reference code: torchjd).

    Each task gradient g_i is projected onto the dual cone of the rows of J, {x : J x >= 0}
    (the directions that increase no task's loss to first order), and the projections are
    averaged: update = (1/T) sum_i pi_J(g_i). With pi_J(g_i) = J^T v_i and
    v_i = argmin_{v >= e_i} v^T G v (Gram G = J J^T), the update is ``weights @ J`` with
    ``weights = mean_i v_i``: a T x T quadratic program per task, solved exactly by the active-set
    method of :mod:`mtl_core.methods.dual_cone` (no general-purpose solver, no regularisation).

    Properties (the paper's): the update conflicts with no task gradient; it is the mean when no
    two gradients conflict; it scales linearly with J. No knobs (the paper's preference vector is
    the mean's uniform one).
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__(n_tasks)

    def weights(self, gram: Tensor, eps: float) -> Tensor:
        n_tasks = gram.shape[0]
        projection = project_to_dual_cone(gram, torch.eye(n_tasks, dtype=torch.float64))
        if projection.converged:
            return projection.weights.mean(dim=0)
        self.message = "UPGrad's projection did not converge; this step used the mean of the gradients"
        return torch.full((n_tasks,), 1.0 / n_tasks, dtype=torch.float64)


ENTRY = MethodInfo(
    key="upgrad",
    name="UPGrad",
    kind="aggregation",
    category="conflict-free",
    summary="Project every task gradient onto the directions that conflict with no task, then average the projections.",
    formula=(r"d = \frac{1}{T}\sum_{i=1}^{T} \pi_J(g_i),\qquad "
             r"\pi_J(g) = \operatorname*{arg\,min}_{x:\ J x \ge 0} \lVert x - g \rVert^2 = J^\top v,\quad "
             r"v = \operatorname*{arg\,min}_{v \ge e_i} v^\top J J^\top v"),
    cost=JACOBIAN_COST,
    factory="mtl_core.methods.upgrad:UPGrad",
    paper=Paper(authors="Quinton & Rey", title="Jacobian Descent for Multi-Objective Optimization",
                venue="arXiv", year=2024, arxiv="2406.16232"),
    extra={
        "known_for": "An update that conflicts with no task while each task keeps an "
                     "influence proportional to its gradient's norm (it equals the plain "
                     "average when no gradients conflict); the aggregator of the "
                     "Jacobian-descent library torchjd.",
        "struggles_with": "Each step solves T small quadratic programmes over the whole "
                          "Jacobian (speed is the limitation its authors name), and its paper "
                          "tests it on simple image classification, so independent multi-task"
                          " comparisons are still few.",
        "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "upgrad", "steps": 300},
                   "why": "The left and right digits share one trunk and their gradients "
                          "often conflict: watch the cosines and how UPGrad combines them."},
    },
)
