"""The run store: records round-trip exactly, NaN stays NaN, runs list, delete, recover, export."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import threading

import pandas as pd
import pytest

from mtl_core.config import RunConfig
from mtl_core.engine.records import StepRecord
from mtl_core.runs.store import STATUSES, TERMINAL, Store, pid_alive

CONFIG = RunConfig(suite="multidigits", steps=3, eval_every=2, probe_every=2)


def records() -> list[StepRecord]:
    snapshot = pd.DataFrame([[0.9, 0.1], [math.nan, 0.8]], index=["left", "right"],
                            columns=["expert 1", "expert 2"])
    return [
        StepRecord(step=1, time_s=0.01, loss={"left": 2.5, "right": 2.25},
                   weight={"left": 1.0, "right": 1.0}, grad_norm={"left": 0.5, "right": 0.25},
                   cosine=[[1.0, -0.5], [-0.5, 1.0]], update_norm=0.75,
                   cos_update={"left": 0.125, "right": 0.875}, snapshot={"gate": snapshot}),
        StepRecord(step=2, time_s=0.02, loss={"left": 2.0, "right": math.nan},
                   weight={"left": math.nan, "right": 1.0},
                   val={"left": {"loss": 1.5, "accuracy": 0.25}, "right": {"loss": 1.75, "accuracy": 0.5}}),
        StepRecord(step=3, time_s=0.03, loss={"left": 1.0, "right": 1.5}, weight={"left": 1.0, "right": 1.0},
                   cosine=[[1.0, math.nan], [math.nan, 1.0]],
                   val={"left": {"loss": 1.25, "accuracy": 0.75}, "right": {"loss": math.nan, "accuracy": 0.5}}),
    ]


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "runs" / "mtl.db")


def value(frame: pd.DataFrame, step: int, split: str, task: str, metric: str) -> float:
    rows = frame[(frame.step == step) & (frame.split == split) & (frame.task == task) & (frame.metric == metric)]
    assert len(rows) == 1, (step, split, task, metric)
    return float(rows["value"].iloc[0])


def test_records_round_trip_with_nan_cosine_and_snapshot(store):
    run_id = store.create_run(CONFIG)
    store.append(run_id, records()[:2])
    store.append(run_id, records()[2:])

    scalars = store.scalars(run_id)
    assert list(scalars.columns) == ["step", "split", "task", "metric", "value"]
    assert scalars["step"].is_monotonic_increasing and scalars["value"].dtype == "float64"
    assert value(scalars, 1, "train", "left", "loss") == 2.5
    assert value(scalars, 1, "train", "right", "grad_norm") == 0.25
    assert value(scalars, 1, "train", "right", "cos_update") == 0.875
    assert value(scalars, 1, "train", "", "update_norm") == 0.75
    assert value(scalars, 3, "train", "", "time_s") == 0.03
    assert math.isnan(value(scalars, 2, "train", "right", "loss"))
    assert math.isnan(value(scalars, 2, "train", "left", "weight"))
    assert value(scalars, 2, "val", "left", "accuracy") == 0.25
    assert math.isnan(value(scalars, 3, "val", "right", "loss"))
    # A step without probes has no probe rows; a record without an update norm has none either.
    assert scalars[(scalars.step == 2) & scalars.metric.isin(["grad_norm", "cos_update", "update_norm"])].empty
    # 1: 2 loss + 2 weight + time + update_norm + 2 grad_norm + 2 cos_update; 2: 4 + time + 4 val; 3: the same
    assert scalars.groupby("step").size().to_dict() == {1: 10, 2: 9, 3: 9}

    matrices = store.matrices(run_id)
    assert matrices[["step", "name"]].values.tolist() == [[1, "cosine"], [1, "gate"], [3, "cosine"]]
    assert matrices["value"].iloc[0] == [[1.0, -0.5], [-0.5, 1.0]]
    late = store.matrices(run_id, name="cosine", since_step=1)["value"].iloc[0]
    assert late[0][0] == 1.0 and math.isnan(late[0][1])
    gate = store.matrices(run_id, name="gate")["value"].iloc[0]
    pd.testing.assert_frame_equal(gate, records()[0].snapshot["gate"])

    assert store.last_step(run_id) == 3 and store.get_run(run_id).steps_done == 3


def test_filters_and_since_step_return_only_newer_rows(store):
    run_id = store.create_run(CONFIG)
    store.append(run_id, records())
    losses = store.scalars(run_id, split="train", metric="loss", since_step=1)
    assert losses[["step", "task"]].values.tolist() == [[2, "left"], [2, "right"], [3, "left"], [3, "right"]]
    assert set(store.scalars(run_id, split="val")["metric"]) == {"loss", "accuracy"}
    assert store.scalars(run_id, since_step=3).empty
    assert store.matrices(run_id, name="nothing").empty


def test_final_metrics_take_the_last_validation(store):
    run_id = store.create_run(CONFIG)
    store.append(run_id, records())
    final = store.final_metrics(run_id)
    assert final["left"] == {"loss": 1.25, "accuracy": 0.75}
    assert final["right"]["accuracy"] == 0.5 and math.isnan(final["right"]["loss"])
    assert store.final_metrics(store.create_run(CONFIG)) == {}


def test_runs_get_default_names_statuses_and_timestamps(store):
    run_id = store.create_run(CONFIG)
    info = store.get_run(run_id)
    assert info.name == f"ew · hps · multidigits #{run_id}"
    assert info.status == "queued" and info.config == CONFIG and info.started_at is None
    store.set_status(run_id, "running", device="cpu", pid=os.getpid())  # a live owner: it reads as running
    info = store.get_run(run_id)
    assert info.status == "running" and info.device == "cpu" and info.pid == os.getpid()
    assert info.started_at >= info.created_at and info.finished_at is None
    store.set_status(run_id, "diverged", message="the loss became nan")
    info = store.get_run(run_id)
    assert info.finished_at >= info.started_at and info.message == "the loss became nan"
    assert info.device == "cpu"  # left alone when not given
    with pytest.raises(ValueError, match="status must be one of"):
        store.set_status(run_id, "exploded")
    assert store.get_run(9999) is None
    assert set(STATUSES) > TERMINAL


def test_list_runs_newest_first_with_final_metric_columns(store):
    first = store.create_run(CONFIG, name="baseline")
    store.append(first, records())
    store.set_status(first, "done")
    second = store.create_run(RunConfig(suite="synthetic", steps=5))
    runs = store.list_runs()
    assert runs["id"].tolist() == [second, first]
    for column in ["id", "name", "suite", "tasks", "arch", "method", "status", "steps_done", "steps",
                   "created_at", "finished_at", "device", "message"]:
        assert column in runs.columns
    row = runs.set_index("id").loc[first]
    assert row["name"] == "baseline" and row["tasks"] == "left, right" and row["steps_done"] == 3
    assert row["left accuracy"] == 0.75 and row["right accuracy"] == 0.5 and row["left loss"] == 1.25
    assert math.isnan(runs.set_index("id").loc[second, "left accuracy"])
    assert runs.set_index("id").loc[second, "suite"] == "synthetic"
    assert isinstance(row["created_at"], pd.Timestamp)


def test_empty_store_lists_no_runs(store):
    runs = store.list_runs()
    assert runs.empty and "status" in runs.columns


def test_rename_and_delete_remove_the_rows(store):
    keep = store.create_run(CONFIG)
    gone = store.create_run(CONFIG)
    for run_id in (keep, gone):
        store.append(run_id, records())
    store.rename(keep, "renamed")
    store.delete(gone)
    assert store.get_run(keep).name == "renamed"
    assert store.get_run(gone) is None
    assert store.scalars(gone).empty and store.matrices(gone).empty
    assert len(store.scalars(keep)) == 28
    with pytest.raises(KeyError):
        store.append(gone, records())  # a worker writing to a deleted run learns it at once
    assert store.scalars(gone).empty
    assert store.create_run(CONFIG) > gone  # ids are never reused


def test_stop_flag(store):
    run_id = store.create_run(CONFIG)
    assert not store.stop_requested(run_id)
    store.request_stop(run_id)
    assert store.stop_requested(run_id)
    assert not store.stop_requested(9999)


def test_recover_interrupted_marks_runs_of_dead_processes_only(store):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    orphan = store.create_run(CONFIG, status="running", pid=dead_pid)
    store.append(orphan, records())
    live = store.create_run(CONFIG, status="running", pid=None)
    store.set_status(live, "running", pid=__import__("os").getpid())
    queued_orphan = store.create_run(CONFIG, pid=dead_pid)
    finished = store.create_run(CONFIG, status="done", pid=dead_pid)

    assert not pid_alive(dead_pid)
    assert sorted(store.recover_interrupted()) == [orphan, queued_orphan]
    info = store.get_run(orphan)
    assert info.status == "interrupted" and info.finished_at is not None and "interrupted" in info.message
    assert len(store.scalars(orphan)) == 28 and store.last_step(orphan) == 3
    assert store.get_run(live).status == "running"
    assert store.get_run(finished).status == "done"
    assert store.recover_interrupted() == []


def test_export_csv_is_tidy(store):
    first = store.create_run(CONFIG, name="a, b")
    second = store.create_run(CONFIG)
    store.append(first, records())
    store.append(second, records()[:1])
    table = pd.read_csv(io.StringIO(store.export_csv([first, second])), keep_default_na=False,
                        na_values=[""])
    assert list(table.columns) == ["run_id", "run_name", "step", "split", "task", "metric", "value"]
    assert len(table) == 28 + 10
    assert set(table.loc[table.run_id == first, "run_name"]) == {"a, b"}
    accuracy = table[(table.run_id == first) & (table.metric == "accuracy") & (table.task == "left")]
    assert accuracy["value"].tolist() == [0.25, 0.75]
    assert table["value"].isna().sum() == 3  # the NaNs (step 2's right loss and left weight, step 3's
    # right validation loss) are empty cells


def test_a_page_thread_reads_while_a_writer_thread_appends(store):
    run_id = store.create_run(CONFIG)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for start in range(0, 300, 3):
                batch = []
                for offset, record in enumerate(records()):
                    record.step = start + offset + 1
                    batch.append(record)
                store.append(run_id, batch)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    seen, rows = 0, 0
    while writer.is_alive() or seen < store.last_step(run_id):
        new = store.scalars(run_id, since_step=seen)  # what a polling page does
        if not new.empty:
            seen, rows = int(new["step"].max()), rows + len(new)
    writer.join()
    assert not errors
    assert seen == store.last_step(run_id) == 300
    assert rows == len(store.scalars(run_id)) == 100 * 28  # batches are whole: no row missed or seen twice
