"""Soft parameter sharing by an L2 penalty (Duong, Cohn, Bird & Cook, ACL 2015)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from mtl_core.architectures.base import MTLModel, head
from mtl_core.architectures.parts import matrix, split_stages
from mtl_core.suites.base import SuiteData


class SoftSharing(MTLModel):
    """One column (a copy of the suite's trunk) per task, pulled towards each other by a penalty
    ``strength * sum over task pairs and stages of ||theta_i - theta_j||^2`` added to the objective.

    Duong et al. regularise a target-language parser towards a source-language one
    (``lambda/2 ||W_t - W_s||^2`` for one pair); here every pair of task columns is penalised, all
    trained together. Nothing is shared in the gradient sense: a column gets its own task's
    gradient plus the penalty's (which belongs to no task). The columns start identical, so the
    distances show where the tasks pull apart: strength 0 is single-task learning from a common
    start, a very large strength is hard sharing.
    """

    def __init__(self, suite: SuiteData, tasks: Sequence[str], *, strength: float = 0.01) -> None:
        super().__init__(tasks)
        if strength < 0:
            raise ValueError(f"strength must be at least 0 (got {strength:g})")
        self.strength = float(strength)
        encoder, features = suite.make_encoder()
        first = split_stages(encoder)
        self.columns = nn.ModuleDict({t: copy.deepcopy(first) for t in self.tasks})
        self.heads = nn.ModuleDict({t: head(features, suite.task(t).n_outputs) for t in self.tasks})

    @property
    def n_stages(self) -> int:
        return len(self.columns[self.tasks[0]])

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        outputs = {}
        for task in self.tasks:
            h = x
            for stage in self.columns[task]:
                h = stage(h)
            outputs[task] = self.heads[task](h)
        return outputs

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.columns[task].parameters()
        yield from self.heads[task].parameters()

    def _squared_distances(self, stage: int) -> dict[tuple[str, str], Tensor]:
        distances = {}
        for a, b in itertools.combinations(self.tasks, 2):
            pairs = zip(self.columns[a][stage].parameters(), self.columns[b][stage].parameters(), strict=True)
            distances[a, b] = sum((p - q).square().sum() for p, q in pairs)
        return distances

    def regularizer(self) -> Tensor | float:
        if self.strength == 0 or len(self.tasks) < 2:
            return 0.0
        total = sum(sum(self._squared_distances(stage).values()) for stage in range(self.n_stages))
        return self.strength * total

    @torch.no_grad()
    def sharing_snapshot(self) -> dict[str, pd.DataFrame]:
        """Per stage and task pair, the distance between the two columns relative to their size:
        ``||theta_a - theta_b|| / mean(||theta_a||, ||theta_b||)`` (0: identical)."""
        if len(self.tasks) < 2:
            return {}
        rows = []
        pairs = list(itertools.combinations(self.tasks, 2))
        for stage in range(self.n_stages):
            squared = self._squared_distances(stage)
            row = []
            for a, b in pairs:
                size_a = _norm(self.columns[a][stage].parameters())
                size_b = _norm(self.columns[b][stage].parameters())
                row.append(squared[a, b].sqrt() / ((size_a + size_b) / 2).clamp_min(1e-12))
            rows.append(torch.stack(row))
        return {"soft sharing distance": matrix(torch.stack(rows), [f"layer {s + 1}" for s in range(self.n_stages)],
                                                [f"{a} | {b}" for a, b in pairs])}


def _norm(params: Iterator[nn.Parameter]) -> Tensor:
    return torch.sqrt(sum(p.square().sum() for p in params))
