"""The Train page in AppTest: the form follows the registries and the URL, a bad value is a
message, and Train runs a job whose curves the dashboard draws."""

from __future__ import annotations

import json
import math
import time

import pytest
import streamlit as st
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from mtl_core.config import RunConfig
from mtl_core.engine.records import StepRecord
from mtl_core.methods import METHODS
from mtl_core.runs.baselines import baseline_config
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


# --- what a run means: automatic notes, the end-of-run summary, the weights, the queue -------------

NOTES_CONFIG = RunConfig(suite="multidigits", tasks=("left", "right"), steps=200, eval_every=100,
                         probe_every=10, snapshot_every=0, device="cpu")


def synthetic_record(step: int, *, left_norm: float = 1.0, right_norm: float = 1.2, cosine: float = 0.3,
                     weight: float = 1.0) -> StepRecord:
    """One step of a made-up run of NOTES_CONFIG: a probe every 10 steps, validation every 100."""
    probe = step % 10 == 0
    return StepRecord(
        step=step, time_s=0.01 * step, loss={"left": 1.0, "right": 1.1}, weight={"left": weight, "right": weight},
        grad_norm={"left": left_norm, "right": right_norm} if probe else None,
        cosine=[[1.0, cosine], [cosine, 1.0]] if probe else None,
        update_norm=1.0 if probe else None, cos_update={"left": 0.7, "right": 0.7} if probe else None,
        val={"left": {"loss": 1.0, "accuracy": 0.6}, "right": {"loss": 1.1, "accuracy": 0.5}}
        if step % 100 == 0 else None)


def stored_run(path, records: list[StepRecord], *, status: str = "done", message: str | None = None,
               config: RunConfig = NOTES_CONFIG) -> int:
    store = Store(path)
    run_id = store.create_run(config, status="running")
    store.append(run_id, records)
    store.set_status(run_id, status, message=message)
    return run_id


def open_run(run_id: int) -> AppTest:
    at = new_app()
    at.query_params["run"] = str(run_id)
    at.run()
    assert not at.exception
    return at


def notes(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if w.value.startswith("**Step ")]


# Each event made up on a run of NOTES_CONFIG (200 steps, a probe every 10): (records, status,
# message) and the note it must show, with its step.
EVENTS = {
    "vanishing": ([synthetic_record(s, left_norm=1.0 if s < 110 else 1e-8) for s in range(1, 201)], "done", None,
                  "**Step 110 · left's gradient vanished.**"),
    "dominance": ([synthetic_record(s, right_norm=1.2 if s < 50 else 25.0) for s in range(1, 201)], "done", None,
                  "**Step 50 · right's loss dominates.**"),
    "conflict": ([synthetic_record(s, cosine=0.5 if s < 30 else -0.4) for s in range(1, 201)], "done", None,
                 "**Step 50 · left and right conflict often.**"),
    "divergence": ([synthetic_record(s) for s in range(1, 31)], "diverged",
                   "the loss of left became non-finite at step 31; the 30 steps before it are kept",
                   "**Step 31 · The run diverged.**"),
}


@pytest.mark.parametrize("event", list(EVENTS))
def test_a_run_where_an_event_happens_notes_it_at_its_step(training_store, event):
    records, status, message, expected = EVENTS[event]
    at = open_run(stored_run(training_store, records, status=status, message=message))
    shown = notes(at)
    assert any(note.startswith(expected) for note in shown), shown
    assert any(m.value.startswith("##### What to notice") for m in at.markdown)
    if event == "vanishing":  # the note explains the heatmap's +0.00 on the diagonal
        assert "+0.00" in next(note for note in shown if note.startswith(expected))


def test_a_calm_run_shows_no_note(training_store):
    at = open_run(stored_run(training_store, [synthetic_record(s) for s in range(1, 201)]))
    assert notes(at) == []
    assert any("Nothing unusual" in c.value for c in at.caption)


def test_a_live_run_shows_the_notes_seen_so_far(training_store):
    records = [synthetic_record(s, cosine=0.5 if s < 30 else -0.4) for s in range(1, 81)]
    at = open_run(stored_run(training_store, records, status="running"))
    assert any(m.value.startswith("##### What to notice so far") for m in at.markdown)
    assert [note[:45] for note in notes(at)] == ["**Step 50 · left and right conflict often.** "]
    assert not any(m.value.startswith("##### How the run ended") for m in at.markdown)  # not yet
    Store(training_store).set_status(int(at.query_params["run"]), "stopped")  # nobody trains it


