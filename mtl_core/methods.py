"""The methods that balance tasks: loss weighting and gradient aggregation (no torch import here).

Weighting methods (``kind="weighting"``) need only the task losses; their factory is called as
``factory(n_tasks=T, **method_params)`` and returns a :class:`mtl_core.weighting.Weighting`.
Aggregation methods (``kind="aggregation"``) need the task Jacobian on the shared parameters; their
factory returns a :class:`mtl_core.aggregation.Aggregator`.
"""

from __future__ import annotations

from mtl_core.registry import MethodInfo, Registry

METHODS: Registry[MethodInfo] = Registry("method")

METHODS.register(
    MethodInfo(
        key="ew",
        name="Equal weighting",
        kind="weighting",
        category="loss weighting",
        summary="Add the task losses up, each with weight 1: the baseline every method is measured against.",
        formula=r"\mathcal{L}(\theta) = \sum_{t=1}^{T} \mathcal{L}_t(\theta)",
        cost="1 backward pass",
        factory="mtl_core.weighting.equal:EqualWeighting",
    )
)
