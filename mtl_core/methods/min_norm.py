"""The min-norm point of the convex hull of the task gradients, from their Gram matrix.

Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018
(arXiv:1810.04650): Algorithm 1 (the closed form for two vectors) and Algorithm 2 (Frank-Wolfe over
the simplex of task weights, with Algorithm 1 as its exact line search). Everything here reads only
the T x T Gram matrix ``G = J J^T``: ``|sum_t w_t g_t|^2 = w^T G w`` and
``<sum_t w_t g_t, g_r> = (G w)_r``, so the cost does not grow with the number of parameters.

Frank-Wolfe converges as O(1/k): measured here on random conflicting gradients, the official
stopping rule (weights moving less than 1e-5) is usually not met within the official 250
iterations, and the result is then off by up to ~1e-3 of the gradients' squared norms -- enough to
train with, not enough for the property the method stands for (no task's loss increases to first
order), and ~2 ms of Python per step. So Frank-Wolfe runs until its duality gap is below
``FW_GAP`` (a handful of iterations: it has then found the neighbourhood of the optimal face),
and Wolfe's minimum-norm-point active-set steps (Wolfe, "Finding the nearest point in a
polytope", Math. Programming 1976) finish from there: on the current support they solve the small
linear system of the affine min-norm point, drop tasks whose weight would turn negative, add the
task that most violates optimality, and stop when the optimality conditions hold to rounding. The answer is the paper's (the same min-norm point), only
exact; if the finish fails numerically, the Frank-Wolfe iterate is returned with its gap.

The solver works on the CPU in float64 (numpy): a T x T problem solved by a Python-level loop is
dominated by per-operation launch costs on a GPU; one copy of T^2 numbers is cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtl_core.methods.base import np

MAX_ITER = 250  # Frank-Wolfe iterations at most: the official code's MinNormSolver.MAX_ITER
FW_GAP = 1e-2  # Frank-Wolfe hands over at this duality gap (relative to the largest squared norm) ...
OPTIMALITY_TOL = 1e-12  # ... and the exact finish stops at this one


@dataclass(frozen=True)
class MinNormSolution:
    """Weights on the simplex and how well they solve ``min_w w^T G w``.

    ``gap`` is the Frank-Wolfe duality gap ``w^T G w - min_r (G w)_r`` divided by ``max_t G_tt``:
    an upper bound on how far ``|u|^2`` is above the optimum, and on how much any task's
    first-order decrease ``<u, g_r>`` can fall short of ``|u|^2``. ``exact`` says the weights
    satisfy the optimality conditions to rounding; ``iterations`` counts Frank-Wolfe steps.
    """

    weights: np.ndarray
    iterations: int
    gap: float
    exact: bool


def min_norm_two(g11: float, g12: float, g22: float) -> float:
    """Algorithm 1 of the paper: the gamma in [0, 1] minimising ``|gamma g1 + (1 - gamma) g2|^2``.

    Arguments are the inner products ``<g1, g1>``, ``<g1, g2>``, ``<g2, g2>``. (The official code
    returns 0.999 / 0.001 at the ends; the paper's formula, used here, returns 1 / 0.)
    """
    if g12 >= g11:  # g1 itself is the point of the segment closest to the origin
        return 1.0
    if g12 >= g22:
        return 0.0
    # Here g11 + g22 - 2 g12 > 0, since g12 < min(g11, g22).
    return (g22 - g12) / (g11 + g22 - 2.0 * g12)


def frank_wolfe(gram: np.ndarray, *, max_iter: int = MAX_ITER, gap_tol: float = 0.0) -> tuple[np.ndarray, int]:
    """Algorithm 2 of the paper: Frank-Wolfe from the uniform weights, with exact line search.

    Each step moves the weights towards the vertex (task) whose gradient has the smallest inner
    product with the current point, by the Algorithm-1 step between the current point and that
    task's gradient. Stops after ``max_iter`` steps or when the duality gap is ``<= gap_tol``.
    Returns the weights and the number of steps taken.
    """
    # Plain Python floats: for a few tasks, numpy's per-call overhead would dominate each step.
    rows = np.asarray(gram, dtype=np.float64).tolist()
    n = len(rows)
    weights = [1.0 / n] * n
    g_w = [sum(row) / n for row in rows]  # (G w)_r = <u, g_r>, updated in place of a matrix product
    for iteration in range(max_iter):
        current = sum(w * g for w, g in zip(weights, g_w, strict=True))
        vertex = min(range(n), key=g_w.__getitem__)
        if current - g_w[vertex] <= gap_tol:
            return np.array(weights), iteration
        gamma = min_norm_two(current, g_w[vertex], rows[vertex][vertex])
        weights = [gamma * w for w in weights]
        weights[vertex] += 1.0 - gamma
        column = rows[vertex]  # G is symmetric: row = column
        g_w = [gamma * g + (1.0 - gamma) * c for g, c in zip(g_w, column, strict=True)]
    return np.array(weights), max_iter


def min_norm_weights(gram: np.ndarray, *, max_iter: int = MAX_ITER, start: np.ndarray | None = None) -> MinNormSolution:
    """Weights ``w`` on the simplex minimising ``w^T G w``, so that ``w @ J`` is the min-norm point.

    Two tasks: the closed form (Algorithm 1). More: Frank-Wolfe (Algorithm 2) to a duality gap of
    ``FW_GAP``, then Wolfe's active-set steps to the exact point (see the module docstring). With
    ``start`` (weights of a nearby problem, e.g. the previous step's), Wolfe's steps are tried
    from there first, skipping Frank-Wolfe.
    """
    gram = np.asarray(gram, dtype=np.float64)
    n = gram.shape[0]
    if n == 1:
        return MinNormSolution(np.ones(1), 0, 0.0, True)
    scale = float(np.max(np.diag(gram)))
    if not scale > 0.0:  # every gradient is zero: every combination is the min-norm point
        return MinNormSolution(np.full(n, 1.0 / n), 0, 0.0, True)
    m = gram / scale  # squared norms at most 1: the tolerances are relative
    if n == 2:
        gamma = min_norm_two(m[0, 0], m[0, 1], m[1, 1])
        weights = np.array([gamma, 1.0 - gamma])
        return MinNormSolution(weights, 0, _gap(m, weights), True)
    if start is not None and start.shape == (n,) and np.all(start >= 0.0) and start.sum() > 0.0:
        exact = _wolfe_finish(m, start / start.sum())
        if exact is not None:
            return MinNormSolution(exact, 0, _gap(m, exact), True)
    weights, iterations = frank_wolfe(m, max_iter=max_iter, gap_tol=FW_GAP)
    exact = _wolfe_finish(m, weights)
    if exact is not None:
        return MinNormSolution(exact, iterations, _gap(m, exact), True)
    return MinNormSolution(weights, iterations, _gap(m, weights), False)


def _gap(m: np.ndarray, weights: np.ndarray) -> float:
    m_w = m @ weights
    return max(float(weights @ m_w - m_w.min()), 0.0)


def _affine_min_norm(m: np.ndarray, corral: np.ndarray) -> np.ndarray:
    """Weights summing to 1 on ``corral`` (zero elsewhere) minimising ``w^T M w`` over its affine
    hull: ``M_SS w = lambda 1, 1^T w = 1``. A singular system (affinely dependent gradients) is
    consistent, so least squares gives one of its minimisers."""
    index = np.flatnonzero(corral)
    k = len(index)
    system = np.zeros((k + 1, k + 1))
    system[:k, :k] = m[np.ix_(index, index)]
    system[:k, k] = system[k, :k] = 1.0
    rhs = np.zeros(k + 1)
    rhs[k] = 1.0
    try:
        solution = np.linalg.solve(system, rhs)
    except np.linalg.LinAlgError:
        solution = np.linalg.lstsq(system, rhs, rcond=None)[0]
    weights = np.zeros(m.shape[0])
    weights[index] = solution[:k]
    return weights


def _wolfe_finish(m: np.ndarray, start: np.ndarray) -> np.ndarray | None:
    """Wolfe's minimum-norm-point iterations from ``start``; None if they stall or break down."""
    n = m.shape[0]
    x = start.copy()
    corral = x > 0.0
    for _ in range(4 * n + 4):
        # Minor cycle: move to the affine min-norm point of the corral, keeping the weights >= 0.
        for _ in range(n + 1):
            y = _affine_min_norm(m, corral)
            if not np.all(np.isfinite(y)):
                return None
            if np.all(y[corral] > 0.0):
                x = y
                break
            leaving = corral & (y <= 0.0)
            theta = float(np.min(x[leaving] / (x[leaving] - y[leaving])))
            x = x + theta * (y - x)
            x[leaving & (x <= 1e-15)] = 0.0
            x[np.argmin(np.where(leaving, x, np.inf))] = 0.0  # the blocking task leaves
            corral = x > 0.0
            if not corral.any():
                return None
        else:
            return None
        # Major cycle: optimal when no task has a smaller inner product with u than |u|^2.
        m_x = m @ x
        entering = int(np.argmin(m_x))
        if float(x @ m_x) - m_x[entering] <= OPTIMALITY_TOL:
            x = np.clip(x, 0.0, None)
            return x / x.sum()
        if corral[entering]:
            return None  # rounding: the corral's own point is not optimal on it
        corral[entering] = True
    return None
