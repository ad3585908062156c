"""Static weighting: fixed task weights a person chooses."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_core.registry import parse_floats
from mtl_core.weighting import Weighting


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
        self.register_buffer("task_weights", torch.tensor(values), persistent=False)

    def weights(self, losses: Tensor, step: int) -> Tensor:
        return self.task_weights.to(device=losses.device, dtype=losses.dtype)
