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
        # The shared representation of the latest forward pass (the input every head reads), kept
        # by architectures that have one: MGDA-UB differentiates the task losses with respect to it.
        self.representation: Tensor | None = None

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def shared_parameters(self) -> Iterator[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def regularizer(self) -> Tensor | float:
        """A penalty the architecture adds to the training objective (soft sharing's distance
        between task columns); it is differentiated like a loss and belongs to no task."""
        return 0.0

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The parameters of the last shared layer (GradNorm's W): those of the last module,
        in registration order, that holds shared parameters directly. Empty when nothing is shared."""
        shared = {id(p) for p in self.shared_parameters()}
        last: list[nn.Parameter] = []
        for module in self.modules():
            own = [p for p in module.parameters(recurse=False) if id(p) in shared]
            if own:
                last = own
        return last

    def sharing_snapshot(self) -> dict[str, pd.DataFrame]:
        """Named matrices of learned sharing (e.g. tasks x experts gates); none for fixed sharing."""
        return {}


def head(features: int, outputs: int) -> nn.Module:
    """A task head: one hidden layer, so each task has a little capacity of its own."""
    return nn.Sequential(nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, outputs))
