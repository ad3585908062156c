"""The two-objective toy of the CAGrad paper (Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient
Descent for Multi-task Learning", NeurIPS 2021, arXiv:2110.14048, Fig. 1 and its official toy code):
the problem alone, its losses, their analytic gradients and the loss surface. Its simulation is
:mod:`mtl_core.lab.toy`.

Two losses of x = (x1, x2) whose valleys conflict: for x2 > 0 each is a log-barrier valley, for
x2 < 0 a shifted quadratic; the Pareto set is the segment x2 = -8.3552, x1 in [-7, 7], and the
average loss is smallest at (0, -8.3552). The paper runs Adam (lr 0.001, 100,000 steps) from three
starts and observes: gradient descent on the average stalls from some starts, MGDA and PCGrad reach
the Pareto set at arbitrary points, CAGrad (c = 0.5) reaches the average's minimum.

Plain numpy and ``math``: a page that draws the loss surface imports neither numba nor torch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

LOWER = 5e-6  # the official code's clamp on the log's argument
STARTS: tuple[tuple[float, float], ...] = ((-8.5, 7.5), (-8.5, -5.0), (9.0, 9.0))  # the paper's
BOUNDS = (-11.0, 11.0)  # the paper's plotting window, both axes
PARETO_X2 = -8.3552  # the Pareto set: x2 = PARETO_X2, x1 in PARETO_X1
PARETO_X1 = (-7.0, 7.0)
AVERAGE_MINIMUM = (0.0, PARETO_X2)


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
    clamped branch. Plain ``math`` on floats: the compiled toy (:mod:`mtl_core.lab.kernel`) runs it.
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


def loss_grid(points: int = 121) -> pd.DataFrame:
    """f1, f2 and their mean on a ``points`` x ``points`` grid over the paper's window (long format:
    ``x1, x2, f1, f2, mean``), for contour plots."""
    axis = np.linspace(*BOUNDS, points)
    x1, x2 = np.meshgrid(axis, axis)
    f1, f2 = losses(x1, x2)
    return pd.DataFrame({"x1": x1.ravel(), "x2": x2.ravel(), "f1": f1.ravel(), "f2": f2.ravel(),
                         "mean": 0.5 * (f1 + f2).ravel()})
