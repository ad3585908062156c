"""The Gradient lab page in AppTest, and its figure builders on small simulations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mtl_core.figures import lab as lab_viz
from mtl_core.lab import problem, toy

APP = "../app.py"


def lab_page(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()  # the home page first: AppTest finds a page with its own url_path only after a run
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("pages/gradient_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plotly_figures(at: AppTest) -> list[dict]:
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


@pytest.fixture(scope="module")
def small_run():
    return toy.simulate(["ew", "mgda", "cagrad"], problem.STARTS, steps=3000, lr=0.01, every=30)


def test_animation_has_contours_pareto_set_starts_and_one_frame_per_step(small_run):
    figure = lab_viz.trajectory_animation(small_run, problem.loss_grid(41), problem.STARTS, surface="f1", frames=10)
    names = [trace.name for trace in figure.data]
    assert names[:4] == ["f1", "Pareto set", "minimum of the mean", "start points"]
    # The contours are also a picture under the axes (one layout image spanning the window):
    # plotly.js drops a contour trace while an animation plays.
    (image,) = figure.layout.images
    assert (image.x, image.y, image.sizex, image.sizey, image.layer) == (-11, 11, 22, 22, "below")
    picture = lab_viz.contour_image(*(problem.loss_grid(n).pivot(index="x2", columns="x1", values="f1").to_numpy()
                                      for n in (81, 41)))
    pixels = np.asarray(picture.convert("L"), dtype=float)
    # Dark where f1 is low: its valley x1 = 7 in the lower half, picture rows run from x2 = 11 down.
    assert pixels[70, 66] < pixels[70, 14]
    assert names[4:7] == ["EW (descent on f1 + f2)", "MGDA", "CAGrad"]  # paths, then the heads
    assert list(figure.data[1].y) == [problem.PARETO_X2] * 2 and list(figure.data[1].x) == [-7.0, 7.0]
    assert [tuple(p) for p in zip(figure.data[3].x, figure.data[3].y, strict=True)] == list(problem.STARTS)
    assert len(figure.frames) == 10 and figure.frames[-1].name == "3000" and figure.frames[0].name == "0"
    assert list(figure.frames[0].traces) == list(range(4, 10))
    # Frame 0: every head at its start; the last frame's heads are the trajectories' ends.
    assert sorted(zip(figure.frames[0].data[3].x, figure.frames[0].data[3].y, strict=True)) == sorted(problem.STARTS)
    ends = toy.final_points(small_run).set_index(["method", "start"])
    np.testing.assert_allclose(figure.frames[-1].data[5].x, ends.loc["cagrad", "x1"].to_numpy())
    buttons = figure.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["▶ Play", "❚❚ Pause"] and buttons[0].method == "animate"
    assert len(figure.layout.sliders[0].steps) == 10
    assert figure.layout.xaxis.title.text.startswith("x1") and figure.layout.yaxis.title.text.startswith("x2")
    with pytest.raises(ValueError, match="surface"):
        lab_viz.trajectory_animation(small_run, problem.loss_grid(11), problem.STARTS, surface="max")


def test_losses_chart_has_the_three_losses_per_method_and_start(small_run):
    long = lab_viz.losses_along(small_run)
    assert set(long["loss"]) == {"f1", "f2", "mean"}
    row = small_run.iloc[5]
    mean = long[(long.method == row.method) & (long.start == row.start) & (long.step == row.step) & (long.loss == "mean")]
    assert mean["value"].item() == pytest.approx((row.f1 + row.f2) / 2)
    spec = lab_viz.trajectory_losses_chart(small_run, problem.STARTS).to_dict()
    assert spec["spec"]["encoding"]["x"]["title"] == "Adam step"
    assert spec["spec"]["encoding"]["color"]["scale"]["domain"] == ["EW (descent on f1 + f2)", "MGDA", "CAGrad"]
    from mtl_core.figures.run import method_colors
    assert spec["spec"]["encoding"]["color"]["scale"]["range"] == [method_colors()[m] for m in ("ew", "mgda", "cagrad")]


def test_page_shows_the_toy_the_explorer_and_the_3d_view():
    at = lab_page(steps="2000", methods="mgda,cagrad", starts="0, 5")
    figures = plotly_figures(at)
    assert len(figures) == 3  # the animation, the 2-D arrows, the 3-D arrows
    animation = figures[0]
    assert [t.get("name") for t in animation["data"][4:6]] == ["MGDA", "CAGrad"]
    starts = animation["data"][3]
    assert len(starts["x"]) == 4  # the paper's three and the typed (0, 5), each numbered
    assert [a["text"] for a in animation["layout"]["annotations"]] == ["1", "2", "3", "4"]
    assert len(animation["frames"]) == lab_viz.FRAMES
    ends = at.dataframe[0].value
    assert len(ends) == 2 * 4 and set(ends["method"]) == {"MGDA", "CAGrad"}
    assert (ends["end x2"] < 11).all()
    explorer_table = at.dataframe[1].value
    assert explorer_table.iloc[0]["method"].startswith("EW")
    assert explorer_table.set_index("method").loc["MGDA", "decreases every loss (1st order)"] == "yes"
    assert not at.warning
    for widget in [*at.multiselect, *at.slider, *at.select_slider, *at.radio, *at.text_input, *at.number_input]:
        assert widget.help, widget.label


def test_explorer_slider_changes_the_table():
    at = lab_page(steps="2000", methods="ew")
    table = at.dataframe[1].value.set_index("method")
    assert table.loc["EW (descent on f1 + f2)", "decreases every loss (1st order)"] == "no"  # 120 deg, ratio 3
    next(s for s in at.slider if s.label.startswith("Angle")).set_value(30).run()
    table = at.dataframe[1].value.set_index("method")
    assert table.loc["EW (descent on f1 + f2)", "decreases every loss (1st order)"] == "yes"
    assert table.loc["EW (descent on f1 + f2)", "cos(update, g1)"] > 0.5


def test_bad_start_points_get_a_message_not_a_traceback():
    at = lab_page(steps="2000", methods="ew", starts="0, 5; banana; 40, 2")
    assert any("banana" in w.value and "'40, 2'" in w.value for w in at.warning)
    assert len(plotly_figures(at)[0]["data"][3]["x"]) == 4  # the paper's three and (0, 5)
