"""Figure builders: colours, axis titles, scales and downsampling, checked on the specs."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mtl_core.figures import run as viz
from mtl_core.suites import SUITES


def long_scalars(tasks, metric="loss", steps=range(1, 51), split="train"):
    rows = [(step, split, task, metric, 1.0 / step + i) for i, task in enumerate(tasks) for step in steps]
    return pd.DataFrame(rows, columns=["step", "split", "task", "metric", "value"])


def color_scales(spec: Any) -> list[dict]:
    """Every colour encoding's scale in a vega-lite spec (layers included)."""
    found = []
    if isinstance(spec, Mapping):
        color = spec.get("color")
        if isinstance(color, Mapping) and "scale" in color:
            found.append(color["scale"])
        for value in spec.values():
            found.extend(color_scales(value))
    elif isinstance(spec, list):
        for value in spec:
            found.extend(color_scales(value))
    return found


def axis_titles(spec: Any) -> dict[str, str]:
    titles = {}
    if isinstance(spec, Mapping):
        encoding = spec.get("encoding", {})
        for channel in ("x", "y"):
            if isinstance(encoding.get(channel), Mapping) and "title" in encoding[channel]:
                titles[channel] = encoding[channel]["title"]
        for value in spec.values():
            for channel, title in axis_titles(value).items():
                titles.setdefault(channel, title)
    elif isinstance(spec, list):
        for value in spec:
            for channel, title in axis_titles(value).items():
                titles.setdefault(channel, title)
    return titles


def test_every_task_of_every_suite_gets_a_distinct_colour_by_its_suite_index():
    for suite in SUITES:
        colors = viz.task_colors(suite)
        assert list(colors) == list(suite.task_names)
        assert len(set(colors.values())) == len(colors)
        assert all(color in viz.OKABE_ITO for color in colors.values())
    # by index in the suite, not in the run: a subset of tasks keeps each task's colour
    assert viz.task_colors(["a", "b", "c"])["c"] == viz.OKABE_ITO[2]


def test_a_task_has_the_same_colour_on_the_loss_metric_and_weight_charts():
    suite = SUITES["digit_attributes"]
    chosen = ["digit", "ink", "centre"]
    colors = {task: color for task, color in viz.task_colors(suite).items() if task in chosen}
    train = pd.concat([long_scalars(chosen, "loss"), long_scalars(chosen, "weight")])
    val = pd.concat([long_scalars(["digit"], "accuracy", split="val"),
                     long_scalars(["ink", "centre"], "mae", split="val")])
    specs = [viz.loss_chart(train, colors).to_dict(), viz.weights_chart(train, colors).to_dict()]
    specs += [chart.to_dict() for _, chart in viz.metric_charts(val, suite, chosen, colors)]
    seen: dict[str, str] = {}
    for spec in specs:
        for scale in color_scales(spec):
            for task, color in zip(scale["domain"], scale["range"], strict=True):
                assert seen.setdefault(task, color) == color == colors[task]
    assert set(seen) == set(chosen)


def test_charts_have_axis_titles_with_units():
    suite = SUITES["digit_attributes"]
    colors = viz.task_colors(suite)
    val = pd.concat([long_scalars(["digit", "parity"], "accuracy", split="val"),
                     long_scalars(["ink"], "mae", split="val")])
    charts = dict(viz.metric_charts(val, suite, ["digit", "parity", "ink"], colors))
    assert len(charts) == 2  # accuracy and an error in pixels cannot share an axis
    titles = {title: axis_titles(chart.to_dict())["y"] for title, chart in charts.items()}
    assert titles == {"Validation accuracy — higher is better": "Accuracy",
                      "Validation MAE (pixels) — lower is better": "MAE (pixels)"}
    train = long_scalars(["digit"])
    for chart in [viz.loss_chart(train, colors), viz.weights_chart(long_scalars(["digit"], "weight"), colors),
                  viz.cosine_history_chart(viz.cosine_pairs(
                      pd.DataFrame({"step": [10], "value": [[[1, 0.5], [0.5, 1]]]}), ["a", "b"]))]:
        titles = axis_titles(chart.to_dict())
        assert titles["x"] == viz.STEP_TITLE and titles["y"]


