"""Projection onto the dual cone of the task gradients, on the T x T Gram matrix (UPGrad's QP).

The dual cone of the rows of J is {x : J x >= 0}: the directions that conflict with no task.
Projecting a combination ``J^T u`` of the rows onto it gives again a combination ``J^T v`` of the
rows, where (Quinton & Rey 2024, arXiv:2406.16232, Proposition 1)

    v = argmin_{v >= u} v^T G v,        G = J J^T,

so the whole problem lives on the T x T Gram matrix, whatever the number of parameters. With
``v = u + lam`` it is a non-negative quadratic program in ``lam``,

    minimise  1/2 lam^T G lam + lam^T (G u)   subject to  lam >= 0,

solved here exactly (to a tolerance) by the Lawson-Hanson active-set method written for the Gram
form: free the coordinate whose gradient points inwards the most, solve the unconstrained problem
on the free coordinates, and step back to the feasible region when one of them would turn
negative. A few linear solves of at most T x T suffice. Optimality is the KKT system

    lam >= 0,    mu = G (u + lam) >= 0,    lam_k mu_k = 0,

where ``mu = J (J^T v)`` holds the inner products of the projection with every task gradient: the
projection conflicts with none of them.

Why the CPU, float64 and NumPy: the problem is T x T (T is a handful of tasks), so a GPU would
spend its time launching kernels and float64 keeps the active-set decisions stable when
gradients are nearly parallel; the loop runs on NumPy arrays because a NumPy call on a 6 x 6 array
costs about a fifth of the same torch call (measured here: 0.12 ms against 0.84 ms per UPGrad
step with 2 tasks). Only the T x T Gram matrix crosses over, once per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mtl_core.methods.base import np, torch

if TYPE_CHECKING:
    from torch import Tensor

# KKT tolerance on the Gram matrix normalised to unit mean diagonal (gradients of unit mean
# squared norm): an inner product above -1e-10 between unit-scale vectors counts as no conflict.
TOLERANCE = 1e-10


@dataclass(frozen=True)
class DualConeProjection:
    """``weights[k]`` = v for ``u[k]`` (float64, CPU); ``converged`` is False when the iteration
    cap was hit (the last iterate is returned: feasible, possibly not optimal)."""

    weights: Tensor
    converged: bool


def project_to_dual_cone(gram: Tensor, u: Tensor, *, max_solves: int | None = None) -> DualConeProjection:
    """Weights of the projections of ``J^T u[k]`` onto the dual cone of the rows of ``J``.

    ``gram`` is ``J J^T`` ([T, T], symmetric positive semi-definite), ``u`` is [K, T] (one
    combination to project per row; UPGrad projects every task gradient: ``u = I``). Returns
    ``v`` [K, T] with ``pi(J^T u[k]) = J^T v[k]``.
    """
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or u.ndim != 2 or u.shape[1] != gram.shape[0]:
        raise ValueError(f"expected gram [T, T] and u [K, T], got {tuple(gram.shape)} and {tuple(u.shape)}")
    g = gram.detach().to("cpu", torch.float64).numpy()
    targets = u.detach().to("cpu", torch.float64).numpy()
    g = (g + g.T) / 2
    scale = float(np.trace(g)) / g.shape[0]
    if not scale > 0:  # every gradient is zero: the dual cone is the whole space
        return DualConeProjection(weights=torch.from_numpy(targets.copy()), converged=True)
    g = g / scale  # the solution does not change when G is scaled; the tolerance becomes absolute
    cap = max_solves if max_solves is not None else 10 * g.shape[0] + 10
    rows, converged = [], True
    for target in targets:
        lam, ok = _nonnegative_qp(g, g @ target, cap)
        rows.append(target + lam)
        converged = converged and ok
    return DualConeProjection(weights=torch.from_numpy(np.stack(rows)), converged=converged)


def _nonnegative_qp(gram: np.ndarray, linear: np.ndarray, cap: int) -> tuple[np.ndarray, bool]:
    """argmin_{lam >= 0} 1/2 lam^T G lam + lam^T linear (Lawson-Hanson); and whether the KKT
    conditions were met within ``cap`` linear solves."""
    size = gram.shape[0]
    lam = np.zeros(size)
    free = np.zeros(size, dtype=bool)
    solves = 0
    while True:
        gradient = linear + gram @ lam
        # A coordinate held at 0 whose gradient points inwards would lower the objective.
        entering = ~free & (gradient < -TOLERANCE)
        if not entering.any():
            return lam, True
        free[np.argmin(np.where(entering, gradient, np.inf))] = True
        while True:
            solves += 1
            if solves > cap:
                return lam, False
            candidate = _solve_on(gram, linear, free)
            blocking = free & (candidate <= TOLERANCE)
            if not blocking.any():
                lam = candidate
                break
            # Walk from lam towards the candidate until the first free coordinate reaches 0; the
            # coordinates at 0 leave the free set, and the smaller problem is solved again.
            step = np.min(lam[blocking] / (lam[blocking] - candidate[blocking]))
            lam = lam + min(max(step, 0.0), 1.0) * (candidate - lam)
            free &= lam > TOLERANCE
            lam = np.where(free, lam, 0.0)
            if not free.any():
                break


def _solve_on(gram: np.ndarray, linear: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The minimiser over the free coordinates, the others held at 0.

    ``G_FF x = -linear_F`` is consistent (``linear`` = G u lies in the range of G) but singular
    when the free tasks' gradients are linearly dependent: the least-squares solution is then one
    of the minimisers, and every minimiser gives the same projection ``J^T v``.
    """
    index = np.flatnonzero(free)
    sub = gram[np.ix_(index, index)]
    try:
        solution = np.linalg.solve(sub, -linear[index])
    except np.linalg.LinAlgError:
        solution = np.linalg.lstsq(sub, -linear[index], rcond=None)[0]
    result = np.zeros_like(linear)
    result[index] = solution
    return result
