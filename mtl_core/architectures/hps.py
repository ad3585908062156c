"""Hard parameter sharing (Caruana 1997): one trunk, one head per task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch import Tensor, nn

from mtl_core.architectures.base import MTLModel, head
from mtl_core.suites.base import SuiteData


class HardSharing(MTLModel):
    def __init__(self, suite: SuiteData, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self.encoder, features = suite.make_encoder()
        self.heads = nn.ModuleDict({t: head(features, suite.task(t).n_outputs) for t in self.tasks})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        shared = self.representation = self.encoder(x)
        return {task: self.heads[task](shared) for task in self.tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.encoder.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        return self.heads[task].parameters()
