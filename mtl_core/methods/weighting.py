"""Loss weighting: methods that set a weight per task loss and backpropagate their sum once."""

from __future__ import annotations

from mtl_core.registry import MethodInfo

ENTRIES: tuple[MethodInfo, ...] = (
    MethodInfo(
        key="ew",
        name="Equal weighting",
        kind="weighting",
        category="loss weighting",
        summary="Add the task losses up, each with weight 1: the baseline every method is measured against.",
        formula=r"\mathcal{L}(\theta) = \sum_{t=1}^{T} \mathcal{L}_t(\theta)",
        cost="1 backward pass",
        factory="mtl_core.weighting.equal:EqualWeighting",
    ),
)
