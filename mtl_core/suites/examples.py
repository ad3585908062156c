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
    feature_names: tuple[str, ...] = ()

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
    return DataExamples(info=data.info, tasks=chosen, inputs=inputs, targets=targets,
                        feature_names=data.feature_names)


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
    """A vector suite's examples as a table: the first ``features`` inputs (by name for a table,
    else ``x[0]``...), then one column per task with its target (a class as text)."""
    if examples.input_kind != "vector":
        raise ValueError(f"{examples.info.key} has image inputs, not vectors")
    shown = min(features, examples.inputs.shape[1])
    names = examples.feature_names or tuple(f"x[{i}]" for i in range(examples.inputs.shape[1]))
    table = pd.DataFrame(examples.inputs[:, :shown], columns=list(names[:shown]))
    for task in examples.tasks:
        info = examples.info.task(task)
        values = examples.targets[task].to_numpy()
        # A class as a person reads it ("Gentoo", "3"); a number as it is.
        table[task] = [format_target(info, v) for v in values] if info.kind == "classification" else values
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


def label_association(data: SuiteData, tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """How strongly each pair of tasks' training targets go together, on one 0-1 scale: 0 when
    knowing one tells nothing of the other, 1 when one determines the other. How much tasks can
    share depends on it (the MMoE paper's point, Ma et al. 2018).

    The measure fits the pair's kinds: two numbers, ``|Pearson r|``; two classifications, Cramér's
    V; a class and a number, the correlation ratio eta (the share of the number's spread that the
    class explains, square-rooted). Columns ``task_a``, ``task_b``, ``value``, ``measure`` and
    ``signed`` (Pearson's r with its sign for two numbers, else the value), every ordered pair,
    the diagonal included (1)."""
    chosen = _tasks(data.info, tasks)
    targets = {task: data.y_train[task].detach().cpu().numpy() for task in chosen}
    rows = []
    for a in chosen:
        for b in chosen:
            value, measure, signed = _association(data.info.task(a), targets[a], data.info.task(b), targets[b])
            rows.append({"task_a": a, "task_b": b, "value": value, "measure": measure, "signed": signed})
    return pd.DataFrame(rows, columns=["task_a", "task_b", "value", "measure", "signed"])


def _association(a: TaskInfo, x: np.ndarray, b: TaskInfo, y: np.ndarray) -> tuple[float, str, float]:
    if a.name == b.name:
        return 1.0, "the same task", 1.0
    if a.kind == "regression" and b.kind == "regression":
        r = _pearson(x.astype(float), y.astype(float))
        return abs(r), "|Pearson r|", r
    if a.kind == "classification" and b.kind == "classification":
        v = _cramers_v(x.astype(np.int64), y.astype(np.int64))
        return v, "Cramér's V", v
    classes, numbers = (x, y) if a.kind == "classification" else (y, x)
    eta = _correlation_ratio(classes.astype(np.int64), numbers.astype(float))
    return eta, "correlation ratio η", eta


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    scale = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / scale) if scale > 0 else 0.0


def _cramers_v(x: np.ndarray, y: np.ndarray) -> float:
    _, xi = np.unique(x, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    table = np.zeros((xi.max() + 1, yi.max() + 1))
    np.add.at(table, (xi, yi), 1)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    chi2 = ((table - expected) ** 2 / expected).sum()
    k = min(table.shape) - 1
    return float(np.sqrt(chi2 / (table.sum() * k))) if k > 0 else 0.0


def _correlation_ratio(classes: np.ndarray, numbers: np.ndarray) -> float:
    total = ((numbers - numbers.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    _, index = np.unique(classes, return_inverse=True)
    counts = np.bincount(index)
    means = np.bincount(index, weights=numbers) / counts
    between = (counts * (means - numbers.mean()) ** 2).sum()
    return float(np.sqrt(between / total))


def format_target(task: TaskInfo, value: float) -> str:
    """A target as a person reads it: a class by its name where the task names its classes, else
    its index; a regression target with two decimals below 10 and one above (so that the targets of
    one task line up)."""
    if task.kind == "classification":
        index = int(value)
        return task.classes[index] if 0 <= index < len(task.classes) else str(index)
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
