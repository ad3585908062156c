"""delta-m, the Pareto front, the hypervolume and the mean rank on numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtl_core.engine.metrics import delta_m, hypervolume, mean_rank, non_dominated, reference_point


def test_delta_m_is_the_mean_signed_relative_gain_in_percent():
    # left: (0.9 - 0.8) / 0.8 = +12.5 %; mae: lower is better, -(2.0 - 2.5) / 2.5 = +20 %.
    value = delta_m({"left": 0.9, "mae": 2.0}, {"left": 0.8, "mae": 2.5}, {"left": True, "mae": False})
    assert value == pytest.approx(16.25)


def test_delta_m_is_negative_when_the_multi_task_model_is_worse_and_zero_against_itself():
    stl = {"a": 0.5, "b": 4.0}
    better = {"a": True, "b": False}
    assert delta_m({"a": 0.4, "b": 5.0}, stl, better) == pytest.approx(100 * (-0.2 - 0.25) / 2)
    assert delta_m(stl, stl, better) == 0.0


def test_delta_m_refuses_a_zero_or_missing_baseline():
    with pytest.raises(ValueError, match="non-zero"):
        delta_m({"a": 1.0}, {"a": 0.0}, {"a": True})
    with pytest.raises(ValueError, match="no value"):
        delta_m({}, {"a": 1.0}, {"a": True})


def test_the_front_keeps_the_staircase_and_drops_dominated_and_nan_points():
    points = [(1, 3), (2, 2), (3, 1), (1, 1), (math.nan, 5), (2, 2)]
    assert non_dominated(points, [True, True]).tolist() == [True, True, True, False, False, True]


def test_the_front_follows_each_objectives_direction():
    # Accuracy up, error down: (0.9, 0.1) dominates (0.8, 0.2); (0.95, 0.3) trades one for the other.
    points = [(0.9, 0.1), (0.8, 0.2), (0.95, 0.3)]
    assert non_dominated(points, [True, False]).tolist() == [True, False, True]


def test_hypervolume_of_a_two_objective_staircase():
    # Union of the rectangles [0,1]x[0,3], [0,2]x[0,2], [0,3]x[0,1]: 3 + 2 + 1 = 6.
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (0, 0), [True, True]) == pytest.approx(6.0)
    # A dominated point adds nothing; a point not beyond the reference adds nothing.
    assert hypervolume([(1, 3), (2, 2), (3, 1), (1, 1), (5, -1)], (0, 0), [True, True]) == pytest.approx(6.0)


def test_hypervolume_when_lower_is_better():
    assert hypervolume([(1, 1)], (3, 3), [False, False]) == pytest.approx(4.0)
    assert hypervolume([(0.9, 1.0)], (0.5, 3.0), [True, False]) == pytest.approx(0.4 * 2.0)


def test_hypervolume_in_three_dimensions():
    assert hypervolume([(2, 3, 4)], (0, 0, 0), [True] * 3) == pytest.approx(24.0)
    # 2x2x2 cube plus a 1x1x3 column that overlaps it in a 1x1x2 block: 8 + 3 - 2 = 9.
    assert hypervolume([(2, 2, 2), (1, 1, 3)], (0, 0, 0), [True] * 3) == pytest.approx(9.0)


def test_reference_point_lies_a_tenth_of_the_range_beyond_the_worst_point():
    points = [(0.8, 1.0), (0.9, 2.0)]  # accuracy up, error down: neither dominates
    ref = reference_point(points, [True, False])
    assert ref.tolist() == pytest.approx([0.79, 2.1])
    # Every point then adds volume: rectangles 0.01 x 1.1 and 0.11 x 0.1, overlapping in 0.01 x 0.1.
    assert hypervolume(points, ref, [True, False]) == pytest.approx(0.011 + 0.011 - 0.001)


def test_mean_rank_shares_ties_and_follows_directions():
    table = np.array([[0.9, 1.0], [0.8, 2.0], [0.9, 3.0]])
    assert mean_rank(table, [True, False]).tolist() == pytest.approx([1.25, 2.5, 2.25])
