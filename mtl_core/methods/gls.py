"""Geometric loss strategy (Chennupati et al., 2019)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import Weighting, torch
from mtl_core.registry import MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor

# Losses are clamped here before their logarithm: a task whose loss reaches exactly 0 would
# make the geometric mean 0 and its gradient undefined.
_MIN_LOSS = 1e-12


class GeometricLossStrategy(Weighting):
    """Geometric loss strategy, GLS (Chennupati, Sistu, Yogamani & Rawashdeh, "MultiNet++:
    Multi-Stream Feature Aggregation and Geometric Loss Strategy for Multi-Task Learning",
    CVPR Workshops 2019, arXiv:1904.08492).

    The objective is the geometric mean ``G = (prod_t L_t)^(1/T)`` of the task losses, which is
    invariant to each loss's scale. Its gradient is ``sum_t G / (T L_t) grad L_t``, so we
    return those implied weights ``w_t = G / (T L_t)`` (detached): backpropagating ``w @ L`` is
    exactly backpropagating ``G``. A task with a small loss gets a large weight.
    """

    def weights(self, losses: Tensor, step: int) -> Tensor:
        losses = losses.detach().clamp_min(_MIN_LOSS)
        geometric_mean = torch.exp(torch.log(losses).mean())
        return geometric_mean / (self.n_tasks * losses)


ENTRY = MethodInfo(
    key="gls",
    name="Geometric loss strategy",
    kind="weighting",
    category="loss weighting",
    summary="Minimise the geometric mean of the task losses, which no loss's scale can dominate: "
            "each task is weighted by the inverse of its loss.",
    formula=r"\mathcal{L} = \Bigl(\prod_{t=1}^{T} \mathcal{L}_t\Bigr)^{1/T},"
            r"\quad \text{implied weights } w_t = \frac{\mathcal{L}}{T\,\mathcal{L}_t}",
    cost="1 backward pass",
    factory="mtl_core.methods.gls:GeometricLossStrategy",
    paper=Paper(authors="Chennupati, Sistu, Yogamani & Rawashdeh",
                title="MultiNet++: Multi-Stream Feature Aggregation and Geometric Loss Strategy for "
                      "Multi-Task Learning",
                venue="CVPR Workshops", year=2019, arxiv="1904.08492"),
    extra={
        "known_for": "Scale invariance with no hyper-parameter: multiplying one task's loss "
                     "by a constant leaves the update's direction unchanged.",
        "struggles_with": "A task whose loss approaches zero gets an ever larger weight "
                          "(proportional to 1/L_t), which can destabilise training once one "
                          "task is nearly solved.",
        "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "gls", "steps": 400},
                   "why": "Ink's loss is about 100x the digit loss, so the sum is all ink: "
                          "see how the geometric loss changes the digit accuracy against "
                          "Equal weighting."},
    },
)
