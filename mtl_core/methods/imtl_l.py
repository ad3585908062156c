"""IMTL-L: the loss-balance half of Impartial Multi-task Learning (Liu et al., 2021)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import Weighting, torch
from mtl_core.registry import MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor


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
        self.log_scale = torch.nn.Parameter(torch.zeros(n_tasks))

    def weights(self, losses: Tensor, step: int) -> Tensor:
        # Not detached: the scaled losses are what teach the scales.
        return torch.exp(self.log_scale).to(losses.dtype)

    def regularizer(self) -> Tensor:
        return -self.log_scale.sum()

    def reset(self) -> None:
        with torch.no_grad():
            self.log_scale.zero_()


ENTRY = MethodInfo(
    key="imtl_l",
    name="IMTL-L",
    kind="weighting",
    category="loss weighting",
    summary="Learn a scale per task that makes the scaled losses equal: the loss half of "
            "Impartial Multi-task Learning.",
    formula=r"\mathcal{L} = \sum_{t=1}^{T} \bigl( e^{s_t}\mathcal{L}_t - s_t \bigr)"
            r"\quad (s_t \text{ learnt; optimum } e^{s_t}\mathcal{L}_t = 1)",
    cost="1 backward pass",
    factory="mtl_core.methods.imtl_l:IMTLL",
    paper=Paper(authors="Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang",
                title="Towards Impartial Multi-task Learning", venue="ICLR", year=2021, arxiv=None),
    extra={
        "known_for": "Scale invariance learnt with one scale per task and no hyper-parameter;"
                     " the paper pairs it with its gradient half, IMTL-G.",
        "struggles_with": "Like uncertainty weighting it equalises the scaled losses, so a "
                          "nearly solved task with a tiny loss is weighted up strongly; it "
                          "does nothing about conflicting directions.",
        "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "imtl_l", "steps": 400},
                   "why": "Ink's loss is about 100x the digit loss, so the sum is all ink: "
                          "see how IMTL-L changes the digit accuracy against Equal weighting."},
    },
)