def test_the_end_of_run_summary_compares_with_the_stored_single_task_baseline(training_store):
    config = NOTES_CONFIG.model_copy(update={"seed": 5})
    run_id = stored_run(training_store, [synthetic_record(s) for s in range(1, 201)], config=config)
    at = open_run(run_id)
    assert any(m.value.startswith("##### How the run ended") for m in at.markdown)
    table = at.dataframe[0].value
    assert table["Final"].tolist() == ["0.6", "0.5"] and "Single-task" not in table.columns
    assert any("No single-task baseline" in c.value for c in at.caption)

    baseline = baseline_config(config)
    baseline_records = [StepRecord(step=200, time_s=1.0, loss={"left": 1.0, "right": 1.0},
                                   weight={"left": 1.0, "right": 1.0},
                                   val={"left": {"loss": 1.0, "accuracy": 0.5}, "right": {"loss": 1.0, "accuracy": 0.5}})]
    stored_run(training_store, baseline_records, config=baseline)
    at = open_run(run_id)
    table = at.dataframe[0].value
    assert table["Single-task"].tolist() == ["0.5", "0.5"]
    assert table["Change (+ better)"].tolist() == ["+20.0 %", "+0.0 %"]
    delta = {m.label: m.value for m in at.metric}["Δm against single-task"]
    assert delta == "+10.00 %"  # delta_m: the mean of +20 % and 0 %, positive is better


@pytest.mark.parametrize(("method", "weight", "caption"), [
    ("pcgrad", 3.0, "Task weights of a gradient method"),
    ("graddrop", math.nan, "What GradDrop changes instead of weights"),
    ("uw", 1.0, None),  # a loss weighting: its weights are what they say
])
def test_the_weights_of_a_gradient_method_say_what_they_mean(training_store, method, weight, caption):
    config = NOTES_CONFIG.model_copy(update={"method": method})
    at = open_run(stored_run(training_store, [synthetic_record(s, weight=weight) for s in range(1, 201)],
                             config=config))
    captions = [c.value for c in at.caption]
    if caption is None:
        assert not any("Task weights of a gradient method" in c or "changes instead" in c for c in captions)
    else:
        text = next(c for c in captions if caption in c)
        assert "w·J" in text or METHODS[method].summary in text


def test_a_queued_run_shows_its_place_and_wait_not_the_building_message(training_store):
    store = Store(training_store)
    at = new_app()
    at.query_params.update(RunConfig.parse({"suite": "synthetic", "suite_params": {"train_size": 1000},
                                            "steps": 200000, "batch_size": 64, "device": "cpu"}).to_query())
    at.run()
    {b.label: b for b in at.button}["Train"].click().run()
    first = int(at.query_params["run"])
    deadline = time.monotonic() + 60
    while store.last_step(first) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    {b.label: b for b in at.button}["Train"].click().run()
    second = int(at.query_params["run"])
    assert second != first and store.get_run(second).status == "queued"
    texts = [i.value for i in at.info]
    place = next(text for text in texts if text.startswith("**Waiting in the queue, position 1.**"))
    assert f"1 run is ahead of it: #{first} (training)" in place and "It should start in **about" in place
    assert not any("building the data" in text for text in texts)
    for run_id in (second, first):  # stop both: the queued one at once, then the one training
        at.query_params["run"] = str(run_id)
        at.run()
        {b.label: b for b in at.button}["Stop"].click().run()
        assert wait_until_finished(store, run_id, timeout=15) == "stopped"


def test_the_digit_gradient_that_vanishes_under_equal_weighting_is_noted(training_store):
    """The issue's case, trained for real: on digit_attributes under ew, ink's gradient is hundreds
    of times digit's from the start, and digit's falls to ~0 (about step 150 on a CPU)."""
    store = Store(training_store)
    at = new_app()
    at.query_params.update(RunConfig.parse({
        "suite": "digit_attributes", "tasks": ("digit", "ink"), "method": "ew", "steps": 300,
        "eval_every": 100, "probe_every": 10, "snapshot_every": 0, "device": "cpu"}).to_query())
    at.run()
    {b.label: b for b in at.button}["Train"].click().run()
    run_id = int(at.query_params["run"])
    assert wait_until_finished(store, run_id, timeout=180) == "done"
    at.run()
    assert not at.exception
    # where digit's norm first stays under 1e-3 of its largest over the first three probes
    digit = store.scalars(run_id, split="train", metric="grad_norm").query("task == 'digit'")["value"].tolist()
    steps = sorted(set(store.scalars(run_id, split="train", metric="grad_norm")["step"]))
    small = [value < 1e-3 * max(digit[:3]) for value in digit]
    vanished = next(steps[i] for i in range(3, len(small) - 1) if small[i] and small[i + 1])
    assert 100 <= vanished <= 300
    shown = notes(at)
    assert any(note.startswith(f"**Step {vanished:,} · digit's gradient vanished.**") for note in shown), shown
    assert any(note.startswith("**Step 1 · ink's loss dominates.**") for note in shown), shown
