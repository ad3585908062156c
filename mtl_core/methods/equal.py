"""Equal weighting: the sum of the task losses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import Weighting, torch
from mtl_core.registry import MethodInfo

if TYPE_CHECKING:
    from torch import Tensor


class EqualWeighting(Weighting):
    """Every task weighs 1, so the objective is the plain sum of losses (LibMTL's convention)."""

    def weights(self, losses: Tensor, step: int) -> Tensor:
        return torch.ones_like(losses)


ENTRY = MethodInfo(
    key="ew",
    name="Equal weighting",
    kind="weighting",
    category="loss weighting",
    summary="Add the task losses up, each with weight 1: the baseline every method is measured against.",
    formula=r"\mathcal{L}(\theta) = \sum_{t=1}^{T} \mathcal{L}_t(\theta)",
    cost="1 backward pass",
    factory="mtl_core.methods.equal:EqualWeighting",
    extra={
        "known_for": "A strong baseline: careful comparisons (Xin et al. 2022; Kurin et al. "
                     "2022) found that, with tuned learning rates and regularisation, few "
                     "methods beat it reliably.",
        "struggles_with": "Losses on different scales: the largest loss dominates the shared "
                          "gradient and the tasks with small losses barely learn.",
        "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "ew", "steps": 400},
                   "why": "The baseline on losses of very different scales: ink's loss is "
                          "about 100x the digit loss, so the sum is nearly all ink."},
    },
)
