"""The Compare page's figure builders on small hand-made data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mtl_core.figures import compare as compare_viz
from mtl_core.figures import run as viz
from mtl_core.suites import SUITES

RUNS = pd.DataFrame({"run_id": [1, 2, 3, 4, 5], "method": ["ew", "ew", "pcgrad", "pcgrad", "ew"],
                     "arch": ["hps", "hps", "hps", "hps", "stl"]})


def curves() -> pd.DataFrame:
    rows = []
    for run_id, offset in zip(RUNS["run_id"], [0.0, 0.2, 0.1, 0.1, 0.3], strict=True):
        for step in (10, 20):
            rows.append((run_id, step, "left", step / 100 + offset))
    return pd.DataFrame(rows, columns=["run_id", "step", "task", "value"])


def test_seed_bands_are_mean_and_sample_std_over_seeds():
    bands = compare_viz.seed_bands(curves(), RUNS).set_index(["method", "arch", "step"])
    ew = bands.loc[("ew", "hps", 20)]
    assert ew["mean"] == pytest.approx(0.3) and ew["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert (ew["low"], ew["high"], ew["seeds"]) == pytest.approx((0.3 - ew["std"], 0.3 + ew["std"], 2))
    assert bands.loc[("pcgrad", "hps", 10)]["std"] == 0.0
    assert bands.loc[("ew", "stl", 10)]["seeds"] == 1  # one seed: no spread (drawn as a line)


def test_band_chart_gives_methods_their_colours_and_the_baselines_black():
    chart = compare_viz.band_chart(compare_viz.seed_bands(curves(), RUNS), task="left",
                                   y_title="left: Accuracy", x_max=20, y_domain=(0, 1))
    spec = chart.to_dict()
    line = spec["layer"][1]["encoding"]
    assert line["color"]["scale"]["domain"] == ["ew", "pcgrad", "stl"]
    assert line["color"]["scale"]["range"] == [viz.method_colors()["ew"], viz.method_colors()["pcgrad"],
                                               compare_viz.BASELINE_COLOR]
    band = spec["layer"][0]
    assert band["mark"]["type"] == "area" and band["encoding"]["fill"]["scale"] == line["color"]["scale"]
    assert line["y"]["title"] == "left: Accuracy" and line["color"]["legend"]["title"] == "Method"


def test_band_chart_stacks_one_chart_per_architecture_with_the_baselines_in_each():
    runs = RUNS.assign(arch=["hps", "mmoe", "hps", "mmoe", "stl"])
    spec = compare_viz.band_chart(compare_viz.seed_bands(curves(), runs), task="left",
                                  y_title="left: Accuracy").to_dict()
    assert spec["facet"]["row"]["field"] == "arch"
    data = pd.DataFrame(next(iter(spec["datasets"].values())))
    assert set(data[data["series"] == "stl"]["arch"]) == {"hps", "mmoe"}


def summaries() -> pd.DataFrame:
    return pd.DataFrame({"run_id": [1, 2, 3, 4], "status": ["done", "done", "done", "failed"],
                         "method": ["ew", "pcgrad", "mgda", "ew"], "arch": ["hps", "hps", "hps", "hps"],
                         "seed": [0, 0, 0, 1], "left": [0.9, 0.8, 0.7, 0.99], "right": [0.5, 0.6, 0.4, 0.99],
                         "delta_m": [1.0, 2.0, -1.0, np.nan]})


def test_pareto_points_mark_the_front_among_finished_runs_and_measure_it():
    points, ref, volume = compare_viz.pareto_points(summaries(), ["left", "right"], [True, True],
                                                    reference=(0.5, 0.3))
    assert points["run_id"].tolist() == [1, 2, 3]  # the failed run is not a result
    assert points["front"].tolist() == [True, True, False]
    # Rectangles from (0.5, 0.3): 0.4 x 0.2 and 0.3 x 0.3, overlapping in 0.3 x 0.2.
    assert volume == pytest.approx(0.08 + 0.09 - 0.06)
    figure = compare_viz.pareto_figure(points, ref, volume, x_task="left", y_task="right",
                                       x_title="left: Accuracy", y_title="right: Accuracy",
                                       higher_is_better=(True, True))
    layout = json.loads(figure.to_json())["layout"]
    assert "0.11" in layout["title"]["text"]
    assert layout["xaxis"]["title"]["text"] == "left: Accuracy (higher is better)"
    front = next(t for t in figure.data if t.name == "Pareto front")
    # The staircase from the worst x: (0.8, 0.6) down to (0.8, 0.5), across to (0.9, 0.5).
    assert list(front.x) == [0.8, 0.8, 0.9] and list(front.y) == [0.6, 0.5, 0.5]


def test_parallel_coordinates_flip_lower_is_better_axes():
    suite = SUITES["digit_attributes"]
    table = summaries().rename(columns={"left": "digit", "right": "ink"})
    figure = compare_viz.parallel_figure(table, suite, ["digit", "ink"])
    dims = figure.data[0].dimensions
    assert dims[0].range[0] < dims[0].range[1]  # accuracy: up is better
    assert dims[1].range[0] > dims[1].range[1]  # ink MAE: flipped so that up is better
    assert dims[-1].label.startswith("Δm %")
    assert [t.name for t in figure.data[1:]] == ["Equal weighting", "PCGrad", "MGDA"]


def test_display_table_names_the_sign_of_delta_m_and_the_baseline():
    table = pd.DataFrame({"method": ["ew", "ew"], "arch": ["hps", "stl"], "seeds": ["0,1", "0,1"],
                          "runs": ["3,4", "1,2"], "left mean": [0.9, 0.8], "left std": [0.01, np.nan],
                          "right mean": [0.5, 0.6], "right std": [0.02, 0.03],
                          "delta_m mean": [1.234, 0.0], "delta_m std": [0.5, 0.0],
                          "mean_rank": [1.5, 1.5], "ms_per_step": [10.04, 4.0], "baseline_runs": ["1,2", ""]})
    shown = compare_viz.display_table(table, SUITES["multidigits"], ["left", "right"])
    assert shown["Method"].tolist() == ["Equal weighting", compare_viz.BASELINE_LABEL]
    assert shown["left: Accuracy ↑"].tolist() == ["0.9000 ± 0.0100", "0.8000"]
    assert shown["Δm % (+ is better)"].tolist() == ["1.23 ± 0.50", "0.00 ± 0.00"]
    assert shown["STL baseline runs"].tolist() == ["1,2", "none yet"]


def test_each_row_of_an_interval_chart_keeps_its_methods_colour_when_the_baselines_come_first():
    # A table ranked by delta-m can list the STL baselines first: each method still gets its own
    # colour (once, every row took its neighbour's), the baselines theirs.
    frame = pd.DataFrame({"series": [compare_viz.BASELINE_SERIES, "cagrad", "ew"],
                          "label": ["STL baselines", "CAGrad", "Equal weighting"],
                          "value": [0.93, 0.92, 0.91], "low": [0.92, 0.91, 0.90], "high": [0.94, 0.93, 0.92],
                          "verdict": ["", "", ""], "seeds": ["0,1", "0,1", "0,1"]})
    spec = compare_viz.interval_chart(frame, title="t", x_title="x").to_dict()
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    colour = dict(zip(scale["domain"], scale["range"], strict=True))
    assert colour["cagrad"] == viz.method_colors()["cagrad"] and colour["ew"] == viz.method_colors()["ew"]
    assert colour[compare_viz.BASELINE_SERIES] == compare_viz.BASELINE_COLOR
