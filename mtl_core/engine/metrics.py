"""How a multi-task result is scored against others: delta-m %, the Pareto front, the hypervolume.

Pure functions of numbers (no torch, no store), so that the Compare page, the CLI's ``sweep`` and
the tests compute the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def delta_m(metrics: Mapping[str, float], stl: Mapping[str, float],
            higher_is_better: Mapping[str, bool]) -> float:
    """Delta-m % (Maninis et al., "Attentive Single-Tasking of Multiple Tasks", CVPR 2019):

        delta_m = 100 / T * sum_t (-1)^{l_t} (M_t - M_t^STL) / M_t^STL,  l_t = 1 where lower is better.

    The mean relative gain of a multi-task model over its single-task baselines, in per cent, with
    LibMTL's sign: **positive is better** (Nash-MTL's papers report the negative of this). Tasks
    are those of ``stl``; each needs a finite, non-zero baseline value.
    """
    if not stl:
        raise ValueError("delta_m needs at least one task with a single-task baseline")
    total = 0.0
    for task, baseline in stl.items():
        if task not in metrics:
            raise ValueError(f"delta_m: no value for task {task!r}")
        if task not in higher_is_better:
            raise ValueError(f"delta_m: is higher better for task {task!r}? (not given)")
        if not math.isfinite(baseline) or baseline == 0:
            raise ValueError(f"delta_m: the baseline of task {task!r} must be finite and non-zero "
                             f"(got {baseline})")
        sign = 1.0 if higher_is_better[task] else -1.0
        total += sign * (float(metrics[task]) - baseline) / abs(baseline)
    return 100.0 * total / len(stl)


def _as_maximised(points: Sequence[Sequence[float]] | np.ndarray,
                  higher_is_better: Sequence[bool]) -> np.ndarray:
    """Points with every lower-is-better coordinate negated, so that larger is better everywhere."""
    array = np.asarray(points, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"points must be a 2-D array (runs x objectives), got shape {array.shape}")
    if array.shape[1] != len(higher_is_better):
        raise ValueError(f"{array.shape[1]} objectives but {len(higher_is_better)} directions")
    signs = np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)
    return array * signs


def non_dominated(points: Sequence[Sequence[float]] | np.ndarray,
                  higher_is_better: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the Pareto-optimal points: those no other point dominates (at least as good
    on every objective and strictly better on one). Rows with a NaN are never on the front;
    duplicates of a front point are all on it."""
    values = _as_maximised(points, higher_is_better)
    valid = np.isfinite(values).all(axis=1)
    mask = np.zeros(len(values), dtype=bool)
    for i in np.flatnonzero(valid):
        others = values[valid]
        dominated = ((others >= values[i]).all(axis=1) & (others > values[i]).any(axis=1)).any()
        mask[i] = not dominated
    return mask


def reference_point(points: Sequence[Sequence[float]] | np.ndarray, higher_is_better: Sequence[bool],
                    *, margin: float = 0.1) -> np.ndarray:
    """The hypervolume's reference point when none is given: per objective, the worst value among
    the points, moved a further ``margin`` of the value range (or of the value itself, when all
    are equal) towards worse, so every point, the extreme ones included, adds volume (the "nadir
    times 1.1" habit of multi-objective benchmarks)."""
    values = _as_maximised(points, higher_is_better)
    values = values[np.isfinite(values).all(axis=1)]
    if len(values) == 0:
        raise ValueError("no finite points to place a reference point under")
    worst, best = values.min(axis=0), values.max(axis=0)
    spread = np.where(best > worst, best - worst, np.maximum(np.abs(worst), 1e-12))
    reference = worst - margin * spread
    return reference * np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)


def hypervolume(points: Sequence[Sequence[float]] | np.ndarray, reference: Sequence[float],
                higher_is_better: Sequence[bool]) -> float:
    """The volume of objective space that the points dominate and that dominates ``reference``
    (Zitzler & Thiele 1998, "the size of the space covered"): larger is better, and it grows only
    when the front advances. Exact, by slicing along one objective (fine for the tens of runs a
    comparison holds). Points that do not beat the reference on every objective add nothing."""
    values = _as_maximised(points, higher_is_better)
    ref = _as_maximised([list(reference)], higher_is_better)[0]
    if not np.isfinite(ref).all():
        raise ValueError(f"the reference point must be finite (got {list(reference)})")
    values = values[np.isfinite(values).all(axis=1)]
    values = values[(values > ref).all(axis=1)]
    return float(_volume(values, ref))


def _volume(values: np.ndarray, ref: np.ndarray) -> float:
    if len(values) == 0:
        return 0.0
    if values.shape[1] == 1:
        return float(values[:, 0].max() - ref[0])
    # Sweep the last objective from the best value down: between two consecutive levels, the
    # dominated region is the (k-1)-dimensional volume of the points at or above the upper level.
    order = np.argsort(-values[:, -1], kind="stable")
    ordered = values[order]
    total = 0.0
    for i, point in enumerate(ordered):
        lower = ordered[i + 1, -1] if i + 1 < len(ordered) else ref[-1]
        height = point[-1] - lower
        if height > 0:
            total += height * _volume(ordered[: i + 1, :-1], ref[:-1])
    return total


def mean_rank(table: np.ndarray, higher_is_better: Sequence[bool]) -> np.ndarray:
    """Mean rank of each row (a method) over the columns (tasks): 1 is best on a task, ties share
    the mean of their ranks (as in the MR column of LibMTL-style tables). A NaN in a column ranks
    last there."""
    values = _as_maximised(table, higher_is_better)
    ranks = np.zeros_like(values)
    for column in range(values.shape[1]):
        scores = np.where(np.isfinite(values[:, column]), values[:, column], -np.inf)
        for row, score in enumerate(scores):
            better = (scores > score).sum()
            ties = (scores == score).sum()
            ranks[row, column] = better + (ties + 1) / 2
    return ranks.mean(axis=1)


def pm(mean: float, std: float, *, digits: int = 4) -> str:
    """"0.9120 ± 0.0040"; the mean alone for one seed; "-" for none."""
    if mean is None or not np.isfinite(mean):
        return "-"
    if std is None or not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
