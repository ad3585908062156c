"""The two-objective toy of the CAGrad paper (Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient
Descent for Multi-task Learning", NeurIPS 2021, arXiv:2110.14048, Fig. 1 and its official toy code).

Two losses of x = (x1, x2) whose valleys conflict: for x2 > 0 each is a log-barrier valley, for
x2 < 0 a shifted quadratic; the Pareto set is the segment x2 = -8.3552, x1 in [-7, 7], and the
average loss is smallest at (0, -8.3552). The paper runs Adam (lr 0.001, 100,000 steps) from three
starts and observes: gradient descent on the average stalls from some starts, MGDA and PCGrad reach
the Pareto set at arbitrary points, CAGrad (c = 0.5) reaches the average's minimum.

:func:`simulate` steps every (method, start) trajectory together, vectorised over trajectories:
the task gradients are analytic (numpy, float64), each gradient method combines them through its
aggregator's batched entry, :meth:`~mtl_core.aggregation.Aggregator.batch_weights` -- the
trainer's implementation, held equal to its ``__call__`` by the tests -- and Adam is written out as
``torch.optim.Adam`` computes it. A method without a batched form falls back to one ``__call__`` per
trajectory per step (slow, but the same answer).
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
_ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the official code uses them
_ADAM_EPS = 1e-8


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


_SIDE = np.array([[1.0], [-1.0]])  # f1's log argument has +tanh(x2), f2's -tanh(x2)
_LOG_SHIFT = np.array([[-3.5], [3.5]])
_VALLEY_CENTRE = np.array([[7.0], [-7.0]])  # f1's quadratic valley sits at x1 = 7, f2's at -7


def gradients(x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The task gradients at points ``x1, x2`` ([B] each), analytic: ``(d/dx1, d/dx2)``, each
    ``[2 tasks, B]``.

    Where a clamp is active (``max(|.|, 5e-6)``, ``max(tanh, 0)``) the derivative is autograd's:
    zero through the clamped branch. Both tasks are computed in one pass of [2, B] arrays: this
    runs once per step of every simulation, and on a dozen points numpy's cost is per call.
    """
    t = np.tanh(x2)
    arg = _SIDE * t + (_LOG_SHIFT - 0.5 * x1)  # [2, B]: the logs' arguments before |.|
    size = np.abs(arg)
    unclamped = size > LOWER
    dlog = unclamped / (arg + ~unclamped)  # d log max(|arg|, LOWER) / d arg: 1/arg, 0 where clamped
    log_term = np.log(np.maximum(size, LOWER)) + 6.0
    h = np.tanh(0.5 * x2)
    c1 = np.maximum(h, 0.0)
    c2 = c1 - h  # = max(-h, 0)
    dh = 0.5 - 0.5 * h * h
    dc1 = dh * (h > 0.0)
    dc2 = dc1 - dh  # = -dh where h < 0, 0 where h > 0 (h = 0 exactly: a kink, either side's slope)
    offset = x1 - _VALLEY_CENTRE  # [2, B]
    shift = x2 + 8.0
    quadratic = 0.1 * offset * offset + (0.01 * shift * shift - 20.0)
    d_x1 = (-0.5 * c1) * dlog + (0.2 * c2) * offset
    d_x2 = dc1 * log_term + (c1 * (1.0 - t * t)) * _SIDE * dlog + dc2 * quadratic + 0.02 * c2 * shift
    return d_x1, d_x2


