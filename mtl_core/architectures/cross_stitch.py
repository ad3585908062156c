"""Cross-stitch networks (Misra, Shrivastava, Gupta & Hebert, CVPR 2016, arXiv:1604.03539)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from mtl_core.architectures.base import MTLModel, head
from mtl_core.architectures.parts import matrix, split_stages
from mtl_core.suites.base import SuiteData


def stitch_init(n_tasks: int, self_weight: float) -> Tensor:
    """The paper's initialisation: a task keeps ``self_weight`` of its own column (alpha_S) and
    takes the rest evenly from the others (alpha_D), so every row is a convex combination."""
    if n_tasks == 1:
        return torch.ones(1, 1)
    other = (1.0 - self_weight) / (n_tasks - 1)
    return torch.full((n_tasks, n_tasks), other).fill_diagonal_(self_weight)


class CrossStitch(MTLModel):
    """One column (a copy of the suite's trunk) per task; after every stage a learned T x T
    matrix alpha mixes the columns: ``h_t <- sum_s alpha[t, s] h_s`` (row t: what task t reads).

    The paper stitches two AlexNets after the pooling and fully connected layers and finds
    (alpha_S, alpha_D) = (0.9, 0.1) the best start; for T tasks the 0.1 is split evenly. Since
    every task's loss reaches every column through the mixing, the columns and the alphas are
    all shared parameters; only the heads belong to one task. Simplified: one scalar per task
    pair and stage (the paper also tries one per channel), no separate learning rate for alpha
    (the paper scales it by 10^2-10^3 for SGD), and columns trained from scratch.
    """

    def __init__(self, suite: SuiteData, tasks: Sequence[str], *, self_weight: float = 0.9) -> None:
        super().__init__(tasks)
        if not 0.0 <= self_weight <= 1.0:
            raise ValueError(f"self_weight must be between 0 and 1 (got {self_weight:g})")
        self.self_weight = float(self_weight)
        columns = {}
        for task in self.tasks:
            encoder, features = suite.make_encoder()
            columns[task] = split_stages(encoder)
        n_stages = len(columns[self.tasks[0]])
        # Registered before the columns: the trunk's last stage, not alpha, is the "last shared layer".
        self.alpha = nn.Parameter(stitch_init(len(self.tasks), self.self_weight).repeat(n_stages, 1, 1))
        self.columns = nn.ModuleDict(columns)
        self.heads = nn.ModuleDict({t: head(features, suite.task(t).n_outputs) for t in self.tasks})

    @property
    def n_stages(self) -> int:
        return self.alpha.shape[0]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        hidden = [x] * len(self.tasks)
        for stage in range(self.n_stages):
            outputs = torch.stack([self.columns[t][stage](h) for t, h in zip(self.tasks, hidden, strict=True)])
            mixed = torch.einsum("ts,s...->t...", self.alpha[stage], outputs)
            hidden = list(mixed.unbind(0))
        return {t: self.heads[t](h) for t, h in zip(self.tasks, hidden, strict=True)}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield self.alpha
        yield from self.columns.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        return self.heads[task].parameters()

    def sharing_snapshot(self) -> dict[str, pd.DataFrame]:
        """Every stage's mixing matrix: row t = how task t's next stage reads the columns."""
        return {f"cross-stitch alpha, layer {stage + 1}": matrix(self.alpha[stage], self.tasks, self.tasks)
                for stage in range(self.n_stages)}
