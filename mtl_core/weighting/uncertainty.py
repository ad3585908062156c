"""Uncertainty weighting (Kendall, Gal & Cipolla, 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtl_core.weighting import Weighting


class UncertaintyWeighting(Weighting):
    """Uncertainty weighting (Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to
    Weigh Losses for Scene Geometry and Semantics", CVPR 2018, arXiv:1705.07115).

    Each task has a learnable homoscedastic noise scale sigma_t; the objective is
    ``sum_t L_t / (2 sigma_t^2) + log sigma_t``, learnt jointly with the network. We learn
    ``s_t = log sigma_t^2`` (the paper's numerically stable choice), so the weight is
    ``exp(-s_t) / 2`` and the regulariser ``s_t / 2``; at fixed losses the optimum is
    ``sigma_t^2 = L_t``, i.e. each task is weighed by the inverse of its own loss, halved.
    Starts at sigma_t = 1 (weights 1/2). The paper writes 1/sigma^2 for classification losses;
    like LibMTL we use the regression form 1/(2 sigma^2) for every task.
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__(n_tasks)
        self.log_variance = nn.Parameter(torch.zeros(n_tasks))

    def weights(self, losses: Tensor, step: int) -> Tensor:
        # Not detached: the weighted losses are what teach the log-variances.
        return (0.5 * torch.exp(-self.log_variance)).to(losses.dtype)

    def regularizer(self) -> Tensor:
        return 0.5 * self.log_variance.sum()

    def reset(self) -> None:
        with torch.no_grad():
            self.log_variance.zero_()
