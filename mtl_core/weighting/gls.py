"""Geometric loss strategy (Chennupati et al., 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_core.weighting import Weighting

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
