"""Task groupings an affinity matrix suggests, and the runs that check one.

Every partition of the tasks into g groups (exhaustive: 203 partitions for 6 tasks) is scored as in
TAG's network selection (Fifty et al., NeurIPS 2021, arXiv:2109.04617): a task's score is the mean
affinity it *receives* from the other tasks of its group, (1 / (|G| - 1)) sum_{i in G, i != j}
A[i, j]; a task alone receives none and scores 0 (as good as single-task learning); a partition's
score is the mean of its tasks' scores, and we report the partition with the highest score for each
g = 1..T. The paper's own search may put a task in several groups (each task served by its best
one); ours is a partition, so every task is trained exactly once. Any of the measures of
:mod:`mtl_core.studies.affinity` and :mod:`mtl_core.studies.transfer` serves as the matrix.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtl_core.config import ConfigError, RunConfig

MAX_GROUPING_TASKS = 8  # Bell(8) = 4,140 partitions: exhaustive search stays instant


@dataclass(frozen=True)
class Grouping:
    """The best partition of the tasks into ``len(groups)`` groups under an affinity matrix."""

    groups: tuple[tuple[str, ...], ...]
    score: float  # mean over tasks of each task's score
    task_scores: dict[str, float]  # the mean affinity each task receives from its group

    @property
    def label(self) -> str:
        return " | ".join("{" + ", ".join(group) + "}" for group in self.groups)


def partitions(items: Sequence[str], n_groups: int | None = None) -> Iterator[tuple[tuple[str, ...], ...]]:
    """Every partition of ``items`` into non-empty groups (``n_groups`` of them, or any number),
    each once, groups and their members in ``items`` order."""
    items = list(items)

    def grow(index: int, groups: list[list[str]]) -> Iterator[tuple[tuple[str, ...], ...]]:
        if index == len(items):
            if n_groups is None or len(groups) == n_groups:
                yield tuple(tuple(group) for group in groups)
            return
        if n_groups is not None and len(groups) + (len(items) - index) < n_groups:
            return  # too few items left to open the groups still missing
        for group in groups:
            group.append(items[index])
            yield from grow(index + 1, groups)
            group.pop()
        if n_groups is None or len(groups) < n_groups:
            groups.append([items[index]])
            yield from grow(index + 1, groups)
            groups.pop()

    yield from grow(0, [])


def task_scores(affinity: pd.DataFrame, groups: Sequence[Sequence[str]]) -> dict[str, float]:
    """Each task's mean affinity received from the other tasks of its group (0 alone);
    NaN entries (pairs not measured) are left out of the mean."""
    scores = {}
    for group in groups:
        for target in group:
            received = [affinity.at[source, target] for source in group if source != target]
            received = [value for value in received if math.isfinite(value)]
            scores[target] = float(np.mean(received)) if received else 0.0
    return scores


def best_groupings(affinity: pd.DataFrame) -> list[Grouping]:
    """For g = 1..T, the partition into g groups with the highest score (see the module docstring);
    ``affinity`` is tasks x tasks, ``affinity.at[i, j]`` what task i does for task j."""
    tasks = list(affinity.index)
    if list(affinity.columns) != tasks:
        raise ValueError("the affinity matrix must have the same tasks, in the same order, as rows and columns")
    if len(tasks) > MAX_GROUPING_TASKS:
        raise ValueError(f"exhaustive grouping handles up to {MAX_GROUPING_TASKS} tasks (got {len(tasks)})")
    best: list[Grouping] = []
    for n_groups in range(1, len(tasks) + 1):
        top: Grouping | None = None
        for candidate in partitions(tasks, n_groups):
            scores = task_scores(affinity, candidate)
            score = float(np.mean([scores[task] for task in tasks]))
            if top is None or score > top.score + 1e-12:
                top = Grouping(candidate, score, scores)
        assert top is not None
        best.append(top)
    return best


def groupings_table(groupings: Sequence[Grouping]) -> pd.DataFrame:
    return pd.DataFrame({"groups": [len(g.groups) for g in groupings],
                         "grouping": [g.label for g in groupings],
                         "score": [g.score for g in groupings]})


# --- checking a grouping ------------------------------------------------------------------------

def group_configs(base: RunConfig, grouping: Grouping | Sequence[Sequence[str]]) -> list[RunConfig]:
    """One run per group of the grouping, each with ``base``'s settings and the group's tasks."""
    groups = grouping.groups if isinstance(grouping, Grouping) else grouping
    configs = []
    for group in groups:
        data = base.model_dump() | {"tasks": tuple(group), "affinity_every": 0}
        try:
            configs.append(RunConfig.parse(data))
        except ConfigError:  # per-task knobs (static weights) do not fit a subset: equal weighting
            configs.append(RunConfig.parse(data | {"method": "ew", "method_params": {}}))
    return configs
