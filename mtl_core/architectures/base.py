"""The interface every sharing architecture implements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd
from torch import Tensor, nn


class MTLModel(nn.Module):
    """A network with one output per task, that says which parameters are shared.

    ``shared_parameters()`` are the ones task gradients can conflict on (the Jacobian's columns);
    ``task_parameters(t)`` belong to task t alone. Together they are all parameters, each once.
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def shared_parameters(self) -> Iterator[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def sharing_snapshot(self) -> dict[str, pd.DataFrame]:
        """Named matrices of learned sharing (e.g. tasks x experts gates); none for fixed sharing."""
        return {}


def head(features: int, outputs: int) -> nn.Module:
    """A task head: one hidden layer, so each task has a little capacity of its own."""
    return nn.Sequential(nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, outputs))
