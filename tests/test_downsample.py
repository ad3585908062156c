"""The charts' decimation rule: per bucket of steps the first, min, max and last point; bounded
size per series; spikes and each series' final value survive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtl_core.engine.downsample import POINTS_PER_SERIES, decimate, sample_steps


def curve(n: int, task: str = "left", spike_at: int | None = None) -> pd.DataFrame:
    values = 1.0 / (1.0 + np.arange(n) / 100.0)
    if spike_at is not None:
        values[spike_at - 1] = 1e3
    return pd.DataFrame({"step": np.arange(1, n + 1), "task": task, "value": values})


@pytest.mark.parametrize("n,points", [(200_000, 1_000), (5_200, 400), (1_001, 1_000), (10, 3)])
def test_each_series_is_bounded_and_keeps_its_first_and_last_point(n, points):
    out = decimate(pd.concat([curve(n, "left"), curve(n, "right")]), points)
    for task in ("left", "right"):
        line = out[out.task == task]
        assert 2 <= len(line) <= points
        assert line.step.iloc[0] == 1 and line.step.iloc[-1] == n
        assert line.step.is_monotonic_increasing


def test_a_one_step_spike_and_a_one_step_dip_survive_a_200_fold_reduction():
    frame = curve(200_000, spike_at=123_457)
    frame.loc[frame.step == 77_777, "value"] = -5.0
    out = decimate(frame, POINTS_PER_SERIES)
    assert len(out) <= POINTS_PER_SERIES
    assert out.value.max() == 1e3 and out.loc[out.value.idxmax(), "step"] == 123_457
    assert out.value.min() == -5.0 and out.loc[out.value.idxmin(), "step"] == 77_777


def test_nan_is_never_an_extreme_and_short_series_are_kept_whole():
    frame = curve(5_000)
    frame.loc[frame.step == 10, "value"] = np.nan
    out = decimate(frame, 400)
    assert out.value.max() == frame.value.max()
    short = curve(50)
    pd.testing.assert_frame_equal(decimate(short, 400), short.reset_index(drop=True))
    with pytest.raises(ValueError):
        decimate(short, 1)


def test_sample_steps_keeps_the_ends_and_the_count():
    steps = sample_steps(range(1, 200_001), 1_000)
    assert len(steps) == 1_000 and steps[0] == 1 and steps[-1] == 200_000
    assert sample_steps([3, 1, 2, 2], 10) == [1, 2, 3]
