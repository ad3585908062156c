"""Nash-MTL (Navon et al., ICML 2022): the update as the Nash bargaining solution between the tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mtl_core.methods.base import Aggregation, GramAggregator, np, torch
from mtl_core.registry import JACOBIAN_COST, Knob, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor

RESIDUAL_TOL = 1e-12  # Newton stops at max_t |w_t (G w)_t - 1| <= this
ACCEPT_TOL = 1e-3  # the official code's stopping tolerance: a looser answer is a failure


@dataclass(frozen=True)
class NashSolution:
    weights: np.ndarray  # positive, with w_t (G w)_t = 1 to ``residual``
    iterations: int
    residual: float  # max_t |w_t (G w)_t - 1|


def nash_weights(gram: np.ndarray, start: np.ndarray, *, max_iter: int = 20) -> NashSolution:
    """Solve the bargaining condition ``w_t (G w)_t = 1``, ``w > 0``, by damped Newton.

    The condition is the stationarity of ``f(w) = 1/2 w^T G w - sum_t log w_t`` (its gradient is
    ``G w - 1 / w``), which is strictly convex on ``w > 0`` and self-concordant (a PSD quadratic
    plus a log barrier). So Newton's method with the classical damping ``1 / (1 + lambda)``
    (lambda the Newton decrement) never leaves ``w > 0`` and converges from any start, then
    quadratically once ``lambda < 1/4`` (full steps). Its Hessian ``G + diag(1 / w^2)`` is
    positive definite even where G is singular. The minimiser exists unless some convex
    combination of the task gradients is zero (then ``f`` decreases without bound along it: the
    point is Pareto-stationary and there is no bargaining solution); the iterations then do not
    converge, which the caller sees in ``residual``.
    """
    w = np.array(start, dtype=np.float64)
    residual = math.inf
    for iteration in range(max_iter + 1):
        g_w = gram @ w
        residual = float(np.max(np.abs(w * g_w - 1.0)))
        if not math.isfinite(residual) or residual <= RESIDUAL_TOL or iteration == max_iter:
            return NashSolution(w, iteration, residual)
        gradient = g_w - 1.0 / w
        hessian = gram + np.diag(1.0 / (w * w))
        try:
            step = -np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return NashSolution(w, iteration, math.inf)
        decrement = math.sqrt(max(float(-gradient @ step), 0.0))
        w = w + (step if decrement < 0.25 else step / (1.0 + decrement))
        if not np.all(w > 0.0):  # only rounding can do this (the damped step stays inside)
            return NashSolution(w, iteration + 1, math.inf)
    return NashSolution(w, max_iter, residual)  # pragma: no cover - the loop returns


class NashMTL(GramAggregator):
    """Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, "Multi-Task
    Learning as a Bargaining Game", ICML 2022, arXiv:2202.01017).

    The update ``d = sum_t w_t g_t`` is the Nash bargaining solution of the tasks, each with
    utility ``<g_t, d>`` (their first-order decrease): ``w`` solves ``w_t (G w)_t = 1`` with
    ``w > 0``, ``G = J J^T``. As in the official code, ``G`` is first divided by its Frobenius
    norm (so the update's norm is ``sqrt(T ||J J^T||_F)``, on the gradients' scale, rather than the
    paper's scale-free ``sqrt(T)``), the solve warm-starts from the previous weights, the weights
    are recomputed every ``update_weights_every`` steps and reused in between, and the update is
    clipped to norm ``max_norm`` (0: no clipping) -- the clipped weights are reported, so
    ``update == weights @ J`` still holds. Task-specific parameters are the trainer's business:
    it gives each head its own loss's gradient (the official code backpropagates ``w @ losses``,
    which scales each head's gradient by its ``w_t``).

    The official code solves the condition with a concave-convex procedure and cvxpy (ECOS),
    ``optim_niter`` = 20 iterations at most. Here a dedicated damped-Newton solver
    (:func:`nash_weights`) on the T x T matrix takes ``optim_niter`` Newton steps at most (it
    usually needs a handful; the first solve, and any the warm start cannot finish, starts from
    ``1 / |g_t|``, which Newton's affine invariance makes the same as starting from ones on the
    cosine matrix). If it does not reach the official tolerance (1e-3 on the
    condition) -- a singular or degenerate Jacobian, e.g. a zero convex combination of the task
    gradients -- the previous weights are kept (as the official code does when its solver fails),
    and the first time equal weights of 1; the step's message says so.
    """

    def __init__(self, n_tasks: int, *, update_weights_every: int = 1, optim_niter: int = 20,
                 max_norm: float = 1.0) -> None:
        super().__init__(n_tasks)
        if int(update_weights_every) != update_weights_every or update_weights_every < 1:
            raise ValueError(f"update_weights_every must be a whole number of at least 1 (got {update_weights_every!r})")
        if int(optim_niter) != optim_niter or optim_niter < 1:
            raise ValueError(f"optim_niter must be a whole number of at least 1 (got {optim_niter!r})")
        if not (math.isfinite(max_norm) and max_norm >= 0.0):
            raise ValueError(f"max_norm must be a non-negative number (got {max_norm!r})")
        self.update_weights_every = int(update_weights_every)
        self.optim_niter = int(optim_niter)
        self.max_norm = float(max_norm)
        self.reset()

    def reset(self) -> None:
        self._weights = np.ones(self.n_tasks)
        self._solved = False  # whether _weights came from a successful solve
        self._step = 0

    def __call__(self, jacobian: Tensor, /) -> Aggregation:
        # GramAggregator's steps, except that the Gram matrix is formed only on the steps that
        # solve (the weights are reused in between) and that the update is clipped after the product.
        self.message = None
        if self._step % self.update_weights_every == 0:
            self.weights(self.gram(jacobian), torch.finfo(jacobian.dtype).eps)
        self._step += 1
        weights = torch.as_tensor(self._weights, dtype=jacobian.dtype, device=jacobian.device)
        update = weights @ jacobian
        if self.max_norm > 0.0:
            # torch.nn.utils.clip_grad_norm_'s rule, as the official code applies it.
            coefficient = self.max_norm / (float(update.norm()) + 1e-6)
            if coefficient < 1.0:
                weights = weights * coefficient
                update = update * coefficient
        return Aggregation(update, weights, self.message)

    def weights(self, gram: Tensor, eps: float) -> Tensor:
        """Solve the bargaining condition on ``gram`` and keep the weights (float64, CPU): the new
        ones, or where the solve fails the previous ones (equal weights of 1 the first time), with
        a message."""
        self.message = self._update_weights(gram.numpy())
        return torch.as_tensor(self._weights)

    def _update_weights(self, gram: np.ndarray) -> str | None:
        norm = float(np.linalg.norm(gram))
        squared_norms = np.diag(gram)
        if math.isfinite(norm) and norm > 0.0 and np.all(squared_norms > 0.0):
            gram = gram / norm
            # Warm start from the last weights (as the official code); else, or if that fails, from
            # 1 / |g_t|: Newton is affine-invariant, so this is starting from ones on the cosine
            # matrix, where orthogonal gradients are already solved.
            starts = [self._weights] if self._solved else []
            starts.append(1.0 / np.sqrt(squared_norms / norm))
            for start in starts:
                solution = nash_weights(gram, _rescaled(gram, start), max_iter=self.optim_niter)
                if solution.residual <= ACCEPT_TOL and np.all(solution.weights > 0.0):
                    self._weights, self._solved = solution.weights, True
                    return None
            why = (f"the bargaining solver did not converge in {self.optim_niter} Newton steps "
                   f"(residual {solution.residual:.1e}: the gradients may be close to Pareto-stationary)")
        else:
            why = "a task gradient is zero or not finite"
        kept = "kept the previous weights" if self._solved else "used equal weights of 1"
        if not self._solved:
            self._weights = np.ones(self.n_tasks)
        return f"Nash-MTL: {why}; {kept}"


ENTRY = MethodInfo(
    key="nash_mtl",
    name="Nash-MTL",
    kind="aggregation",
    category="multi-objective",
    summary="Treat the tasks as players bargaining over the update: take the Nash bargaining "
            "solution, in which each task's first-order progress is the inverse of its weight.",
    formula=(r"d = \sum_{t=1}^{T} w_t\, g_t,\quad w_t\,(G w)_t = 1,\ w > 0,\ \ "
             r"G = \frac{J J^{\top}}{\lVert J J^{\top} \rVert_F};\qquad "
             r"d \leftarrow d \cdot \min\!\Big(1, \frac{\text{max\_norm}}{\lVert d \rVert}\Big)"),
    cost=JACOBIAN_COST,
    factory="mtl_core.methods.nash_mtl:NashMTL",
    knobs=(
        Knob(name="update_weights_every", label="Recompute weights every", kind="int", default=1,
             low=1, high=100,
             help="Solve for new weights every this many steps and reuse them in between (paper: 1; "
                  "larger is cheaper)."),
        Knob(name="optim_niter", label="Solver iterations", kind="int", default=20, low=1, high=100,
             help="Most solver iterations per solve (the paper's 20); here they are Newton steps, "
                  "which usually converge in under ten."),
        Knob(name="max_norm", label="Max update norm", default=1.0, low=0.0, high=100.0,
             help="Clip the update of the shared parameters to this norm, as the official code "
                  "does (0: no clipping)."),
    ),
    paper=Paper(authors="Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya",
                title="Multi-Task Learning as a Bargaining Game", venue="ICML", year=2022,
                arxiv="2202.01017"),
    extra={
        "simplified": "The bargaining condition is solved by a dedicated Newton method on the"
                      " T x T matrix instead of the official code's convex solver (same "
                      "solution); the task heads get their own unweighted gradients.",
        "known_for": "Treating the update as a bargaining game between the tasks, which makes"
                     " it invariant to the gradients' scales; at or near the top of NYUv2, "
                     "CityScapes, QM9 and MT10 in its paper.",
        "struggles_with": "Among the costliest per step (the whole Jacobian plus an iterative"
                          " solver); its authors update the weights only every few steps to "
                          "afford it, and FAMO later came close for far less.",
        "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "nash_mtl", "steps": 300},
                   "why": "The left and right digits share one trunk and their gradients "
                          "often conflict: watch the cosines and how Nash-MTL combines them."},
    },
)


def _rescaled(gram: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``weights`` times the scalar that solves the condition on average: ``s^2 w^T G w = T``."""
    quadratic = float(weights @ gram @ weights)
    return weights * math.sqrt(len(weights) / quadratic) if quadratic > 0.0 else weights
