"""Gradient aggregation: methods that combine the task gradients on the shared parameters.

    agg = make_aggregator("pcgrad", n_tasks=3)  # keyword hyper-parameters, paper defaults
    out = agg(J)        # J: Tensor[T, P], row t = gradient of task t's loss
    out.update          # Tensor[P], the direction the shared parameters descend along
    out.weights         # Tensor[T] with update == weights @ J, or None where the method has none
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from mtl_core.methods import METHODS
from mtl_core.registry import MethodInfo

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Aggregation:
    update: Tensor
    weights: Tensor | None = None
    message: str | None = None  # e.g. "solver failed, fell back to the mean": shown on the run


class Aggregator:
    """Combine a Jacobian into one update. Stateful methods override ``reset``.

    ``space`` says which Jacobian the method reads: ``"parameters"`` (rows are task gradients on
    the shared parameters, the default) or ``"features"`` (rows are task gradients on the shared
    representation, the batch's encoder output, flattened: MGDA-UB's cheap upper bound). A
    features-space method must return ``weights``; the trainer then backpropagates ``weights @ losses``
    once instead of taking the parameter Jacobian.
    """

    space: str = "parameters"

    def __init__(self, n_tasks: int) -> None:
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be at least 1 (got {n_tasks})")
        self.n_tasks = n_tasks

    def __call__(self, jacobian: Tensor, /) -> Aggregation:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:
        """Forget state carried between steps (a new run starts afresh)."""

    def batch_weights(self, grams: np.ndarray, /) -> np.ndarray | None:
        """Task weights of many problems at once: ``grams`` ``[B, T, T]`` (float64) -> ``[B, T]``,
        row b what ``__call__`` gives for a Jacobian with Gram matrix ``grams[b]`` (tests hold the two
        equal). None where the method has no batched form (it needs the Jacobian itself, or carries
        state between steps): callers then loop over ``__call__``. The Gradient lab's toy steps
        twelve small problems together through this entry, so it runs the trainer's code."""
        return None


def aggregators() -> dict[str, MethodInfo]:
    """The registered gradient-aggregation methods, by key, read from METHODS each time."""
    return {entry.key: entry for entry in METHODS if entry.kind == "aggregation"}


AGGREGATORS = aggregators()


def make_aggregator(key: str, n_tasks: int, **params: object) -> Aggregator:
    entry = METHODS[key]
    if entry.kind != "aggregation":
        raise ValueError(f"{entry.name} is a loss weighting, not a gradient-aggregation method")
    return entry.load()(n_tasks=n_tasks, **entry.validate_params(params))
