"""Bounded histories for charts: a min/max-preserving decimation of long-format curves.

A 200,000-step run logs 200,000 points per curve; a chart a few hundred pixels wide can show a
few hundred columns of them, and the browser (and altair's 5,000-row inline limit) cannot take
more. Evenly spaced sampling would hide what a person looks for in a long curve: a loss spike, a
gradient that collapsed for a few hundred steps. So the rule here is M4 (Jugel et al., "M4: A
Visualization-Oriented Time Series Data Aggregation", VLDB 2014): cut each series into buckets of
equal step width and keep, per bucket, its **first, minimum, maximum and last** point. With at
least one bucket per pixel column, the line drawn from those points covers the same pixels as the
whole series; with fewer (a wide chart) the envelope, spikes included, is still exact.

:data:`POINTS_PER_SERIES` = 1,000 points, i.e. 250 buckets: a chart at 1280x720 is at most ~600
plot pixels wide, so a bucket is 2-3 pixels and a spike one step wide still shows. A series
already within the budget is returned whole (nothing to gain, and exact values are shown).

Pure pandas, and in the engine so that both :mod:`mtl_core.runs.view` (what a page holds of a
run) and the figure builders (what a chart draws) can use it: runs may not import figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

POINTS_PER_SERIES = 1_000  # 250 buckets x (first, min, max, last): see the module docstring
POINTS_PER_BUCKET = 4


def decimate(frame: pd.DataFrame, points: int = POINTS_PER_SERIES, *,
             by: str | Sequence[str] | None = "task", x: str = "step", y: str = "value") -> pd.DataFrame:
    """At most ``points`` rows per series (a group of ``by``; the whole frame for None), keeping in
    each of ``points // 4`` equal-width buckets of ``x`` the first, minimum, maximum and last row
    (by ``y``; NaN values are never the extremes). Each series keeps its first and last row, so a
    curve spans its whole run and ends at its final value. Rows come back sorted by (``by``, ``x``)
    with a 0..n-1 index; a series within the budget is kept whole. ``points`` below 2: ValueError."""
    if points < 2:
        raise ValueError(f"points must be at least 2 (got {points})")
    if frame.empty:
        return frame
    keys = [by] if isinstance(by, str) else list(by or [])
    keys = [key for key in keys if key in frame.columns]
    ordered = frame.sort_values([*keys, x], kind="stable") if x in frame.columns else frame
    groups = ordered.groupby(keys, sort=False, dropna=False) if keys else [((), ordered)]
    parts = []
    for _, group in groups:
        if len(group) <= points:
            parts.append(group)
        else:
            parts.append(group.iloc[_kept_positions(group, points, x, y)])
    return pd.concat(parts, ignore_index=True)


def _kept_positions(series: pd.DataFrame, points: int, x: str, y: str) -> np.ndarray:
    """Positions (0..n-1, sorted) of the rows one long series keeps: M4 per bucket, plus its ends."""
    n = len(series)
    if points < POINTS_PER_BUCKET:  # no room for a bucket's four: evenly spaced, ends included
        return np.unique(np.linspace(0, n - 1, points).round().astype(np.int64))
    buckets = points // POINTS_PER_BUCKET
    if x in series.columns:
        xs = pd.to_numeric(series[x], errors="coerce").to_numpy(dtype=float)
        span = xs[-1] - xs[0]
        bucket = np.zeros(n, dtype=np.int64) if not span > 0 else \
            np.minimum(((xs - xs[0]) / span * buckets).astype(np.int64), buckets - 1)
    else:  # no x: buckets of equal row counts
        bucket = np.arange(n) * buckets // n
    values = pd.to_numeric(series[y], errors="coerce").to_numpy(dtype=float) if y in series.columns \
        else np.zeros(n)
    positions = np.arange(n)
    # Bucket ids are non-decreasing (rows sorted by x): each bucket is one contiguous slice.
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], n] - 1
    finite = np.where(np.isfinite(values), values, np.nan)
    low = np.where(np.isnan(finite), np.inf, finite)
    high = np.where(np.isnan(finite), -np.inf, finite)
    mins = [start + int(np.argmin(low[start:end + 1])) for start, end in zip(starts, ends, strict=True)]
    maxs = [start + int(np.argmax(high[start:end + 1])) for start, end in zip(starts, ends, strict=True)]
    kept = np.unique(np.concatenate([starts, ends, mins, maxs, [0, n - 1]]))
    return positions[kept]


def sample_steps(steps: Sequence[int] | np.ndarray, count: int) -> list[int]:
    """At most ``count`` of the distinct ``steps``, evenly spread over them, the first and the last
    always among them (for histories of matrices, where a min and max of a matrix mean nothing)."""
    if count < 2:
        raise ValueError(f"count must be at least 2 (got {count})")
    distinct = np.unique(np.asarray(steps, dtype=np.int64))
    if len(distinct) <= count:
        return distinct.tolist()
    index = np.unique(np.linspace(0, len(distinct) - 1, count).round().astype(np.int64))
    return distinct[index].tolist()
