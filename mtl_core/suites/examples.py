"""What a suite's data look like: example inputs with their targets, and how the classes balance.

The examples are the first ``n`` of the validation set, so the same suite settings always show the
same examples (the validation sets are seeded and do not change with the training-set size). The
class balance is counted on the training set: it is what the model learns from. Everything returned
is a small NumPy array or a tidy DataFrame that ``mtl_core.figures.data`` draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mtl_core.registry import SuiteInfo, TaskInfo

if TYPE_CHECKING:  # no torch at import: a page that lists suites imports this module
    from mtl_core.suites.base import SuiteData

N_EXAMPLES = 8
N_FEATURES = 6  # a vector suite's table shows its first few input features, then the targets


@dataclass(frozen=True)
class DataExamples:
    """The first ``n`` validation examples of a suite, for the selected tasks.

    ``inputs``: ``[n, height, width]`` intensities in [0, 1] for an image suite (its one channel),
    ``[n, features]`` for a vector suite. ``targets``: one row per example (index 0..n-1), one
    column per task, the values the model is trained to predict (class indices or numbers).
    """

    info: SuiteInfo
    tasks: tuple[str, ...]
    inputs: np.ndarray
    targets: pd.DataFrame

    @property
    def input_kind(self) -> str:
        return self.info.input_kind


def data_examples(data: SuiteData, tasks: Sequence[str] | None = None, n: int = N_EXAMPLES) -> DataExamples:
    """The first ``n`` validation examples of ``data`` and their targets for ``tasks`` (default:
    every task of the suite, in the suite's order)."""
    if n < 1:
        raise ValueError(f"n must be at least 1 (got {n})")
    chosen = _tasks(data.info, tasks)
    n = min(n, len(data.x_val))
    inputs = data.x_val[:n].detach().cpu().numpy()
    if data.info.input_kind == "image":
        inputs = inputs.reshape(n, *inputs.shape[-2:])  # the one channel: [n, 1, H, W] -> [n, H, W]
    targets = pd.DataFrame({task: data.y_val[task][:n].detach().cpu().numpy() for task in chosen})
    return DataExamples(info=data.info, tasks=chosen, inputs=inputs, targets=targets)


def pixel_frame(examples: DataExamples) -> pd.DataFrame:
    """An image suite's examples, one row per pixel: ``example``, ``row``, ``col``, ``intensity``."""
    if examples.input_kind != "image":
        raise ValueError(f"{examples.info.key} has vector inputs, not images")
    n, height, width = examples.inputs.shape
    example, row, col = np.meshgrid(np.arange(n), np.arange(height), np.arange(width), indexing="ij")
    return pd.DataFrame({"example": example.ravel(), "row": row.ravel(), "col": col.ravel(),
                         "intensity": examples.inputs.ravel().astype(float)})


def example_labels(examples: DataExamples) -> pd.DataFrame:
    """One row per example and task: ``example``, ``task``, ``value`` and ``text`` ("left 3",
    "ink 21.4"), in the order of the selected tasks."""
    rows = []
    for example in range(len(examples.targets)):
        for task in examples.tasks:
            value = examples.targets.at[example, task]
            rows.append({"example": example, "task": task, "value": float(value),
                         "text": f"{task} {format_target(examples.info.task(task), value)}"})
    return pd.DataFrame(rows, columns=["example", "task", "value", "text"])


def feature_table(examples: DataExamples, features: int = N_FEATURES) -> pd.DataFrame:
    """A vector suite's examples as a table: the first ``features`` inputs (``x[0]``...), then one
    column per task with its target."""
    if examples.input_kind != "vector":
        raise ValueError(f"{examples.info.key} has image inputs, not vectors")
    shown = min(features, examples.inputs.shape[1])
    table = pd.DataFrame(examples.inputs[:, :shown], columns=[f"x[{i}]" for i in range(shown)])
    for task in examples.tasks:
        table[task] = examples.targets[task].to_numpy()
    return table


def class_balance(data: SuiteData, tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """How often each class occurs in the training set, per classification task: ``task``,
    ``class`` (the class index), ``count``, ``share`` (of the task's examples). Regression tasks
    have no classes and are left out; every class of a task appears, a missing one with count 0."""
    rows = []
    for task in _tasks(data.info, tasks):
        info = data.info.task(task)
        if info.kind != "classification":
            continue
        counts = np.bincount(data.y_train[task].detach().cpu().numpy(), minlength=info.n_outputs)
        total = max(int(counts.sum()), 1)
        rows += [{"task": task, "class": int(label), "count": int(count), "share": count / total}
                 for label, count in enumerate(counts)]
    return pd.DataFrame(rows, columns=["task", "class", "count", "share"])


def format_target(task: TaskInfo, value: float) -> str:
    """A target as a person reads it: a class index as a whole number, a regression target with
    two decimals below 10 and one above (so that the targets of one task line up)."""
    if task.kind == "classification":
        return str(int(value))
    value = float(value)
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _tasks(info: SuiteInfo, tasks: Sequence[str] | None) -> tuple[str, ...]:
    if tasks is None:
        return info.task_names
    unknown = [task for task in tasks if task not in info.task_names]
    if unknown:
        raise ValueError(f"{info.name} has no task {', '.join(map(repr, unknown))} "
                         f"(tasks: {', '.join(info.task_names)})")
    return tuple(task for task in info.task_names if task in tasks)
