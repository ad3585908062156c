"""The Train page in AppTest: the form follows the registries and the URL, a bad value is a
message, and Train runs a job whose curves the dashboard draws."""

from __future__ import annotations

import json
import time

import pytest
import streamlit as st
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from mtl_core.config import RunConfig
from mtl_core.runs.store import TERMINAL, Store
from mtl_core.suites import SUITES

APP = "../app.py"  # AppTest paths are relative to this file


def new_app() -> AppTest:
    # Home is the default page: go straight to Train (its URL is /train).
    return AppTest.from_file(APP, default_timeout=60).switch_page("pages/train.py")


def control(at: AppTest, key: str):
    """The widget with this key, whatever its kind."""
    for kind in ("selectbox", "multiselect", "number_input", "slider", "toggle", "text_input"):
        for element in getattr(at, kind):
            if element.key == key:
                return element
    raise KeyError(key)


def charts(at: AppTest) -> list[dict]:
    """The vega-lite specs on the page, each with its data sets as DataFrames under "_data"."""
    specs = []
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        spec["_data"] = [convert_arrow_bytes_to_pandas_df(dataset.data.data)
                         for dataset in element.proto.datasets]
        specs.append(spec)
    return specs


def wait_until_finished(store: Store, run_id: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = store.get_run(run_id)
        if info is not None and info.status in TERMINAL:
            return info.status
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} did not finish in {timeout} s")


@pytest.fixture(scope="module")
def training_store(tmp_path_factory):
    """One store and job manager for this file's tests (the page starts the manager when it
    loads), so they share its warm worker instead of each starting one."""
    path = tmp_path_factory.mktemp("training") / "mtl.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTL_STORE", str(path))
        st.cache_resource.clear()
        yield path
        st.cache_resource.clear()  # shuts the job manager and its workers down


def test_first_load_shows_the_default_demo_and_writes_it_to_the_url(training_store):
    at = new_app().run()
    assert not at.exception
    assert control(at, "train.suite").value == "multidigits"
    assert control(at, "train.tasks.multidigits").value == ["left", "right"]
    assert control(at, "train.arch").value == "hps"
    assert control(at, "train.method").value == "ew"
    assert control(at, "train.steps").value == 400
    assert RunConfig.from_query(dict(at.query_params)) == RunConfig()
    assert "run" not in at.query_params


def test_every_control_has_help_text(training_store):
    at = new_app().run()
    controls = [*at.selectbox, *at.multiselect, *at.number_input, *at.slider, *at.toggle]
    assert controls
    missing = [c.label for c in controls if not c.help]
    assert not missing, f"controls without help: {missing}"
    buttons = {b.label: b for b in at.button}
    assert buttons["Train"].help and buttons["Stop"].help


def test_the_url_sets_the_form(training_store):
    config = RunConfig.parse({"suite": "digit_attributes", "tasks": ["digit", "ink"], "arch": "stl",
                              "lr": 0.003, "steps": 250, "seed": 7})
    at = new_app()
    at.query_params.update(config.to_query())
    at.run()
    assert not at.exception
    assert control(at, "train.suite").value == "digit_attributes"
    assert control(at, "train.tasks.digit_attributes").value == ["digit", "ink"]
    assert control(at, "train.arch").value == "stl"
    assert control(at, "train.lr").value == pytest.approx(0.003)
    assert (control(at, "train.steps").value, control(at, "train.seed").value) == (250, 7)
    assert RunConfig.from_query(dict(at.query_params)) == config


def test_changing_a_control_updates_the_url_and_new_knobs_appear(training_store):
    at = new_app().run()
    control(at, "train.suite").set_value("synthetic").run()
    assert not at.exception
    assert control(at, "train.tasks.synthetic").value == list(SUITES["synthetic"].default_tasks)
    correlation = control(at, "train.suite.synthetic.correlation")
    assert correlation.help
    correlation.set_value(-0.5).run()
    query = dict(at.query_params)
    assert query["suite"] == "synthetic" and float(query["suite.correlation"]) == -0.5


