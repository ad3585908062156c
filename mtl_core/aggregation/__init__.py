"""Gradient aggregation: methods that combine the task gradients on the shared parameters.

    agg = make_aggregator("pcgrad", n_tasks=3)  # keyword hyper-parameters, paper defaults
    out = agg(J)        # J: Tensor[T, P], row t = gradient of task t's loss
    out.update          # Tensor[P], the direction the shared parameters descend along
    out.weights         # Tensor[T] with update == weights @ J, or None where the method has none
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from mtl_core.methods import METHODS
from mtl_core.registry import MethodInfo


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

    def two_task_rule(self) -> TwoTaskRule | None:
        """This method's closed form for two tasks, or None where it has none (it needs the
        Jacobian itself, or carries state between steps) or this instance is not for two tasks.
        The Gradient lab's toy compiles the rule and steps with it; tests hold it equal to
        ``__call__``, so the lab runs the trainer's method."""
        return self._two_task_rule() if self.n_tasks == 2 else None

    def _two_task_rule(self) -> TwoTaskRule | None:
        return None


@dataclass(frozen=True)
class TwoTaskRule:
    """Task weights of two tasks from their Gram entries, as a plain scalar function
    ``function(g11, g12, g22, params) -> (w1, w2, ok)`` (``params``: a float64 array of the method's
    numbers). Written with ``math`` and builtins only, so numba can compile it. ``ok`` False means
    the closed form does not decide this problem (non-finite input, a degenerate optimum): the
    caller then asks ``__call__``."""

    function: Callable[[float, float, float, np.ndarray], tuple[float, float, bool]]
    params: tuple[float, ...] = ()

    def weights(self, g11: float, g12: float, g22: float) -> tuple[float, float, bool]:
        """The rule, run as plain Python."""
        return self.function(g11, g12, g22, np.asarray(self.params, dtype=np.float64))


def aggregators() -> dict[str, MethodInfo]:
    """The registered gradient-aggregation methods, by key, read from METHODS each time."""
    return {entry.key: entry for entry in METHODS if entry.kind == "aggregation"}


AGGREGATORS = aggregators()


def make_aggregator(key: str, n_tasks: int, **params: object) -> Aggregator:
    entry = METHODS[key]
    if entry.kind != "aggregation":
        raise ValueError(f"{entry.name} is a loss weighting, not a gradient-aggregation method")
    return entry.load()(n_tasks=n_tasks, **entry.validate_params(params))
