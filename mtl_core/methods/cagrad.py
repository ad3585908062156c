"""CAGrad (Liu et al., NeurIPS 2021): the average gradient, moved within a ball to lift the worst
task's decrease."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mtl_core.methods.base import GramAggregator, TwoTaskRule, np, torch
from mtl_core.methods.min_norm import min_norm_weights
from mtl_core.registry import JACOBIAN_COST, Knob, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor

RESCALES = ("quadratic", "linear", "none")  # divide by 1 + c^2, by 1 + c, or not
OPTIMALITY_TOL = 1e-10  # duality gap of the dual, relative to the largest squared gradient norm
_MAX_ROUNDS = 60
_GAP_WARNING = 1e-6


@dataclass(frozen=True)
class CAGradSolution:
    """Dual weights ``w`` on the simplex; ``gap`` bounds ``F(w) - min F`` (relative units)."""

    weights: np.ndarray
    rounds: int
    gap: float
    exact: bool


def cagrad_objective(gram: np.ndarray, weights: np.ndarray, c: float) -> float:
    """The dual ``F(w) = g_w . g_0 + c |g_0| |g_w|``, with ``g_w = w @ J`` and ``g_0`` the mean."""
    gram = np.asarray(gram, dtype=np.float64)
    mean = np.full(gram.shape[0], 1.0 / gram.shape[0])
    g0_norm = math.sqrt(max(float(mean @ gram @ mean), 0.0))
    return float(weights @ gram @ mean) + c * g0_norm * math.sqrt(max(float(weights @ gram @ weights), 0.0))


def cagrad_weights(gram: np.ndarray, c: float) -> CAGradSolution:
    """Minimise the CAGrad dual ``F(w) = g_w . g_0 + c |g_0| |g_w|`` over the simplex, exactly.

    The solver uses a fact of the dual: at its minimiser, ``x* = g_w*`` is the projection of
    ``-rho g_0`` onto the convex hull of the task gradients, for the ``rho > 0`` with
    ``|x*| = c |g_0| rho`` (the projection's optimality condition, divided by ``rho``, is the
    dual's). So it searches that one number: each round projects ``-rho g_0`` exactly (a min-norm
    problem on the shifted Gram matrix, :func:`min_norm_weights`), which tells on which side of
    the root ``rho`` is and on which face of the simplex the solution lies; on that face the
    projection is affine in ``rho``, so ``|x(rho)| = c |g_0| rho`` is a quadratic equation whose
    root is the next guess (bisection when it leaves the bracket). The answer is accepted once
    the dual's optimality conditions hold to ``OPTIMALITY_TOL``: usually two or three rounds.
    """
    gram = np.asarray(gram, dtype=np.float64)
    n = gram.shape[0]
    mean = np.full(n, 1.0 / n)
    scale = float(np.max(np.diag(gram)))
    if n == 1 or not scale > 0.0:
        return CAGradSolution(mean, 0, 0.0, True)
    m = gram / scale
    m_mean = m @ mean
    g0_sq = max(float(mean @ m_mean), 0.0)
    k = c * math.sqrt(g0_sq)
    if not k > 0.0:  # c = 0 or g_0 = 0: the update is g_0 whatever the weights
        return CAGradSolution(mean, 0, 0.0, True)

    if c >= 1.0:
        # Then F(w) >= (c - 1) |g_0| |g_w| >= 0: if the hull holds the origin, reaching it is optimal.
        nearest = min_norm_weights(m).weights
        if float(nearest @ m @ nearest) <= 1e-14:
            return CAGradSolution(nearest, 0, 0.0, True)
    lo, hi = 0.0, (1.0 + 1e-9) / k  # |x| <= max |g_t| = 1, so |x| - k rho < 0 beyond hi
    rho = min(1.0 / c, 0.5 * hi)  # |x*| = |g_0| would give rho = 1 / c
    weights = mean
    best: tuple[float, np.ndarray] = (math.inf, mean)
    for round_ in range(1, _MAX_ROUNDS + 1):
        shifted = m + rho * (m_mean[:, None] + m_mean[None, :]) + rho * rho * g0_sq
        weights = min_norm_weights(shifted, start=weights).weights
        if math.sqrt(max(float(weights @ m @ weights), 0.0)) > k * rho:
            lo = rho
        else:
            hi = rho
        next_rho = None
        for root, candidate in _face_roots(m, m_mean, k, weights > 1e-12):
            gap = _dual_gap(m, m_mean, k, candidate)
            if gap <= OPTIMALITY_TOL:
                return CAGradSolution(candidate, round_, gap, True)
            best = min(best, (gap, candidate), key=lambda item: item[0])
            if lo < root < hi and (next_rho is None or abs(root - rho) < abs(next_rho - rho)):
                next_rho = root
        gap = _dual_gap(m, m_mean, k, weights)
        best = min(best, (gap, weights), key=lambda item: item[0])
        if hi - lo <= 1e-15 * hi:
            break
        rho = next_rho if next_rho is not None and next_rho != rho else 0.5 * (lo + hi)
    return CAGradSolution(best[1], round_, best[0], best[0] <= OPTIMALITY_TOL)


def cagrad_weights_two(g11: float, g12: float, g22: float, c: float) -> float:
    """The dual's minimiser for two tasks: the weight ``w`` of g_1 in ``g_w = w g_1 + (1 - w) g_2``,
    so the dual weights are ``(w, 1 - w)``.

    On the segment, ``F(w) = p w + const + k |g_w|`` with ``p = (g11 - g22) / 2`` and
    ``k = c |g_0|`` is convex; with ``a = |g_1 - g_2|^2``, ``b = (g_1 - g_2) . g_2`` and
    ``D = g11 g22 - g12^2``, ``F'(w) = 0`` at ``a w + b = -p sqrt(D / (a k^2 - p^2))`` when
    ``a k^2 > p^2`` (clipped to [0, 1]); otherwise ``F`` is monotone and an end is optimal. This is
    the stationary point of the official toy code's ``minimize_scalar`` over [0, 1], in closed form.
    Where ``k = 0`` (c = 0 or g_0 = 0) every ``w`` gives the same direction and an end is returned.
    Written without divisions by ``k`` (no overflow) and with ``math`` only: the toy compiles it.
    """
    a = g11 + g22 - 2.0 * g12
    p = 0.5 * (g11 - g22)
    room = a * (c * c * 0.25 * (g11 + g22 + 2.0 * g12)) - p * p  # a k^2 - p^2
    if not room > 0.0:  # then F is monotone: p > 0, F increases, w = 0
        return 1.0 if p <= 0.0 else 0.0
    d = max(g11 * g22 - g12 * g12, 0.0)
    return min(max((-p * math.sqrt(d / room) - (g12 - g22)) / a, 0.0), 1.0)  # room > 0 implies a > 0


def cagrad_two_rule(g11: float, g12: float, g22: float, params: np.ndarray) -> tuple[float, float, bool]:
    """CAGrad's weights for two tasks (a :class:`~mtl_core.methods.base.TwoTaskRule`), ``params``
    ``(c, divisor)``: the dual by :func:`cagrad_weights_two`, then the update's weights
    ``(1 + 2 lam w_t) / divisor`` with ``lam = c |g_0| / |g_w|``, as :meth:`CAGrad._task_weights`
    computes them. Not ok where ``g_w`` vanishes (a zero or exactly opposite gradient): the
    direction is then a limit, which the general solver decides."""
    c, divisor = params[0], params[1]
    if not math.isfinite(g11 + g12 + g22):
        return 0.0, 0.0, False
    w = cagrad_weights_two(g11, g12, g22, c)
    gw_sq = g22 + w * (2.0 * (g12 - g22) + w * (g11 + g22 - 2.0 * g12))  # |g_2 + w (g_1 - g_2)|^2
    if gw_sq <= 1e-12 * max(g11, g22):
        return 0.0, 0.0, False
    g0_sq = max(0.25 * (g11 + g22 + 2.0 * g12), 0.0)
    lam = c * math.sqrt(g0_sq / gw_sq)
    scaled = 2.0 * lam * w
    return (scaled + 1.0) / divisor, (2.0 * lam - scaled + 1.0) / divisor, True


def _face_roots(m: np.ndarray, m_mean: np.ndarray, k: float, face: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """On ``face``, ``Proj(-rho g_0)`` has weights ``w_p + rho w_q``; the roots ``rho > 0`` of
    ``|x(rho)|^2 = k^2 rho^2`` whose weights are non-negative, with those weights."""
    index = np.flatnonzero(face)
    size = len(index)
    if size == 0:
        return []
    system = np.zeros((size + 1, size + 1))
    system[:size, :size] = m[np.ix_(index, index)]
    system[:size, size] = system[size, :size] = 1.0
    rhs = np.zeros((size + 1, 2))
    rhs[size, 0] = 1.0
    rhs[:size, 1] = -m_mean[index]
    try:
        solution = np.linalg.solve(system, rhs)
    except np.linalg.LinAlgError:
        solution = np.linalg.lstsq(system, rhs, rcond=None)[0]
    w_p, w_q = solution[:size, 0], solution[:size, 1]
    face_m = m[np.ix_(index, index)]
    a, b, c = float(w_p @ face_m @ w_p), float(w_p @ face_m @ w_q), float(w_q @ face_m @ w_q)
    lead = c - k * k  # (C - k^2) rho^2 + 2 B rho + A = 0
    if abs(lead) <= 1e-14 * max(c, k * k):
        roots = [-a / (2.0 * b)] if b != 0.0 else []
    else:
        disc = b * b - lead * a
        if disc < 0.0:
            return []
        roots = [(-b + sign * math.sqrt(disc)) / lead for sign in (1.0, -1.0)]
    found = []
    for root in roots:
        if not (root > 0.0 and math.isfinite(root)):
            continue
        face_weights = w_p + root * w_q
        if face_weights.min() < -1e-10:
            continue
        weights = np.zeros(m.shape[0])
        weights[index] = np.clip(face_weights, 0.0, None)
        found.append((root, weights / weights.sum()))
    return found


def _dual_gap(m: np.ndarray, m_mean: np.ndarray, k: float, weights: np.ndarray) -> float:
    """Frank-Wolfe gap ``grad . w - min grad`` of the dual at ``weights`` (inf where |g_w| = 0)."""
    m_w = m @ weights
    norm = math.sqrt(max(float(weights @ m_w), 0.0))
    if norm <= 1e-150:
        return math.inf
    grad = m_mean + k * m_w / norm
    return max(float(grad @ weights - grad.min()), 0.0)


class CAGrad(GramAggregator):
    """Conflict-Averse Gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021, arXiv:2110.14048).

    Among the directions within ``c |g_0|`` of the average gradient ``g_0``, take the one whose
    worst first-order decrease over the tasks, ``min_t <g_t, d>``, is largest. Its dual, over the
    simplex, is ``min_w g_w . g_0 + c |g_0| |g_w|``; the direction is ``d = g_0 + (c |g_0| /
    |g_w|) g_w``. The dual is solved exactly on the T x T Gram matrix by :func:`cagrad_weights`
    (no general-purpose optimiser). ``c = 0`` is plain gradient descent on the average.

    Scale, as the official supervised-learning code (NYUv2 / Cityscapes): the direction is
    multiplied by T "to match the sum loss" and divided by ``1 + c^2`` (``rescale="quadratic"``,
    the default there); the paper's toy divides by ``1 + c`` (``"linear"``) without the factor T;
    ``"none"`` keeps ``T d``. So with ``c = 0`` the update is the sum of the task gradients, equal
    weighting's. ``c``: the paper's toy and the official function default to 0.5; its NYUv2 and
    Cityscapes runs use 0.4, Meta-World 0.9.
    """

    def __init__(self, n_tasks: int, *, c: float = 0.5, rescale: str = "quadratic") -> None:
        super().__init__(n_tasks)
        if not (math.isfinite(c) and c >= 0.0):
            raise ValueError(f"c must be a non-negative number (got {c!r})")
        if rescale not in RESCALES:
            raise ValueError(f"rescale must be one of {', '.join(RESCALES)} (got {rescale!r})")
        self.c = float(c)
        self.rescale = rescale
        self._divisor = {"quadratic": 1.0 + self.c**2, "linear": 1.0 + self.c, "none": 1.0}[rescale]

    def fallback(self) -> tuple[float, str]:
        return 1.0 / self._divisor, "CAGrad: the task gradients are not finite; fell back to their sum"

    def weights(self, gram: Tensor, eps: float) -> Tensor:
        task_weights, solution = self._task_weights(gram.numpy())
        if not solution.exact and solution.gap > _GAP_WARNING:
            self.message = (f"CAGrad: the dual solver stopped after {solution.rounds} rounds with relative "
                            f"gap {solution.gap:.1e} (an approximate direction)")
        return torch.as_tensor(task_weights)

    def _task_weights(self, gram_np: np.ndarray) -> tuple[np.ndarray, CAGradSolution]:
        n = gram_np.shape[0]
        solution = cagrad_weights(gram_np, self.c)
        mean = np.full(n, 1.0 / n)
        g0_norm = math.sqrt(max(float(mean @ gram_np @ mean), 0.0))
        gw_norm = math.sqrt(max(float(solution.weights @ gram_np @ solution.weights), 0.0))
        lam = self.c * g0_norm / gw_norm if gw_norm > 0.0 else 0.0
        # d = sum_t (1/T + lam w_t) g_t; the update is T d / divisor.
        return (1.0 + n * lam * solution.weights) / self._divisor, solution

    def _two_task_rule(self) -> TwoTaskRule:
        """See :func:`cagrad_two_rule`."""
        return TwoTaskRule(cagrad_two_rule, (self.c, self._divisor))


ENTRY = MethodInfo(
    key="cagrad",
    name="CAGrad",
    kind="aggregation",
    category="multi-objective",
    summary="Stay within a ball around the average gradient and, inside it, pick the direction "
            "that most improves the worst-off task.",
    formula=(r"d = \arg\max_{\lVert d - g_0 \rVert \le c \lVert g_0 \rVert}\ \min_t\ g_t^{\top} d"
             r" = g_0 + \frac{c\lVert g_0\rVert}{\lVert g_w\rVert}\, g_w,\quad "
             r"w = \arg\min_{w \in \Delta^{T}} g_w^{\top} g_0 + c\lVert g_0\rVert \lVert g_w\rVert,"
             r"\quad g_0 = \tfrac{1}{T}\sum_t g_t;\qquad \text{update} = \frac{T\, d}{1 + c^2}"),
    cost=JACOBIAN_COST,
    factory="mtl_core.methods.cagrad:CAGrad",
    knobs=(
        Knob(name="c", label="Ball radius c", default=0.5, low=0.0, high=1.5,
             help="Radius of the ball around the average gradient, relative to its norm: 0 is "
                  "gradient descent on the sum; larger c favours the worst-off task more "
                  "(paper: 0.5; 0.4 on NYUv2 and Cityscapes)."),
        Knob(name="rescale", label="Rescaling", kind="choice", default="quadratic",
             choices=("quadratic", "linear", "none"),
             help="Divide the update by 1 + c² (quadratic, the official NYUv2 / Cityscapes code), "
                  "by 1 + c (linear, the paper's toy), or not at all."),
    ),
    paper=Paper(authors="Liu, Liu, Jin, Stone & Liu",
                title="Conflict-Averse Gradient Descent for Multi-task Learning", venue="NeurIPS",
                year=2021, arxiv="2110.14048"),
    extra={
        "known_for": "Trading the average loss off against the worst task's improvement while"
                     " still converging to a minimum of the average loss; strong on NYUv2, "
                     "CityScapes and Meta-World.",
        "struggles_with": "Its constant c must be tuned per problem (c = 0 is the plain "
                          "average; large c approaches MGDA), and each step solves a small "
                          "optimisation over the whole Jacobian.",
        "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "cagrad", "steps": 300},
                   "why": "The left and right digits share one trunk and their gradients "
                          "often conflict: watch the cosines and how CAGrad combines them."},
    },
)

