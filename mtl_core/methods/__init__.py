"""The methods that balance tasks: loss weighting and gradient aggregation (no torch import here).

Weighting methods (``kind="weighting"``) need only the task losses; their factory is called as
``factory(n_tasks=T, **method_params)`` and returns a :class:`mtl_core.weighting.Weighting`.
Aggregation methods (``kind="aggregation"``) need the task Jacobian on the shared parameters; their
factory returns a :class:`mtl_core.aggregation.Aggregator`.

The entries live by family in the modules below, each a tuple ``ENTRIES``; a person sees the loss
weightings first, then the gradient methods, each family in the order its papers appeared.
"""

from __future__ import annotations

from mtl_core.methods import multi_objective, projection, weighting
from mtl_core.registry import MethodInfo, Registry

METHODS: Registry[MethodInfo] = Registry("method")


def _display_order(entry: MethodInfo) -> tuple[bool, int]:
    return entry.kind != "weighting", entry.paper.year if entry.paper else 0


for _entry in sorted((*weighting.ENTRIES, *multi_objective.ENTRIES, *projection.ENTRIES), key=_display_order):
    METHODS.register(_entry)
