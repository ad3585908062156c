"""What the gradient-aggregation test files share: conflicting Jacobians and short real trainings."""

from __future__ import annotations

import torch

from mtl_core.config import RunConfig
from mtl_core.engine.trainer import Trainer
from mtl_core.methods import make_aggregator
from mtl_core.methods.base import Aggregation


def conflicting_jacobian(tasks: int, params: int, seed: int) -> torch.Tensor:
    """Random float64 gradients with norms spread over e^+-1, where task 1 opposes task 0 (a
    conflict every time) and the others are random (more conflicts likely)."""
    generator = torch.Generator().manual_seed(seed)
    jacobian = torch.randn(tasks, params, generator=generator, dtype=torch.float64)
    jacobian[1] = -0.7 * jacobian[0] + 0.5 * jacobian[1]
    jacobian = jacobian * torch.exp(torch.randn(tasks, 1, generator=generator, dtype=torch.float64))
    assert jacobian[0] @ jacobian[1] < 0
    return jacobian


def aggregate(key: str, jacobian: torch.Tensor, **knobs) -> Aggregation:
    return make_aggregator(key, n_tasks=jacobian.shape[0], **knobs)(jacobian)


def short_run(method: str, steps: int = 20, tasks: tuple[str, str] = ("digit", "ink"),
              **changes) -> tuple[Trainer, list]:
    """A real training of two digit_attributes tasks: a classification and (by default) a regression."""
    config = RunConfig.parse({"suite": "digit_attributes", "tasks": tasks, "method": method,
                              "steps": steps, "batch_size": 64, "eval_every": steps, "probe_every": 5,
                              "snapshot_every": 0, **changes})
    trainer = Trainer(config)
    return trainer, list(trainer.run())