def test_loss_chart_is_log_scaled_and_survives_zero_and_non_finite_losses():
    df = long_scalars(["left", "right"])
    df.loc[0, "value"] = 0.0
    df.loc[1, "value"] = float("nan")
    df.loc[2, "value"] = float("inf")
    spec = viz.loss_chart(df, viz.task_colors(SUITES["multidigits"])).to_dict()
    assert spec["encoding"]["y"]["scale"]["type"] == "log"
    values = next(iter(spec["datasets"].values()))
    assert all(math.isfinite(row["value"]) and row["value"] > 0 for row in values)
    assert len(values) == len(df) - 2


def test_heatmap_is_pinned_to_minus_one_one_with_task_names_on_both_axes():
    tasks = ["digit", "parity", "ink"]
    matrix = [[1.0, -0.3, 0.1], [-0.3, 1.0, float("nan")], [0.1, float("nan"), 1.0]]
    spec = viz.cosine_heatmap(matrix, tasks).to_dict()
    cells, labels = spec["layer"]
    color = cells["encoding"]["color"]
    assert color["scale"]["domain"] == [-1, 1] and color["scale"]["domainMid"] == 0
    assert color["scale"]["scheme"] == "redblue"  # diverging: red conflict, blue agreement
    for channel in ("x", "y"):
        assert cells["encoding"][channel]["title"] == "Task"
        assert cells["encoding"][channel]["sort"] == tasks  # the config's task order
    assert labels["encoding"]["text"]["format"] == "+.2f"
    rows = next(iter(spec["datasets"].values()))
    assert len(rows) == 7  # the two NaN cells are left blank, not drawn as 0
    assert {(r["row"], r["column"]): r["cosine"] for r in rows}[("parity", "digit")] == -0.3


def test_a_live_charts_spec_does_not_change_when_only_its_data_grows():
    """The browser then swaps the data in place instead of rebuilding the view (see viz)."""
    colors = viz.task_colors(["a", "b"])

    def without_data(spec):
        spec = dict(spec)
        spec.pop("datasets", None)
        return json.dumps(spec, sort_keys=True).replace(spec_data_name(spec), "")

    def spec_data_name(spec):
        return json.dumps(spec.get("data", {}))

    # Only the log axis's ticks follow the data, when a loss enters a new decade (a few times a run).
    early = viz.loss_chart(long_scalars(["a", "b"], steps=range(1, 20)), colors).to_dict()
    late = viz.loss_chart(long_scalars(["a", "b"], steps=range(1, 90)), colors).to_dict()
    assert without_data(early) == without_data(late)
    early = viz.cosine_heatmap([[1, 0.2], [0.2, 1]], ["a", "b"]).to_dict()
    late = viz.cosine_heatmap([[1, -0.7], [-0.7, 1]], ["a", "b"]).to_dict()
    assert without_data(early) == without_data(late)


def test_cosine_pairs_unrolls_the_upper_triangle_in_task_order():
    matrices = pd.DataFrame({"step": [10, 20], "value": [
        [[1, 0.5, -0.2], [0.5, 1, 0.1], [-0.2, 0.1, 1]],
        [[1, 0.4, float("nan")], [0.4, 1, 0.3], [float("nan"), 0.3, 1]],
    ]})
    pairs = viz.cosine_pairs(matrices, ["a", "b", "c"])
    assert list(pairs[pairs.step == 10]["pair"]) == ["a · b", "a · c", "b · c"]
    assert list(pairs[pairs.step == 10]["value"]) == [0.5, -0.2, 0.1]
    assert len(pairs[pairs.step == 20]) == 2  # the NaN cosine is dropped, not drawn at 0
    spec = viz.cosine_history_chart(pairs).to_dict()
    lines = [layer for layer in spec["layer"] if layer["mark"]["type"] == "line"][0]
    assert lines["encoding"]["y"]["scale"]["domain"] == [-1, 1]
    # pairs are never drawn in a task's colour
    assert not set(lines["encoding"]["color"]["scale"]["range"]) & set(viz.OKABE_ITO[:-1])


@pytest.mark.parametrize("n,max_points", [(10, 50), (5000, 400), (401, 400), (3, 2)])
def test_downsample_bounds_each_line_and_keeps_its_first_and_last_point(n, max_points):
    df = pd.concat([pd.DataFrame({"step": np.arange(1, n + 1), "task": task, "value": np.arange(n) * 1.0})
                    for task in ["left", "right"]])
    out = viz.downsample(df, max_points)
    for task in ["left", "right"]:
        line = out[out.task == task]
        assert len(line) <= max_points
        assert line.step.iloc[0] == 1 and line.step.iloc[-1] == n
        assert line.step.is_monotonic_increasing
        if n <= max_points:
            assert len(line) == n


