"""The Gradient lab's toy, compiled: one trajectory's steps in machine code (numba).

On a dozen 2-D points, numpy spends its time on the fixed cost of each call (~1 us), and a step of
the toy takes ~100 calls; the paper's 100,000 steps then take seconds. Compiled, a step costs tens
of nanoseconds. What runs compiled is the project's own Python: the toy's gradients
(:func:`mtl_core.lab.problem.task_gradient`) and each method's two-task rule
(:class:`~mtl_core.methods.base.TwoTaskRule`), with the plain functions they call. Numba is imported
here only, so training never loads it.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable

import numba
import numpy as np
from numba.extending import register_jitable

from mtl_core.lab.problem import task_gradient
from mtl_core.methods.base import TwoTaskRule

_ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the official code uses them
_ADAM_EPS = 1e-8
_registered: set[types.FunctionType] = set()


def _register_callees(function: types.FunctionType) -> None:
    """Let compiled code call the project's plain functions that ``function`` calls (recursively):
    numba compiles each where it is called, and it stays plain Python everywhere else."""
    for name in function.__code__.co_names:
        callee = function.__globals__.get(name)
        if (isinstance(callee, types.FunctionType) and callee.__module__.startswith("mtl_core")
                and callee not in _registered):
            _registered.add(callee)
            register_jitable(callee)
            _register_callees(callee)


@functools.cache
def compile_rule(function: types.FunctionType) -> numba.core.registry.CPUDispatcher:
    """A two-task rule's function, compiled (once per process)."""
    _register_callees(function)
    return numba.njit(function)


_register_callees(task_gradient)
_compiled_gradient = numba.njit(task_gradient)


@numba.njit
def _advance(rule, params, x, m, v, positions, row, step, forced, use_forced, lr, adam, every, steps, jacobian,
             first, end):
    """Step trajectories ``row``, ``row + 1``, ... (row ``row`` from step ``step``, the others from
    step ``first``) to step ``end`` of ``steps``, recording every ``every``-th step and the last
    into ``positions`` [K, B, 2]. ``x, m, v`` [B, 2] hold each trajectory's point and Adam moments
    and are updated in place. Where the rule declines, writes the state so far and that step's
    Jacobian into ``jacobian`` [4] and returns ``(row, step)``: the caller computes the update and
    resumes with it as ``forced`` (``use_forced``). Returns ``(-1, 0)`` when every trajectory has
    reached ``end``."""
    beta1, beta2 = _ADAM_BETAS
    last = positions.shape[0] - 1
    for b in range(row, x.shape[0]):
        x1, x2, m1, m2, v1, v2 = x[b, 0], x[b, 1], m[b, 0], m[b, 1], v[b, 0], v[b, 1]
        for s in range(step if b == row else first, end + 1):
            a11, a12 = _compiled_gradient(x1, x2, 1.0)  # task 1: d/dx1, d/dx2
            a21, a22 = _compiled_gradient(x1, x2, -1.0)
            if use_forced and b == row and s == step:
                u1, u2 = forced[0], forced[1]
            else:
                w1, w2, ok = rule(a11 * a11 + a12 * a12, a11 * a21 + a12 * a22, a21 * a21 + a22 * a22, params)
                if not ok:
                    x[b, 0], x[b, 1], m[b, 0], m[b, 1], v[b, 0], v[b, 1] = x1, x2, m1, m2, v1, v2
                    jacobian[0], jacobian[1], jacobian[2], jacobian[3] = a11, a12, a21, a22
                    return b, s
                u1, u2 = w1 * a11 + w2 * a21, w1 * a12 + w2 * a22
            if adam:
                # torch.optim.Adam (no weight decay, no amsgrad), step for step.
                m1 += (1.0 - beta1) * (u1 - m1)  # = beta1 m + (1 - beta1) update
                m2 += (1.0 - beta1) * (u2 - m2)
                v1 += (1.0 - beta2) * (u1 * u1 - v1)
                v2 += (1.0 - beta2) * (u2 * u2 - v2)
                root = 1.0 / math.sqrt(1.0 - math.pow(beta2, s))
                size = lr / (1.0 - math.pow(beta1, s))
                x1 -= size * m1 / (math.sqrt(v1) * root + _ADAM_EPS)
                x2 -= size * m2 / (math.sqrt(v2) * root + _ADAM_EPS)
            else:
                x1 -= lr * u1
                x2 -= lr * u2
            if s % every == 0:
                positions[s // every, b, 0], positions[s // every, b, 1] = x1, x2
            elif s == steps:
                positions[last, b, 0], positions[last, b, 1] = x1, x2
        x[b, 0], x[b, 1], m[b, 0], m[b, 1], v[b, 0], v[b, 1] = x1, x2, m1, m2, v1, v2
    return -1, 0


def trajectories(rule: TwoTaskRule, fallback: Callable[[int, np.ndarray], np.ndarray], starts: np.ndarray,
                 steps: int, lr: float, adam: bool, every: int, *, block: int | None = None,
                 after_block: Callable[[int], None] | None = None) -> np.ndarray:
    """Positions [K recorded steps, B starts, 2] of one method from ``starts`` [B, 2]: steps 0,
    ``every``, 2 ``every``, ... and the last. ``fallback(row, jacobian [2, 2])`` gives the update
    of a step the rule declines.

    The steps run in blocks of ``block`` (all of them by default); ``after_block(steps_done)`` is
    called after each, and whatever it raises ends the computation there: that is how a page that
    went away stops it (Streamlit raises at the next element update of a stopped script)."""
    compiled = compile_rule(rule.function)
    params = np.asarray(rule.params, dtype=np.float64)
    x = np.array(starts, dtype=np.float64)
    m, v = np.zeros_like(x), np.zeros_like(x)
    positions = np.empty((steps // every + 1 + (steps % every != 0), len(x), 2))
    positions[0] = x
    jacobian, forced = np.empty(4), np.zeros(2)
    block = max(1, block or steps)
    for first in range(1, steps + 1, block):
        end = min(first + block - 1, steps)
        row, step, use_forced = 0, first, False
        while True:
            row, step = _advance(compiled, params, x, m, v, positions, row, step, forced, use_forced,
                                 float(lr), adam, every, steps, jacobian, first, end)
            if row < 0:
                break
            forced[:] = fallback(row, jacobian.reshape(2, 2).copy())
            use_forced = True
        if after_block is not None:
            after_block(end)
    return positions