class _Direction:
    """One method's task weights (or update) for its block of trajectories."""

    def __init__(self, method: str, count: int) -> None:
        from mtl_core.aggregation import make_aggregator
        from mtl_core.methods import METHODS

        entry = METHODS[method]  # an unknown key raises the registry's message
        self.sum_of_losses = entry.key == "ew"
        if entry.kind != "aggregation" and not self.sum_of_losses:
            raise ValueError(f"{entry.name} weights losses; the toy simulates gradient methods and "
                             "equal weighting (descent on the summed loss)")
        self.aggregators = []
        self.batched = self.sum_of_losses
        if not self.sum_of_losses:
            params = METHOD_PARAMS.get(method, {})
            probe = make_aggregator(method, 2, **params)
            self.batched = probe.batch_weights(np.eye(2)[None]) is not None
            # Methods without a batched form may carry state between steps: one instance per trajectory.
            self.aggregators = [probe] if self.batched else [make_aggregator(method, 2, **params) for _ in range(count)]

    def weights(self, grams: np.ndarray, out: np.ndarray) -> None:
        """Batched methods: write the task weights of ``grams`` [b, 2, 2] into ``out`` [b, 2]."""
        out[...] = 1.0 if self.sum_of_losses else self.aggregators[0].batch_weights(grams)

    def updates(self, jac: np.ndarray) -> np.ndarray:
        """The others: ``jac`` [b, 2 tasks, 2 coordinates] -> updates [b, 2], one call per trajectory."""
        import torch

        return np.stack([agg(torch.from_numpy(j)).update.numpy() for agg, j in zip(self.aggregators, jac, strict=True)])


def simulate(methods: Sequence[str], starts: Sequence[tuple[float, float]] = STARTS, steps: int = PAPER_STEPS,
             lr: float = PAPER_LR, optimizer: str = "adam", every: int = 100) -> pd.DataFrame:
    """Run every method from every start; one row per (method, start, recorded step).

    Columns ``method, start, step, x1, x2, f1, f2``; ``start`` is the index into ``starts``; steps
    0, ``every``, 2 ``every``, ... and the last are recorded. ``ew`` is gradient descent on
    f1 + f2; every other method is a registered gradient aggregation with the paper's settings
    (:data:`METHOD_PARAMS`). All trajectories advance together, one vectorised step at a time.
    """
    methods = list(dict.fromkeys(methods))
    starts = [(float(a), float(b)) for a, b in starts]
    if not methods or not starts:
        raise ValueError("pick at least one method and one start point")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {optimizer!r})")
    if steps < 0 or every < 1 or not lr > 0:
        raise ValueError("steps must be >= 0, every >= 1 and lr > 0")
    n_starts = len(starts)
    directions = [_Direction(method, n_starts) for method in methods]
    blocks = [slice(i * n_starts, (i + 1) * n_starts) for i in range(len(methods))]
    # Equal weighting's weights are the ones the array starts with: nothing to do per step.
    batched = [(block, d) for block, d in zip(blocks, directions, strict=True) if d.batched and not d.sum_of_losses]
    looped = [(block, d) for block, d in zip(blocks, directions, strict=True) if not d.batched]
    x = np.tile(np.array(starts, dtype=np.float64), (len(methods), 1))  # [B, 2], method-major
    x1, x2 = x[:, 0], x[:, 1]  # views: they follow x
    jac = np.empty((x.shape[0], 2, 2))  # [B, task, coordinate]
    weights = np.ones((x.shape[0], 2))
    m, v = np.zeros_like(x), np.zeros_like(x)
    beta1, beta2 = _ADAM_BETAS
    frames, recorded = [x.copy()], [0]
    for step in range(1, steps + 1):
        d_x1, d_x2 = gradients(x1, x2)
        jac[:, :, 0] = d_x1.T
        jac[:, :, 1] = d_x2.T
        grams = jac @ jac.transpose(0, 2, 1)
        for block, direction in batched:
            direction.weights(grams[block], weights[block])
        update = (weights[:, :, None] * jac).sum(axis=1)
        for block, direction in looped:
            update[block] = direction.updates(jac[block])
        if optimizer == "adam":
            # torch.optim.Adam (no weight decay, no amsgrad), step for step.
            m += (1.0 - beta1) * (update - m)  # = beta1 m + (1 - beta1) update
            v += (1.0 - beta2) * (update * update - v)
            denominator = np.sqrt(v) * (1.0 / math.sqrt(1.0 - beta2**step)) + _ADAM_EPS
            x -= (lr / (1.0 - beta1**step)) * m / denominator
        else:
            x -= lr * update
        if step % every == 0 or step == steps:
            frames.append(x.copy())
            recorded.append(step)
    return _frame(methods, n_starts, recorded, np.stack(frames))


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