def test_a_bad_value_or_a_bad_link_is_a_message_not_a_traceback(training_store):
    at = new_app().run()
    control(at, "train.lr").set_value(-1.0).run()
    assert not at.exception
    assert any("lr" in e.value and "greater than 0" in e.value for e in at.error)
    assert {b.label: b for b in at.button}["Train"].disabled

    control(at, "train.lr").set_value(0.01).run()
    control(at, "train.tasks.multidigits").set_value([]).run()
    assert any("at least one task" in e.value for e in at.error)

    at = new_app()
    at.query_params.update({"lr": "abc", "steps": "-3"})
    at.run()
    assert not at.exception
    assert any("not valid" in w.value for w in at.warning)
    assert control(at, "train.lr").value == RunConfig().lr


def test_train_runs_a_job_and_the_dashboard_draws_its_curves(training_store):
    mtl_store = training_store
    at = new_app()
    at.query_params.update(RunConfig.parse({"suite": "synthetic", "suite_params": {"train_size": 1000},
                                            "steps": 40, "eval_every": 10, "probe_every": 5,
                                            "batch_size": 64, "device": "cpu"}).to_query())
    at.run()
    {b.label: b for b in at.button}["Train"].click().run()
    assert not at.exception
    run_id = int(at.query_params["run"])
    store = Store(mtl_store)
    assert wait_until_finished(store, run_id) == "done"
    at.run()  # what a poll of the live fragment would draw; the run has ended, so polling stops
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "done" and metrics["Steps"] == "40 / 40"
    specs = charts(at)
    titles = [spec.get("title") for spec in specs]
    assert "Training loss per task" in titles and "Task weights" in titles
    loss = specs[titles.index("Training loss per task")]
    assert set(loss["_data"][0]["task"]) == {"y1", "y2"}
    assert loss["_data"][0]["step"].max() == 40
    assert any(str(t).startswith("Validation MSE") for t in titles)
    heatmap = specs[titles.index("Gradient cosine between tasks")]
    cells = heatmap["layer"][0]["encoding"]
    assert cells["x"]["sort"] == ["y1", "y2"] and cells["color"]["scale"]["domain"] == [-1, 1]
    assert set(heatmap["_data"][0]["row"]) == {"y1", "y2"}
    assert any("latest gradient probe" in c.value for c in at.caption)
    # how the update treats each task: cos(update, g_t) per task in [-1, 1], and the update's norm
    alignment = specs[titles.index("How the update treats each task (below 0: it hurts)")]
    cos_update = next(data for data in alignment["_data"] if "task" in data)
    assert set(cos_update["task"]) == {"y1", "y2"} and cos_update["value"].between(-1, 1).all()
    assert sorted(set(cos_update["step"])) == [1, 5, 10, 15, 20, 25, 30, 35, 40]
    assert "Update norm (shared parameters)" in titles
    assert any("same weight at every step" in c.value for c in at.caption)  # ew: the lines overlap
    # the run is stored with its config; a reload of the URL re-attaches to it
    assert store.get_run(run_id).config.suite == "synthetic"
    again = new_app()
    again.query_params.update(dict(at.query_params))
    again.run()
    assert {m.label: m.value for m in again.metric}["Status"] == "done"


def test_single_task_baselines_say_why_there_are_no_cosines(training_store):
    mtl_store = training_store
    at = new_app()
    at.query_params.update(RunConfig.parse({"suite": "synthetic", "suite_params": {"train_size": 1000},
                                            "arch": "stl", "steps": 20, "eval_every": 10,
                                            "probe_every": 5, "batch_size": 64, "device": "cpu"}).to_query())
    at.run()
    {b.label: b for b in at.button}["Train"].click().run()
    run_id = int(at.query_params["run"])
    wait_until_finished(Store(mtl_store), run_id)
    at.run()
    assert "Gradient cosine between tasks" not in [spec.get("title") for spec in charts(at)]
    assert any("share no parameters" in i.value for i in at.info)


