"""Uncertainty weighting (Kendall, Gal & Cipolla, 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import Weighting, torch
from mtl_core.registry import MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor


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
        self.log_variance = torch.nn.Parameter(torch.zeros(n_tasks))

    def weights(self, losses: Tensor, step: int) -> Tensor:
        # Not detached: the weighted losses are what teach the log-variances.
        return (0.5 * torch.exp(-self.log_variance)).to(losses.dtype)

    def regularizer(self) -> Tensor:
        return 0.5 * self.log_variance.sum()

    def reset(self) -> None:
        with torch.no_grad():
            self.log_variance.zero_()


ENTRY = MethodInfo(
    key="uw",
    name="Uncertainty weighting",
    kind="weighting",
    category="loss weighting",
    summary="Learn a noise level per task and weigh each loss by its inverse: noisy or large "
            "losses get small weights, with a log penalty so the weights do not vanish.",
    formula=r"\mathcal{L} = \sum_{t=1}^{T} \Bigl( \frac{\mathcal{L}_t}{2\sigma_t^2} + \log \sigma_t \Bigr)"
            r"\quad (\sigma_t \text{ learnt; optimum } \sigma_t^2 = \mathcal{L}_t)",
    cost="1 backward pass",
    factory="mtl_core.methods.uncertainty:UncertaintyWeighting",
    paper=Paper(authors="Kendall, Gal & Cipolla",
                title="Multi-Task Learning Using Uncertainty to Weigh Losses for Scene Geometry and Semantics",
                venue="CVPR", year=2018, arxiv="1705.07115"),
    extra={
        "simplified": "The paper weighs classification losses by 1/σ² and regression losses "
                      "by 1/(2σ²); like LibMTL we use 1/(2σ²) for every task.",
        "known_for": "Putting losses in different units (classes, metres) on one scale with "
                     "no tuning; widely used in dense prediction (depth, segmentation, "
                     "normals).",
        "struggles_with": "Its weights follow the size of the losses, not the tasks' "
                          "importance: a task whose loss nears zero gets a weight that keeps "
                          "growing, and the other tasks lose out.",
        "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "uw", "steps": 400},
                   "why": "Ink's loss is about 100x the digit loss, so the sum is all ink: "
                          "see how uncertainty weighting changes the digit accuracy against "
                          "Equal weighting."},
    },
)
