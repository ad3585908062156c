"""UPGrad: project every task gradient onto the cone of non-conflicting directions, then average."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_core.aggregation import Aggregation, Aggregator
from mtl_core.aggregation.dual_cone import project_to_dual_cone


class UPGrad(Aggregator):
    """Unconflicting Projection of Gradients (Quinton & Rey, "Jacobian Descent for Multi-Objective
    Optimization", arXiv:2406.16232, 2024; reference code: torchjd).

    Each task gradient g_i is projected onto the dual cone of the rows of J, {x : J x >= 0}
    (the directions that increase no task's loss to first order), and the projections are
    averaged: update = (1/T) sum_i pi_J(g_i). With pi_J(g_i) = J^T v_i and
    v_i = argmin_{v >= e_i} v^T G v (Gram G = J J^T), the update is ``weights @ J`` with
    ``weights = mean_i v_i``: a T x T quadratic program per task, solved exactly by the active-set
    method of :mod:`mtl_core.aggregation.dual_cone` (no general-purpose solver, no regularisation).

    Properties (the paper's): the update conflicts with no task gradient; it is the mean when no
    two gradients conflict; it scales linearly with J. No knobs (the paper's preference vector is
    the mean's uniform one).
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__(n_tasks)

    def __call__(self, jacobian: Tensor, /) -> Aggregation:
        n_tasks = jacobian.shape[0]
        gram = jacobian @ jacobian.T
        projection = project_to_dual_cone(gram, torch.eye(n_tasks, dtype=torch.float64))
        message = None
        if projection.converged:
            weights = projection.weights.mean(dim=0)
        else:
            weights = torch.full((n_tasks,), 1.0 / n_tasks, dtype=torch.float64)
            message = "UPGrad's projection did not converge; this step used the mean of the gradients"
        weights = weights.to(jacobian.device, jacobian.dtype)
        return Aggregation(update=weights @ jacobian, weights=weights, message=message)
