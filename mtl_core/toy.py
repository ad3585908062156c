"""The two-objective toy of the CAGrad paper (Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient
Descent for Multi-task Learning", NeurIPS 2021, arXiv:2110.14048, Fig. 1 and its official toy code).

Two losses of x = (x1, x2) whose valleys conflict: for x2 > 0 each is a log-barrier valley, for
x2 < 0 a shifted quadratic; the Pareto set is the segment x2 = -8.3552, x1 in [-7, 7], and the
average loss is smallest at (0, -8.3552). The paper runs Adam (lr 0.001, 100,000 steps) from three
starts and observes: gradient descent on the average stalls from some starts, MGDA and PCGrad reach
the Pareto set at arbitrary points, CAGrad (c = 0.5) reaches the average's minimum.

:func:`simulate` runs every (method, start) trajectory compiled: the task gradients are analytic
(float64), each gradient method combines them by its aggregator's two-task rule,
:meth:`~mtl_core.aggregation.Aggregator.two_task_rule` -- the trainer's method in closed form,
held equal to its ``__call__`` by the tests -- and Adam is written out as ``torch.optim.Adam``
computes it. Where a method has no rule, or its rule declines a step (a degenerate problem), that
step asks the aggregator's ``__call__`` (slower, the same answer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

LOWER = 5e-6  # the official code's clamp on the log's argument
STARTS: tuple[tuple[float, float], ...] = ((-8.5, 7.5), (-8.5, -5.0), (9.0, 9.0))  # the paper's
BOUNDS = (-11.0, 11.0)  # the paper's plotting window, both axes
PARETO_X2 = -8.3552  # the Pareto set: x2 = PARETO_X2, x1 in PARETO_X1
PARETO_X1 = (-7.0, 7.0)
AVERAGE_MINIMUM = (0.0, PARETO_X2)
PAPER_STEPS = 100_000
PAPER_LR = 1e-3
# The paper's CAGrad constant, and its toy's scale (divide by 1 + c); the scale does not move Adam.
METHOD_PARAMS: dict[str, dict[str, object]] = {"cagrad": {"c": 0.5, "rescale": "linear"}}
OPTIMIZERS = ("adam", "sgd")


def losses(x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f1, f2 at the points (x1, x2) (arrays of any one shape)."""
    x1, x2 = np.asarray(x1, dtype=np.float64), np.asarray(x2, dtype=np.float64)
    t = np.tanh(x2)
    log_a = np.log(np.maximum(np.abs(-0.5 * x1 - 3.5 + t), LOWER)) + 6.0
    log_b = np.log(np.maximum(np.abs(-0.5 * x1 + 3.5 - t), LOWER)) + 6.0
    h = np.tanh(0.5 * x2)
    c1, c2 = np.maximum(h, 0.0), np.maximum(-h, 0.0)
    valley = 0.01 * (x2 + 8.0) ** 2 - 20.0
    f1 = c1 * log_a + c2 * (0.1 * (x1 - 7.0) ** 2 + valley)
    f2 = c1 * log_b + c2 * (0.1 * (x1 + 7.0) ** 2 + valley)
    return f1, f2


def task_gradient(x1: float, x2: float, side: float) -> tuple[float, float]:
    """``(d/dx1, d/dx2)`` of f1 (``side`` +1) or f2 (``side`` -1) at one point, analytic.

    The two losses mirror each other: f1's log argument is ``-x1/2 - 3.5 + tanh(x2)`` and its
    quadratic valley sits at x1 = 7, f2's are ``-x1/2 + 3.5 - tanh(x2)`` and x1 = -7. Where a clamp
    is active (``max(|.|, 5e-6)``, ``max(tanh, 0)``) the derivative is autograd's: zero through the
    clamped branch. Plain ``math`` on floats: the compiled toy (:mod:`mtl_core.toy_kernel`) runs it.
    """
    t = math.tanh(x2)
    arg = side * (t - 3.5) - 0.5 * x1  # the log's argument before |.|
    size = abs(arg)
    dlog = 1.0 / arg if size > LOWER else 0.0  # d log max(|arg|, LOWER) / d arg
    log_term = math.log(max(size, LOWER)) + 6.0
    h = math.tanh(0.5 * x2)
    c1 = max(h, 0.0)
    c2 = c1 - h  # = max(-h, 0)
    dh = 0.5 - 0.5 * h * h
    dc1 = dh if h > 0.0 else 0.0
    dc2 = dc1 - dh  # = -dh where h < 0, 0 where h > 0 (h = 0 exactly: a kink, either side's slope)
    offset = x1 - 7.0 * side
    shift = x2 + 8.0
    quadratic = 0.1 * offset * offset + (0.01 * shift * shift - 20.0)
    d_x1 = (-0.5 * c1) * dlog + (0.2 * c2) * offset
    d_x2 = dc1 * log_term + c1 * (1.0 - t * t) * side * dlog + dc2 * quadratic + 0.02 * c2 * shift
    return d_x1, d_x2


def gradients(x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The task gradients at points ``x1, x2`` ([B] each): ``(d/dx1, d/dx2)``, each ``[2 tasks, B]``."""
    values = np.array([[task_gradient(a, b, side) for a, b in zip(np.ravel(x1), np.ravel(x2), strict=True)]
                       for side in (1.0, -1.0)]).reshape(2, -1, 2)
    return values[..., 0], values[..., 1]


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
        from mtl_core.aggregation import TwoTaskRule, make_aggregator
        from mtl_core.methods import METHODS

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
        import torch

        return self.aggregators[row](torch.from_numpy(jacobian)).update.numpy()


def simulate(methods: Sequence[str], starts: Sequence[tuple[float, float]] = STARTS, steps: int = PAPER_STEPS,
             lr: float = PAPER_LR, optimizer: str = "adam", every: int = 100) -> pd.DataFrame:
    """Run every method from every start; one row per (method, start, recorded step).

    Columns ``method, start, step, x1, x2, f1, f2``; ``start`` is the index into ``starts``; steps
    0, ``every``, 2 ``every``, ... and the last are recorded. ``ew`` is gradient descent on
    f1 + f2; every other method is a registered gradient aggregation with the paper's settings
    (:data:`METHOD_PARAMS`). The steps run compiled (:mod:`mtl_core.toy_kernel`), not one Python
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
    from mtl_core import toy_kernel

    blocks = [toy_kernel.trajectories(d.rule, d.update, np.array(starts), steps, lr, optimizer == "adam", every)
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


def loss_grid(points: int = 121) -> pd.DataFrame:
    """f1, f2 and their mean on a ``points`` x ``points`` grid over the paper's window (long format:
    ``x1, x2, f1, f2, mean``), for contour plots."""
    axis = np.linspace(*BOUNDS, points)
    x1, x2 = np.meshgrid(axis, axis)
    f1, f2 = losses(x1, x2)
    return pd.DataFrame({"x1": x1.ravel(), "x2": x2.ravel(), "f1": f1.ravel(), "f2": f2.ravel(),
                         "mean": 0.5 * (f1 + f2).ravel()})