def test_stop_ends_a_live_run(training_store):
    mtl_store = training_store
    at = new_app()
    at.query_params.update(RunConfig.parse({"suite": "synthetic", "suite_params": {"train_size": 1000},
                                            "steps": 200000, "batch_size": 64,
                                            "device": "cpu"}).to_query())
    at.run()
    {b.label: b for b in at.button}["Train"].click().run()
    run_id = int(at.query_params["run"])
    store = Store(mtl_store)
    deadline = time.monotonic() + 30
    while store.get_run(run_id).status in {"queued"} and time.monotonic() < deadline:
        time.sleep(0.05)
    stop = {b.label: b for b in at.button}["Stop"]
    assert not stop.disabled
    stop.click().run()
    assert wait_until_finished(store, run_id, timeout=10) == "stopped"


def test_every_method_shows_its_update_rule_paper_and_simplifications(training_store):
    """The student's card: choosing a method shows its formula, its paper and what we simplified."""
    from mtl_core.methods import METHODS

    at = new_app().run()
    for method in METHODS:
        control(at, "train.method").set_value(method.key).run()
        assert not at.exception, method.key
        card = next(e for e in at.expander if e.label == f"How {method.name} works")
        assert [latex.value.strip("$\n") for latex in card.latex] == [method.formula], method.key
        text = " ".join(m.value for m in card.markdown)
        if method.paper is not None:
            assert method.paper.title in text and (method.paper.arxiv or "") in text, method.key
        if method.extra.get("simplified"):
            assert method.extra["simplified"] in " ".join(i.value for i in card.info), method.key


@pytest.mark.parametrize(("method", "has_weights"), [("uw", True), ("mgda", True), ("nash_mtl", True),
                                                     ("graddrop", False)])
def test_the_dashboard_shows_how_each_kind_of_method_treats_the_tasks(training_store, method, has_weights):
    """A learned weighting, a features-space and a parameter-space gradient method, and one with no
    task weights: each run's weights (or why there are none) and its update diagnostics are drawn."""
    store = Store(training_store)
    at = new_app()
    at.query_params.update(RunConfig.parse({
        "suite": "digit_attributes", "tasks": ("digit", "ink"), "method": method, "steps": 20,
        "eval_every": 10, "probe_every": 5, "batch_size": 64, "device": "cpu"}).to_query())
    at.run()
    {b.label: b for b in at.button}["Train"].click().run()
    run_id = int(at.query_params["run"])
    assert wait_until_finished(store, run_id) == "done", store.get_run(run_id).message
    at.run()
    assert not at.exception
    specs = charts(at)
    titles = [spec.get("title") for spec in specs]
    alignment = specs[titles.index("How the update treats each task (below 0: it hurts)")]
    cos_update = next(data for data in alignment["_data"] if "task" in data)
    assert set(cos_update["task"]) == {"digit", "ink"} and cos_update["value"].between(-1, 1).all()
    if has_weights:
        weights = specs[titles.index("Task weights")]["_data"][0]
        assert set(weights["task"]) == {"digit", "ink"} and len(weights) == 2 * 20
        assert weights["value"].notna().all()
    else:
        assert "Task weights" not in titles
        assert any("gives the tasks no weights" in i.value for i in at.info)


def test_an_architecture_that_learns_sharing_shows_it_live(training_store):
    store = Store(training_store)
    at = new_app()
    at.query_params.update(RunConfig.parse({
        "suite": "synthetic", "suite_params": {"train_size": 1000}, "arch": "mmoe", "steps": 20,
        "eval_every": 10, "snapshot_every": 10, "batch_size": 64, "device": "cpu"}).to_query())
    at.run()
    {b.label: b for b in at.button}["Train"].click().run()
    assert wait_until_finished(store, int(at.query_params["run"])) == "done"
    at.run()
    assert not at.exception
    gate = next(spec for spec in charts(at) if spec.get("title") == "MMoE gate")
    cells = next(data for data in gate["_data"] if "row" in data)
    assert set(cells["row"]) == {"y1", "y2"} and len(set(cells["column"])) == 8
    assert cells.groupby("row")["value"].sum().round(6).eq(1.0).all()  # each task's gate sums to 1
    assert any("At step 20, the latest snapshot" in c.value for c in at.caption)
