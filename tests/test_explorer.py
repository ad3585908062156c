"""The gradient explorer's numbers: hand-set gradients, every method's update from the registered
aggregators, and the "decreases every loss to first order" test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtl_core.figures import lab as lab_viz
from mtl_core.lab import explorer


def test_two_gradients_have_the_requested_angle_and_length_ratio():
    for angle, ratio in [(0, 1.0), (45, 0.1), (120, 3.0), (180, 10.0)]:
        g1, g2 = explorer.two_gradients(angle, ratio)
        assert np.linalg.norm(g2) / np.linalg.norm(g1) == pytest.approx(ratio)
        assert math.degrees(math.acos(np.clip(g1 @ g2 / np.linalg.norm(g1) / np.linalg.norm(g2), -1, 1))) \
            == pytest.approx(angle, abs=1e-6)


@pytest.mark.parametrize(("angle", "ratio"), [(-1, 1.0), (181, 1.0), (90, 0.05), (90, 11.0)])
def test_out_of_range_settings_are_refused_with_a_message(angle, ratio):
    with pytest.raises(ValueError, match="between"):
        explorer.two_gradients(angle, ratio)


def test_conflict_makes_the_sum_raise_the_small_tasks_loss_and_mgda_never_does():
    updates = explorer.method_updates(explorer.two_gradients(150, 5.0)).set_index("method")
    # EW = g1 + g2 with |g2| = 5 |g1| at 150 degrees: <u, g1> = 1 + 5 cos 150 < 0.
    assert updates.loc["ew", "cos_g1"] == pytest.approx((1 + 5 * math.cos(math.radians(150))) /
                                                         np.linalg.norm([1 + 5 * math.cos(math.radians(150)),
                                                                         5 * math.sin(math.radians(150))]))
    assert not updates.loc["ew", "decreases_all"]
    # MGDA's min-norm point has <u, g_t> >= |u|^2 > 0 for both tasks (Sener & Koltun 2018).
    assert updates.loc["mgda", "decreases_all"]
    assert updates.loc["mgda", ["cos_g1", "cos_g2"]].min() > 0
    # PCGrad's two projected gradients are orthogonal to the other task's: both cosines > 0.
    assert updates.loc["pcgrad", "decreases_all"]
    # IMTL-G's update has equal projections on the unit task gradients (Liu et al. 2021).
    assert updates.loc["imtl_g", "cos_g1"] == pytest.approx(updates.loc["imtl_g", "cos_g2"], abs=1e-6)


def test_aligned_gradients_are_left_alone_by_pcgrad_and_every_method_descends():
    jacobian = explorer.two_gradients(30, 2.0)
    updates = explorer.method_updates(jacobian).set_index("method")
    np.testing.assert_allclose(updates.loc["pcgrad", ["u1", "u2"]].to_numpy(dtype=float), jacobian.sum(0), atol=1e-6)
    assert updates.loc[["ew", "mgda", "pcgrad", "cagrad"], "decreases_all"].all()


def test_opposite_gradients_of_equal_length_leave_no_descent_direction():
    updates = explorer.method_updates(explorer.two_gradients(180, 1.0)).set_index("method")
    # g1 = -g2: every update has <u, g1> = -<u, g2>, so none decreases both (a Pareto-stationary point).
    assert not updates["decreases_all"].any()
    assert updates.loc["mgda", "length"] == pytest.approx(0.0, abs=1e-9)


def test_three_tasks_table_and_every_registered_method_has_a_row():
    jacobian = np.array([[1.0, 0.0, 0.0], [-0.6, 0.8, 0.1], [-0.4, -0.5, 0.75]])
    updates = explorer.method_updates(jacobian)
    assert list(updates["method"]) == ["ew", *explorer.gradient_methods()]
    assert {"u1", "u2", "u3", "cos_g1", "cos_g2", "cos_g3", "length", "decreases_all"} <= set(updates.columns)
    row = updates.set_index("method").loc["ew"]
    np.testing.assert_allclose(row[["u1", "u2", "u3"]].to_numpy(dtype=float), jacobian.sum(0))
    assert row["length"] == pytest.approx(np.linalg.norm(jacobian.sum(0)))
    # Exactly zero inner product with g1 (sum = (0, 0.3, 0.85)): not a decrease.
    assert row["cos_g1"] == pytest.approx(0.0, abs=1e-12) and not row["decreases_all"]
    table = lab_viz.updates_table(updates)
    assert list(table.columns[:2]) == ["method", "update length"]
    assert table["decreases every loss (1st order)"].isin(["yes", "no"]).all()


def test_non_finite_gradients_are_refused():
    with pytest.raises(ValueError, match="finite"):
        explorer.method_updates(np.array([[np.nan, 0.0], [1.0, 0.0]]))


def test_explorer_figures_draw_one_arrow_per_gradient_and_method():
    jacobian = explorer.two_gradients(120, 3.0)
    updates = explorer.method_updates(jacobian, ["mgda", "cagrad"])
    figure = lab_viz.explorer_arrows(jacobian, updates)
    names = [trace.name for trace in figure.data]
    assert names == ["g1", "g2", "EW (descent on f1 + f2)", "MGDA", "CAGrad"]
    assert len(figure.layout.annotations) == 5 and figure.layout.yaxis.scaleanchor == "x"
    assert figure.layout.xaxis.title.text and figure.layout.yaxis.title.text
    tip = figure.layout.annotations[1]
    assert (tip.x, tip.y) == pytest.approx(tuple(jacobian[1]))
    three = np.array([[1.0, 0.0, 0.0], [-0.6, 0.8, 0.1], [-0.4, -0.5, 0.75]])
    figure3 = lab_viz.explorer_arrows_3d(three, explorer.method_updates(three, ["mgda"]))
    lines = [t for t in figure3.data if t.type == "scatter3d"]
    assert [t.name for t in lines] == ["g1", "g2", "g3", "EW (descent on f1 + f2)", "MGDA"]
    assert sum(t.type == "cone" for t in figure3.data) == 5
