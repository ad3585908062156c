"""The affinity figures as pure functions: what the heatmap and the network view encode."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mtl_core.figures import affinity as affinity_viz
from mtl_core.figures import run as viz
from mtl_core.suites import SUITES

TASKS = ["digit", "parity", "ink"]
COLORS = {t: c for t, c in viz.task_colors(SUITES["digit_attributes"]).items() if t in TASKS}


def frame(values) -> pd.DataFrame:
    return pd.DataFrame(np.array(values, dtype=float), index=TASKS, columns=TASKS)


def test_the_heatmap_leaves_the_diagonal_out_and_scales_small_values():
    matrix = frame([[9.0, 0.002, -0.004], [0.001, 9.0, math.nan], [-0.003, 0.0005, 9.0]])
    chart = affinity_viz.affinity_heatmap(matrix, COLORS, title="TAG", value_title="Z")
    spec = chart.to_dict()
    data = chart.data
    assert len(data) == 5  # six off-diagonal cells, one not measured
    assert set(zip(data["source"], data["target"], strict=True)).isdisjoint({(t, t) for t in TASKS})
    # Shown in units of 10^-3, the legend says so; the colour scale is symmetric around 0.
    assert data.set_index(["source", "target"]).at[("digit", "ink"), "value"] == pytest.approx(-4.0)
    color = spec["layer"][0]["encoding"]["color"]
    assert color["title"] == "Z (×10⁻³)"
    assert color["scale"]["domain"] == [-4.0, 4.0] and color["scale"]["domainMid"] == 0
    assert spec["autosize"]["type"] == "pad"  # Streamlit must not squeeze it into its default height
    # Each task's labels in its colour.
    label = spec["layer"][0]["encoding"]["x"]["axis"]["labelColor"]["expr"]
    for task, colour in COLORS.items():
        assert f"datum.value === '{task}' ? '{colour}'" in label


def test_cosines_keep_their_fixed_linear_scale():
    matrix = frame([[1, 0.02, -0.5], [0.02, 1, 0.1], [-0.5, 0.1, 1]])
    spec = affinity_viz.affinity_heatmap(matrix, COLORS, title="cos", value_title="cosine",
                                         fixed_domain=(-1.0, 1.0)).to_dict()
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    assert scale["domain"] == [-1.0, 1.0] and "type" not in scale
    assert spec["layer"][0]["encoding"]["color"]["title"] == "cosine"


def test_compact_numbers_fit_a_cell():
    assert [affinity_viz.compact_number(v) for v in (0.14, -1.07, 0.00023, -838.8, 0.0)] == \
        ["+0.14", "-1.1", "+2e-4", "-839", "0"]
    assert all(len(affinity_viz.compact_number(v)) <= 5 for v in np.geomspace(1e-9, 999, 50))


def test_the_network_has_one_edge_per_pair_weighted_by_both_directions():
    matrix = frame([[0, 1, -2], [3, 0, math.nan], [-4, 5, 0]])
    edges = affinity_viz.network_edges(matrix)
    assert list(zip(edges["a"], edges["b"], edges["value"], strict=True)) == [
        ("digit", "parity", 2.0), ("digit", "ink", -3.0)]  # parity-ink not measured both ways
    spec = affinity_viz.network_chart(matrix, COLORS, title="net", value_title="Z").to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
             for layer in spec["layer"]]
    assert marks == ["rule", "circle", "text"]
    nodes = spec["layer"][1]["encoding"]["color"]["scale"]
    assert nodes["domain"] == TASKS and nodes["range"] == [COLORS[t] for t in TASKS]


def test_one_matrix_shows_its_cells_in_one_fixed_format():
    # "-6e-4" beside "-0.099" read as two kinds of number; one matrix now has one format
    assert affinity_viz.cell_labels([-0.0006, -0.099, 0.42]) == ["-0.00", "-0.10", "+0.42"]
    assert affinity_viz.cell_labels([45.2, -3.0]) == ["+45.2", "-3.0"]
    assert all(len(label) <= 5 for label in affinity_viz.cell_labels(list(np.linspace(-9.99, 9.99, 40))))