def test_downsample_rejects_nonsense_and_passes_empty_frames():
    with pytest.raises(ValueError):
        viz.downsample(pd.DataFrame({"step": [1]}), 1)
    empty = pd.DataFrame(columns=["step", "task", "value"])
    assert viz.downsample(empty, 10).empty


def test_steps_per_second_uses_the_recent_window():
    times = pd.DataFrame({"step": np.arange(1, 201), "value": np.r_[np.arange(100) * 0.01,
                                                                   1.0 + np.arange(100) * 0.02]})
    assert viz.steps_per_second(times, window=50) == pytest.approx(50.0)
    assert viz.steps_per_second(times.head(1)) is None


def test_empty_data_still_builds_charts():
    colors = viz.task_colors(SUITES["multidigits"])
    empty = pd.DataFrame(columns=["step", "split", "task", "metric", "value"])
    viz.loss_chart(empty, colors).to_dict()
    viz.weights_chart(empty, colors).to_dict()
    for _, chart in viz.metric_charts(empty, SUITES["multidigits"], ["left", "right"], colors):
        chart.to_dict()
    viz.cosine_history_chart(viz.cosine_pairs(pd.DataFrame(columns=["step", "value"]), ["left", "right"])).to_dict()


def test_x_max_lines_up_the_step_axis_of_every_chart_of_a_run():
    colors = viz.task_colors(["a", "b"])
    train = pd.concat([long_scalars(["a", "b"], "loss"), long_scalars(["a", "b"], "weight")])
    pairs = viz.cosine_pairs(pd.DataFrame({"step": [10], "value": [[[1, 0.5], [0.5, 1]]]}), ["a", "b"])
    specs = [viz.loss_chart(train, colors, x_max=400).to_dict(),
             viz.weights_chart(train, colors, x_max=400).to_dict(),
             [layer for layer in viz.cosine_history_chart(pairs, x_max=400).to_dict()["layer"]
              if "x" in layer.get("encoding", {})][0]]
    for spec in specs:
        assert spec["encoding"]["x"]["scale"]["domain"] == [0, 400]


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.004, 3.2, [0.001, 0.01, 0.1, 1, 10]),
    (0.3, 2.5, [0.1, 0.2, 0.5, 1, 2, 5, 10]),
    (1.0, 1.0, [1.0]),
])
def test_log_ticks_are_powers_of_ten_with_two_and_five_on_short_ranges(low, high, expected):
    assert viz.log_ticks(pd.Series([low, high])) == pytest.approx(expected)
    spec = viz.loss_chart(pd.DataFrame({"step": [1, 2], "task": ["a", "a"], "value": [low, high]}),
                          {"a": "#000000"}).to_dict()
    assert spec["encoding"]["y"]["axis"]["values"] == pytest.approx(expected)


def test_all_tasks_equal_spots_equal_weighting_and_nothing_else():
    equal = long_scalars(["a", "b"], metric="weight").assign(value=1.0)
    assert viz.all_tasks_equal(equal)
    assert not viz.all_tasks_equal(long_scalars(["a", "b"], metric="weight"))
    assert not viz.all_tasks_equal(equal.iloc[:0])


def test_update_charts_pin_the_cosine_to_minus_one_one_and_log_the_norm():
    colors = viz.task_colors(["a", "b"])
    cos = long_scalars(["a", "b"], metric="cos_update").assign(value=0.5)
    spec = viz.update_alignment_chart(cos, colors, x_max=50).to_dict()
    zero, lines = spec["layer"]
    assert lines["encoding"]["y"]["scale"]["domain"] == [-1.0, 1.0]
    assert lines["encoding"]["x"]["scale"]["domain"] == [0, 50]
    norm = long_scalars([""], metric="update_norm")
    spec = viz.update_norm_chart(norm, x_max=50).to_dict()
    assert spec["encoding"]["y"]["scale"]["type"] == "log"
    assert set(next(iter(spec["datasets"].values()))[0]) >= {"step", "value"}
