"""Single-task learning: an independent network per task, trained side by side.

Training them in one model keeps one run, one optimiser step and one record stream; since no
parameter is shared, each task's gradient only ever reaches its own network.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch import Tensor, nn

from mtl_core.architectures.base import MTLModel, head
from mtl_core.suites.base import SuiteData


class SingleTask(MTLModel):
    def __init__(self, suite: SuiteData, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self.networks = nn.ModuleDict()
        for task in self.tasks:
            encoder, features = suite.make_encoder()
            self.networks[task] = nn.Sequential(encoder, head(features, suite.task(task).n_outputs))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {task: self.networks[task](x) for task in self.tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        return self.networks[task].parameters()
