"""The Runs page in AppTest: it lists stored runs, and renames, deletes, exports and re-runs them."""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from mtl_core.config import RunConfig
from mtl_core.engine.records import StepRecord
from mtl_core.runs.store import TERMINAL, Store

APP = "../app.py"
# A run that trains in well under a second once the worker is warm.
TINY_RUN = {"suite": "synthetic", "suite_params": {"train_size": 1000}, "steps": 40,
            "eval_every": 10, "probe_every": 5, "batch_size": 64, "device": "cpu"}


OWNER = "tester"  # the identity of the test's session: the runs are its own to rename and delete


def finished_run(store: Store, config: RunConfig, name: str) -> int:
    """A run as a worker would leave it, written straight to the store (no training)."""
    run_id = store.create_run(config, status="running", name=name, owner=OWNER)
    records = [StepRecord(step=step, time_s=step / 100, loss={t: 1 / step for t in config.tasks},
                          weight={t: 1.0 for t in config.tasks},
                          val={t: {"loss": 1 / step, "mse": 2 / step} for t in config.tasks}
                          if step % config.eval_every == 0 else None)
               for step in range(1, config.steps + 1)]
    store.append(run_id, records)
    store.set_status(run_id, "done", device="cpu")
    return run_id


@pytest.fixture
def two_runs(mtl_store):
    """Two finished tiny runs, the second with another seed; returns their ids (oldest first)."""
    store = Store(mtl_store)
    return [finished_run(store, RunConfig.parse({**TINY_RUN, "seed": seed}), f"tiny seed {seed}")
            for seed in (0, 1)]


def runs_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["identity.owner"] = OWNER  # as a cookie would have said (pages/_identity.py)
    at.switch_page("pages/runs.py").run()  # straight to Runs: the Train page would start workers
    assert not at.exception
    return at


def selected(at: AppTest):
    return next(s for s in at.selectbox if s.key == "runs.selected")


def test_an_empty_store_points_to_the_train_page(mtl_store):
    at = runs_page()
    assert any("No runs yet" in i.value for i in at.info)


def test_runs_are_listed_newest_first_with_status_and_final_metrics(two_runs):
    at = runs_page()
    table = at.dataframe[0].value
    assert table["id"].tolist() == two_runs[::-1]
    assert set(table["status"]) == {"done"}
    assert any(column.startswith("y1 ") for column in table.columns)
    assert selected(at).value == two_runs[1]
    code = [c.value for c in at.code]
    assert f"python -m mtl_core run --config run-{two_runs[1]}.json" in code


def test_rename_changes_the_stored_name(two_runs, mtl_store):
    at = runs_page()
    selected(at).set_value(two_runs[0]).run()
    next(t for t in at.text_input if t.key == f"runs.name.{two_runs[0]}").set_value("baseline")
    next(b for b in at.button if b.label == "Rename").click().run()
    assert not at.exception
    assert Store(mtl_store).get_run(two_runs[0]).name == "baseline"
    assert "baseline" in at.dataframe[0].value["name"].tolist()


def test_delete_asks_first_then_removes_the_run(two_runs, mtl_store):
    at = runs_page()
    selected(at).set_value(two_runs[0]).run()
    next(b for b in at.button if b.key == "runs.delete").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    next(b for b in at.button if b.key == "runs.delete_no").click().run()
    assert Store(mtl_store).get_run(two_runs[0]) is not None
    next(b for b in at.button if b.key == "runs.delete").click().run()
    next(b for b in at.button if b.key == "runs.delete_yes").click().run()
    assert not at.exception
    assert Store(mtl_store).get_run(two_runs[0]) is None
    assert at.dataframe[0].value["id"].tolist() == [two_runs[1]]


def test_exports_and_filters(two_runs, mtl_store):
    at = runs_page()
    downloads = {e.proto.label: e.proto for e in at.get("download_button")}
    assert {"Export CSV", "Config JSON", "Export these runs as CSV"} <= set(downloads)
    # what the buttons hand out: the store's CSV and the config the CLI reads back
    csv = Store(mtl_store).export_csv([two_runs[1]])
    assert csv.splitlines()[0] and "y1" in csv
    assert RunConfig.from_json(Store(mtl_store).get_run(two_runs[1]).config.to_json()).seed == 1
    next(t for t in at.text_input if t.key == "runs.filter.name").set_value("SEED 1").run()
    assert at.dataframe[0].value["id"].tolist() == [two_runs[1]]
    assert selected(at).value == two_runs[1]
    next(t for t in at.text_input if t.key == "runs.filter.name").set_value("no such run").run()
    assert at.dataframe[0].value.empty and not at.exception


def test_open_and_rerun_go_to_the_train_page_with_the_run(two_runs, mtl_store):
    at = runs_page()
    selected(at).set_value(two_runs[0]).run()
    next(b for b in at.button if b.key == "runs.open").click().run()
    assert not at.exception
    assert at.query_params["run"] == str(two_runs[0])
    assert {m.label: m.value for m in at.metric}["Status"] == "done"

    at = runs_page()
    selected(at).set_value(two_runs[0]).run()
    next(b for b in at.button if b.key == "runs.rerun").click().run()
    assert not at.exception
    new_id = int(at.query_params["run"])
    assert new_id not in two_runs
    store = Store(mtl_store)
    assert store.get_run(new_id).config == store.get_run(two_runs[0]).config
    deadline = time.monotonic() + 60
    while store.get_run(new_id).status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.1)
    assert json.loads(store.get_run(new_id).config.to_json())["seed"] == 0
