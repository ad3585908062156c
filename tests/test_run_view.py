"""RunView: the frames the pages draw, selected from the store's long format; read at once or
incrementally (a live page's polls) they are the same; the conflict frames of several runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mtl_core.config import RunConfig
from mtl_core.engine.records import StepRecord
from mtl_core.figures import run as viz
from mtl_core.figures import sharing as sharing_viz
from mtl_core.runs.store import Store
from mtl_core.runs.view import CONFLICT_KEYS, RunView, conflict_frames
from mtl_core.suites import SUITES

CONFIG = RunConfig(suite="multidigits", steps=3, eval_every=2, probe_every=2)
TASKS = ["left", "right"]
GATE = pd.DataFrame([[0.9, 0.1], [0.2, 0.8]], index=TASKS, columns=["expert 1", "expert 2"])


def records() -> list[StepRecord]:
    return [
        StepRecord(step=1, time_s=0.5, loss={"left": 2.5, "right": 2.25},
                   weight={"left": 1.0, "right": 1.0}, grad_norm={"left": 0.5, "right": 0.25},
                   cosine=[[1.0, -0.5], [-0.5, 1.0]], update_norm=0.75,
                   cos_update={"left": 0.125, "right": 0.875},
                   layer_cosine={"trunk.0": {"left · right": -0.25}, "trunk.2": {"left · right": 0.5}},
                   affinity=[[0.0, 0.1], [0.2, 0.0]], snapshot={"gate": GATE}),
        StepRecord(step=2, time_s=1.0, loss={"left": 2.0, "right": math.nan},
                   weight={"left": math.nan, "right": 1.0},
                   val={"left": {"loss": 1.5, "accuracy": 0.25}, "right": {"loss": 1.75, "accuracy": 0.5}}),
        StepRecord(step=3, time_s=1.5, loss={"left": 1.0, "right": 1.5}, weight={"left": 1.0, "right": 1.0},
                   grad_norm={"left": 0.75, "right": 0.25}, cosine=[[1.0, 0.25], [0.25, 1.0]],
                   update_norm=0.5, cos_update={"left": 0.5, "right": -0.25},
                   layer_cosine={"trunk.0": {"left · right": 0.25}, "trunk.2": {"left · right": 0.75}},
                   val={"left": {"loss": 1.25, "accuracy": 0.75}, "right": {"loss": math.nan, "accuracy": 0.5}}),
    ]


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "mtl.db")


@pytest.fixture
def run_id(store) -> int:
    run_id = store.create_run(CONFIG, status="running")
    store.append(run_id, records())
    return run_id


def rows(frame: pd.DataFrame) -> list[list]:
    return frame.astype(object).where(frame.notna(), None).values.tolist()


def test_the_frames_have_their_documented_columns_and_values(store, run_id):
    view = RunView.read(store, run_id)
    assert view.run_id == run_id and view.step == 3 and not view.empty and view.started

    assert list(view.losses.columns) == ["step", "task", "value"]
    assert rows(view.losses) == [[1, "left", 2.5], [1, "right", 2.25], [2, "left", 2.0], [2, "right", None],
                                 [3, "left", 1.0], [3, "right", 1.5]]
    assert list(view.losses.index) == list(range(6))
    assert view.losses["step"].dtype == "int64" and view.losses["value"].dtype == "float64"

    assert list(view.validation.columns) == ["step", "task", "metric", "value"]
    assert rows(view.validation[view.validation["task"] == "left"]) == [
        [2, "left", "loss", 1.5], [2, "left", "accuracy", 0.25], [3, "left", "loss", 1.25], [3, "left", "accuracy", 0.75]]

    assert rows(view.weights) == [[1, "left", 1.0], [1, "right", 1.0], [2, "left", None], [2, "right", 1.0],
                                  [3, "left", 1.0], [3, "right", 1.0]]
    assert rows(view.grad_norms) == [[1, "left", 0.5], [1, "right", 0.25], [3, "left", 0.75], [3, "right", 0.25]]
    assert rows(view.update_alignment) == [[1, "left", 0.125], [1, "right", 0.875],
                                           [3, "left", 0.5], [3, "right", -0.25]]
    assert list(view.update_norms.columns) == ["step", "value"] and rows(view.update_norms) == [[1, 0.75], [3, 0.5]]
    assert list(view.times.columns) == ["step", "value"] and rows(view.times) == [[1, 0.5], [2, 1.0], [3, 1.5]]

    assert list(view.layer_cosines.columns) == ["step", "layer", "pair", "value"]
    assert rows(view.layer_cosines) == [[1, "trunk.0", "left · right", -0.25], [1, "trunk.2", "left · right", 0.5],
                                        [3, "trunk.0", "left · right", 0.25], [3, "trunk.2", "left · right", 0.75]]

    assert list(view.cosines.columns) == ["step", "value"]
    assert view.cosines["step"].tolist() == [1, 3]  # the affinity matrix is not a cosine
    assert view.latest_cosine() == (3, [[1.0, 0.25], [0.25, 1.0]])
    assert rows(view.cosine_pairs(TASKS)) == [[1, "left · right", -0.5], [3, "left · right", 0.25]]

    assert list(view.snapshots.columns) == ["step", "name", "value"]
    assert view.snapshots[["step", "name"]].values.tolist() == [[1, "gate"]]  # gradient matrices left out
    pd.testing.assert_frame_equal(view.snapshots["value"].iloc[0], GATE)
    assert view.snapshot_steps == [1] and view.matrix_step == 3


def test_a_run_without_records_gives_empty_frames(store):
    view = RunView.read(store, store.create_run(CONFIG))
    assert view.empty and not view.started and view.step == 0
    for frame in (view.losses, view.validation, view.weights, view.grad_norms, view.update_alignment,
                  view.update_norms, view.times, view.layer_cosines, view.cosines, view.snapshots):
        assert frame.empty
    assert list(view.losses.columns) == ["step", "task", "value"]
    assert view.latest_cosine() is None and view.matrix_step is None and view.snapshot_steps == []
    assert view.cosine_pairs(TASKS).empty


def test_reading_incrementally_gives_what_one_read_gives(store):
    run_id = store.create_run(CONFIG, status="running")
    polls = []
    previous = None
    for record in records():
        store.append(run_id, [record])
        previous = RunView.read(store, run_id, previous=previous)
        polls.append(previous)
    whole = RunView.read(store, run_id)
    assert [poll.step for poll in polls] == [1, 2, 3]
    pd.testing.assert_frame_equal(polls[-1].scalars, whole.scalars)
    for name in ("losses", "validation", "weights", "times", "layer_cosines", "cosines"):
        pd.testing.assert_frame_equal(getattr(polls[-1], name), getattr(whole, name))
    assert polls[-1].snapshots[["step", "name"]].values.tolist() == [[1, "gate"]]

    # Another run's view is not joined to this one's.
    other = store.create_run(CONFIG)
    assert RunView.read(store, other, previous=polls[-1]).empty


def test_partial_reads_hold_only_their_frames(store, run_id):
    whole = RunView.read(store, run_id)
    probes = RunView.read_probes(store, run_id)
    for name in ("grad_norms", "update_alignment", "layer_cosines", "cosines"):
        pd.testing.assert_frame_equal(getattr(probes, name), getattr(whole, name))
    assert probes.losses.empty and probes.validation.empty and probes.snapshots.empty

    snapshots = RunView.read_snapshots(store, run_id)
    assert snapshots.empty and snapshots.losses.empty
    assert snapshots.snapshot_steps == [1] and snapshots.cosines["step"].tolist() == [1, 3]


def test_the_frames_are_what_the_figure_builders_take(store, run_id):
    view = RunView.read(store, run_id)
    suite = SUITES[CONFIG.suite]
    colors = {task: color for task, color in viz.task_colors(suite).items() if task in TASKS}
    loss = viz.loss_chart(view.losses, colors, x_max=3).to_dict()
    assert len(loss["datasets"][loss["data"]["name"]]) == 5  # the NaN loss is left out
    titles = [title for title, _ in viz.metric_charts(view.validation, suite, TASKS, colors, x_max=3)]
    assert titles and all(title.startswith("Validation") for title in titles)
    for chart in (viz.weights_chart(view.weights, colors), viz.update_alignment_chart(view.update_alignment, colors),
                  viz.update_norm_chart(view.update_norms),
                  viz.cosine_history_chart(view.cosine_pairs(TASKS)),
                  viz.task_lines_chart(view.grad_norms, colors, y_title="norm", log_y=True)):
        chart.to_dict()
    assert viz.steps_per_second(view.times) == pytest.approx(2.0)
    assert not viz.all_tasks_equal(view.grad_norms)
    assert list(sharing_viz.snapshot_at(view.snapshots, view.matrix_step)) == ["gate"]


def test_conflict_frames_of_several_runs(store, run_id):
    quiet = store.create_run(CONFIG)  # nothing recorded yet
    infos = [store.get_run(run_id), store.get_run(quiet)]
    frames = conflict_frames(store, infos, label=lambda info: f"run {info.id}")
    assert set(frames) == set(CONFLICT_KEYS)
    pairs = frames["pairs"]
    assert list(pairs.columns) == ["step", "pair", "value", "run"]
    assert rows(pairs) == [[1, "left · right", -0.5, f"run {run_id}"], [3, "left · right", 0.25, f"run {run_id}"]]
    share = frames["shares"].iloc[0]
    assert (share["pair"], share["probes"], share["conflicts"], share["share"]) == ("left · right", 2, 1, 0.5)
    norms = frames["norms"]
    assert list(norms.columns) == ["step", "task", "norm", "share", "ratio", "run"]
    assert norms[norms["step"] == 3]["ratio"].tolist() == [3.0, 3.0]
    alignment = frames["alignment"]
    assert rows(alignment) == [["left", 0.3125, f"run {run_id}"], ["right", 0.3125, f"run {run_id}"]]
    assert len(frames["layers"]) == 4 and set(frames["layers"]["run"]) == {f"run {run_id}"}

    empty = conflict_frames(store, [])
    assert set(empty) == set(CONFLICT_KEYS) and all(frame.empty for frame in empty.values())


def test_final_metrics_are_the_last_validation_values_as_the_store_gives_them(store, run_id):
    view = RunView.read(store, run_id)
    final = view.final_metrics()
    assert final["left"] == {"loss": 1.25, "accuracy": 0.75}
    assert math.isnan(final["right"]["loss"]) and final["right"]["accuracy"] == 0.5  # NaN kept
    stored = store.final_metrics(run_id)
    assert final.keys() == stored.keys() and final["left"] == stored["left"]
    assert RunView.read(store, store.create_run(CONFIG)).final_metrics() == {}
