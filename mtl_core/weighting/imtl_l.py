"""IMTL-L: the loss-balance half of Impartial Multi-task Learning (Liu et al., 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtl_core.weighting import Weighting


class IMTLL(Weighting):
    """IMTL-L (Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial Multi-task
    Learning", ICLR 2021, openreview IMPnRXEWpvr).

    Each task has a learnable scale s_t; the objective is ``sum_t e^{s_t} L_t - s_t``, learnt
    jointly with the network, so the task weights are ``e^{s_t}``. At fixed losses the optimum
    is ``e^{s_t} L_t = 1`` for every task: the scaled losses are made equal (impartial), whatever
    each loss's units. Starts at s_t = 0 (weights 1, equal weighting). The paper's gradient half
    (IMTL-G) and the hybrid IMTL are gradient methods, not this one.
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__(n_tasks)
        self.log_scale = nn.Parameter(torch.zeros(n_tasks))

    def weights(self, losses: Tensor, step: int) -> Tensor:
        # Not detached: the scaled losses are what teach the scales.
        return torch.exp(self.log_scale).to(losses.dtype)

    def regularizer(self) -> Tensor:
        return -self.log_scale.sum()

    def reset(self) -> None:
        with torch.no_grad():
            self.log_scale.zero_()
