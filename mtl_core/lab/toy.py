"""The CAGrad paper's toy, simulated: every method's trajectories from the paper's starts (Liu, Liu,
Jin, Stone & Liu, "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021,
arXiv:2110.14048, Fig. 1). The problem itself -- its losses, gradients, Pareto set and loss
surface -- is :mod:`mtl_core.lab.problem`, whose names this module re-exports, so a caller that
simulates reads the problem from the same place. The paper runs Adam (lr 0.001, 100,000 steps)
from three starts and observes: gradient descent on the average stalls from some starts, MGDA and
PCGrad reach the Pareto set at arbitrary points, CAGrad (c = 0.5) reaches the average's minimum.

:func:`simulate` runs every (method, start) trajectory compiled: the task gradients are analytic
(float64), each gradient method combines them by its aggregator's two-task rule,
:meth:`~mtl_core.methods.base.Aggregator.two_task_rule` -- the trainer's method in closed form,
held equal to its ``__call__`` by the tests -- and Adam is written out as ``torch.optim.Adam``
computes it. Where a method has no rule, or its rule declines a step (a degenerate problem), that
step asks the aggregator's ``__call__`` (slower, the same answer). Importing this module imports
numba and torch (the compiled kernel, the aggregators): a page that only draws the loss surface
imports :mod:`mtl_core.lab.problem` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mtl_core.lab import kernel
from mtl_core.lab.problem import (
    AVERAGE_MINIMUM,
    BOUNDS,
    LOWER,
    PARETO_X1,
    PARETO_X2,
    STARTS,
    gradients,
    loss_grid,
    losses,
    task_gradient,
)
from mtl_core.methods import METHODS, make_aggregator
from mtl_core.methods.base import TwoTaskRule

__all__ = [  # the problem's names too (see the module docstring)
    "AVERAGE_MINIMUM", "BOUNDS", "LOWER", "METHOD_PARAMS", "OPTIMIZERS", "PAPER_LR", "PAPER_STEPS",
    "PARETO_X1", "PARETO_X2", "STARTS", "final_points", "gradients", "loss_grid", "losses",
    "no_rule", "simulate", "sum_rule", "task_gradient",
]

PAPER_STEPS = 100_000
PAPER_LR = 1e-3
# The paper's CAGrad constant, and its toy's scale (divide by 1 + c); the scale does not move Adam.
METHOD_PARAMS: dict[str, dict[str, object]] = {"cagrad": {"c": 0.5, "rescale": "linear"}}
OPTIMIZERS = ("adam", "sgd")


def sum_rule(g11: float, g12: float, g22: float, params: np.ndarray) -> tuple[float, float, bool]:
    """Equal weighting as a two-task rule: descent on f1 + f2."""
    return 1.0, 1.0, True


def no_rule(g11: float, g12: float, g22: float, params: np.ndarray) -> tuple[float, float, bool]:
    """The rule of a method without a closed form: every step asks its ``__call__``."""
    return 0.0, 0.0, False


class _Direction:
    """One method's way to turn the two task gradients into an update: its compiled two-task rule
    where it has one, its ``__call__`` (one aggregator per trajectory) where the rule declines."""

    def __init__(self, method: str, count: int) -> None:
        entry = METHODS[method]  # an unknown key raises the registry's message
        if entry.key == "ew":
            self.rule, self.aggregators = TwoTaskRule(sum_rule), []
            return
        if entry.kind != "aggregation":
            raise ValueError(f"{entry.name} weights losses; the toy simulates gradient methods and "
                             "equal weighting (descent on the summed loss)")
        params = METHOD_PARAMS.get(method, {})
        # Methods may carry state between steps: one instance per trajectory.
        self.aggregators = [make_aggregator(method, 2, **params) for _ in range(count)]
        self.rule = self.aggregators[0].two_task_rule() or TwoTaskRule(no_rule)

    def update(self, row: int, jacobian: np.ndarray) -> np.ndarray:
        """Trajectory ``row``'s update for ``jacobian`` [2 tasks, 2 coordinates], by ``__call__``."""
        return self.aggregators[row](torch.from_numpy(jacobian)).update.numpy()


def simulate(methods: Sequence[str], starts: Sequence[tuple[float, float]] = STARTS, steps: int = PAPER_STEPS,
             lr: float = PAPER_LR, optimizer: str = "adam", every: int = 100) -> pd.DataFrame:
    """Run every method from every start; one row per (method, start, recorded step).

    Columns ``method, start, step, x1, x2, f1, f2``; ``start`` is the index into ``starts``; steps
    0, ``every``, 2 ``every``, ... and the last are recorded. ``ew`` is gradient descent on
    f1 + f2; every other method is a registered gradient aggregation with the paper's settings
    (:data:`METHOD_PARAMS`). The steps run compiled (:mod:`mtl_core.lab.kernel`), not one Python
    call per step: trajectories are independent, so each runs to the end in machine code.
    """
    methods = list(dict.fromkeys(methods))
    starts = [(float(a), float(b)) for a, b in starts]
    if not methods or not starts:
        raise ValueError("pick at least one method and one start point")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {optimizer!r})")
    if steps < 0 or every < 1 or not lr > 0:
        raise ValueError("steps must be >= 0, every >= 1 and lr > 0")
    directions = [_Direction(method, len(starts)) for method in methods]  # validates every method first
    blocks = [kernel.trajectories(d.rule, d.update, np.array(starts), steps, lr, optimizer == "adam", every)
              for d in directions]
    recorded = [*range(0, steps + 1, every)] + ([steps] if steps % every else [])
    return _frame(methods, len(starts), recorded, np.concatenate(blocks, axis=1))


def _frame(methods: list[str], n_starts: int, recorded: list[int], positions: np.ndarray) -> pd.DataFrame:
    """positions [K recorded steps, B, 2] -> the long table."""
    k, batch = positions.shape[:2]
    x1, x2 = positions[..., 0].T.reshape(-1), positions[..., 1].T.reshape(-1)  # trajectory-major
    f1, f2 = losses(x1, x2)
    return pd.DataFrame({
        "method": np.repeat(methods, n_starts * k),
        "start": np.tile(np.repeat(np.arange(n_starts), k), len(methods)),
        "step": np.tile(np.asarray(recorded), batch),
        "x1": x1, "x2": x2, "f1": f1, "f2": f2,
    })


def final_points(trajectories: pd.DataFrame) -> pd.DataFrame:
    """The last recorded point of each (method, start), with its distance to the Pareto set and to
    the average loss's minimum."""
    last = trajectories.sort_values("step").groupby(["method", "start"], sort=False).tail(1)
    last = last.sort_values(["method", "start"]).reset_index(drop=True)
    x1_on_set = last["x1"].clip(*PARETO_X1)
    last["to_pareto_set"] = np.hypot(last["x1"] - x1_on_set, last["x2"] - PARETO_X2)
    last["to_average_minimum"] = np.hypot(last["x1"] - AVERAGE_MINIMUM[0], last["x2"] - AVERAGE_MINIMUM[1])
    return last
