"""The CAGrad paper's toy, simulated: every method's trajectories from the paper's starts (Liu, Liu,
Jin, Stone & Liu, "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021,
arXiv:2110.14048, Fig. 1). The problem itself -- its losses, gradients, Pareto set, start points
and loss surface -- is :mod:`mtl_core.lab.problem`; callers read it from there. The paper runs Adam (lr 0.001, 100,000 steps)
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

A served app shares its cores: a simulation's cost is estimated before it starts
(:func:`estimated_seconds`, from each method's measured cost per step, :data:`STEP_COST_S`) and
refused over ``$MTL_MAX_LAB_SECONDS`` (:func:`check_budget`); and it runs in blocks of steps with a
callback between them (``after_block``), so a page that goes away stops it within a block.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from mtl_core.lab import kernel
from mtl_core.lab.problem import AVERAGE_MINIMUM, PARETO_X1, PARETO_X2, STARTS, losses
from mtl_core.methods import METHODS, make_aggregator
from mtl_core.methods.base import TwoTaskRule

PAPER_STEPS = 100_000
PAPER_LR = 1e-3
# The paper's CAGrad constant, and its toy's scale (divide by 1 + c); the scale does not move Adam.
METHOD_PARAMS: dict[str, dict[str, object]] = {"cagrad": {"c": 0.5, "rescale": "linear"}}
OPTIMIZERS = ("adam", "sgd")

# Seconds per step of one trajectory, by method: measured here (2 shared CPU cores, 3 starts x 2,000
# Adam steps after a 10-step call that compiles, best of 2, process CPU time; issue 16's report).
# Methods with a compiled two-task rule take ~0.35 us; the others ask their aggregator's
# ``__call__`` on every step (torch, a solver): 200-700 us.
STEP_COST_S: dict[str, float] = {
    "ew": 0.35e-6, "mgda": 0.39e-6, "pcgrad": 0.38e-6, "cagrad": 0.35e-6,
    "graddrop": 198e-6, "imtl_g": 395e-6, "gradvac": 701e-6, "nash_mtl": 459e-6,
    "aligned_mtl": 359e-6, "aligned_mtl_ub": 350e-6, "upgrad": 347e-6, "config": 479e-6,
}
UNMEASURED_STEP_COST_S = 1e-3  # a method added since: assume the slow path, with margin
MAX_SECONDS_ENV = "MTL_MAX_LAB_SECONDS"
# 20 s: the paper's experiment (4 fast methods x 3 starts x 100,000 steps, ~0.5 s) fits 40 times
# over, while one slow method from 3 starts for 100,000 steps (1-4 minutes of a shared core) does not.
DEFAULT_MAX_SECONDS = 20.0
BLOCK_SECONDS = 0.1  # a block of steps takes about this long: how soon a page that went away stops it


class LabBudgetError(ValueError):
    """A simulation would hold a core longer than the server allows; the message is one sentence
    naming what to lower."""


def step_cost(method: str) -> float:
    return STEP_COST_S.get(method, UNMEASURED_STEP_COST_S)


def estimated_seconds(methods: Sequence[str], n_starts: int, steps: int) -> float:
    """Seconds the simulation would take: starts x steps x each method's cost per step (the first
    simulation of a process also compiles, a few seconds, once: not counted)."""
    return sum(n_starts * steps * step_cost(method) for method in dict.fromkeys(methods))


def max_seconds(environ: Mapping[str, str] | None = None) -> float:
    """``$MTL_MAX_LAB_SECONDS`` (default 20); a value that is not a positive number raises
    ValueError naming the variable."""
    text = (os.environ if environ is None else environ).get(MAX_SECONDS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_SECONDS
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"${MAX_SECONDS_ENV} must be a number of seconds (got {text!r})") from None
    if not 0 < value < math.inf:
        raise ValueError(f"${MAX_SECONDS_ENV} must be a positive number of seconds (got {text!r})")
    return value


def check_budget(methods: Sequence[str], n_starts: int, steps: int, *, limit: float | None = None,
                 step_choices: Sequence[int] = ()) -> None:
    """Raise LabBudgetError, naming what to lower, if the simulation would take over ``limit``
    seconds (default: :func:`max_seconds`). ``step_choices``: the steps a person can pick; the
    sentence suggests the largest that fits."""
    limit = max_seconds() if limit is None else limit
    seconds = estimated_seconds(methods, n_starts, steps)
    if seconds <= limit:
        return
    per_step = seconds / steps
    fits = [choice for choice in step_choices if choice * per_step <= limit]
    slow = sorted((m for m in dict.fromkeys(methods) if step_cost(m) > 1e-5), key=step_cost, reverse=True)
    names = ", ".join(METHODS[m].name for m in slow[:3]) + (", ..." if len(slow) > 3 else "")
    slow_text = f"the slow methods ({names}: no closed form, ~1,000 times slower per step)"
    if fits:
        advice = f"lower Adam steps from {steps:,} to {max(fits):,}"
        advice += f", or drop {slow_text}" if slow else f", or use fewer start points ({n_starts})"
    elif slow:
        advice = (f"drop {slow_text}, or run fewer of them with fewer Adam steps ({steps:,}) and start "
                  f"points ({n_starts})")
    else:
        advice = f"lower Adam steps ({steps:,}) and use fewer start points ({n_starts})"
    raise LabBudgetError(f"This simulation would take about {_duration(seconds)} of the server's time "
                         f"(it allows {_duration(limit)}): {advice}.")


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:,.0f} minutes"
    return f"{seconds:,.0f} seconds" if seconds >= 2 else f"{seconds:.1f} seconds"


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
             lr: float = PAPER_LR, optimizer: str = "adam", every: int = 100, *,
             after_block: Callable[[float], None] | None = None) -> pd.DataFrame:
    """Run every method from every start; one row per (method, start, recorded step).

    ``after_block(fraction_done)`` is called between blocks of steps (each ~:data:`BLOCK_SECONDS`,
    by :data:`STEP_COST_S`) and after each method; whatever it raises stops the simulation there.

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
    total = estimated_seconds(methods, len(starts), steps) or 1.0
    blocks, done = [], 0.0
    for method, direction in zip(methods, directions, strict=True):
        per_step = len(starts) * step_cost(method)
        report = None
        if after_block is not None:
            def report(step: int, before: float = done, per_step: float = per_step) -> None:
                after_block(min(1.0, (before + step * per_step) / total))
        blocks.append(kernel.trajectories(direction.rule, direction.update, np.array(starts), steps, lr,
                                          optimizer == "adam", every, block=max(1, int(BLOCK_SECONDS / per_step)),
                                          after_block=report))
        done += steps * per_step
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
