"""Static weighting: fixed task weights a person chooses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import Weighting, torch
from mtl_core.registry import Knob, MethodInfo, parse_floats

if TYPE_CHECKING:
    from torch import Tensor


class StaticWeighting(Weighting):
    """Fixed user weights: minimise ``sum_t w_t L_t`` with the same ``w`` at every step.

    Linear scalarisation, the oldest multi-objective baseline; hand-tuned (or grid-searched)
    static weights are what every adaptive method in this package set out to replace (Kendall,
    Gal & Cipolla, CVPR 2018, arXiv:1705.07115, Fig. 2 sweeps them; Sener & Koltun, NeurIPS
    2018, arXiv:1810.04650, compare against a grid search of them).

    ``weights``: one non-negative number per task, in the order of the run's tasks, as text
    ("1, 0.5") or a sequence; empty means all ones (equal weighting).
    """

    def __init__(self, n_tasks: int, *, weights: str | tuple[float, ...] | list[float] = "") -> None:
        super().__init__(n_tasks)
        values = parse_floats(weights) if isinstance(weights, str) else tuple(float(w) for w in weights)
        if not values:
            values = (1.0,) * n_tasks
        if len(values) != n_tasks:
            raise ValueError(f"static weights: {len(values)} weight{'s' * (len(values) != 1)} given for "
                             f"{n_tasks} task{'s' * (n_tasks != 1)}: give one per task, in the tasks' order")
        if any(not (value >= 0) for value in values):  # also rejects nan
            raise ValueError(f"static weights must be non-negative (got {', '.join(map(str, values))})")
        if not any(value > 0 for value in values):
            raise ValueError("static weights: at least one weight must be positive, or nothing trains")
        self.register_buffer("task_weights", torch.tensor(values))

    def weights(self, losses: Tensor, step: int) -> Tensor:
        return self.task_weights.to(device=losses.device, dtype=losses.dtype)


ENTRY = MethodInfo(
    key="static",
    name="Static weights",
    kind="weighting",
    category="loss weighting",
    summary="Weigh each task's loss by a fixed number you choose: hand-tuned linear scalarisation, "
            "what the adaptive methods set out to replace.",
    formula=r"\mathcal{L}(\theta) = \sum_{t=1}^{T} w_t\,\mathcal{L}_t(\theta), \quad w_t \ge 0 \text{ fixed}",
    cost="1 backward pass",
    factory="mtl_core.methods.static:StaticWeighting",
    knobs=(
        Knob(name="weights", label="Task weights", kind="floats", default="", low=0.0, high=1000.0,
             help="One non-negative weight per task, comma-separated, in the order the tasks are "
                  "listed (e.g. 1, 0.5); leave empty for all ones."),
    ),
    extra={
        "known_for": "The simplest fix for losses on different scales; with weights found by "
                     "a grid search it is a baseline many adaptive methods do not reliably "
                     "beat (Xin et al. 2022).",
        "struggles_with": "The weights are searched by hand, a cost that grows quickly with "
                          "the number of tasks, and fixed weights cannot follow losses whose "
                          "scales change during training.",
        "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "static", "steps": 400, "method_params": {"weights": "1, 0.01"}},
                   "why": "Ink's loss is about 100x the digit loss: a weight of 0.01 on ink "
                          "puts the two on one scale by hand."},
    },
)
