"""The Compare page in AppTest, on a finished grid trained for real (tiny runs): the results
table's numbers, the Pareto plot's front and hypervolume, the URL, launching a grid, the STL
baselines on demand, and the share panel on Compare and Train."""

from __future__ import annotations

import json
import sqlite3
import time
from urllib.parse import parse_qsl

import pytest
from streamlit.testing.v1 import AppTest

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.engine.metrics import hypervolume, non_dominated, reference_point
from mtl_core.figures import compare as compare_viz
from mtl_core.runs.baselines import missing_baselines
from mtl_core.runs.share import cli_line
from mtl_core.runs.store import Store
from mtl_core.runs.sweep import (
    baseline_metrics,
    make_grid,
    results_table,
    run_grid,
    run_summaries,
    with_delta_m,
)
from tests.compare_support import SETUP, stored_run, three_seed_grid

APP = "../app.py"
BASE = RunConfig.parse(SETUP)
HPS, STL = ARCHITECTURES["hps"].name, ARCHITECTURES["stl"].name  # the table shows names, not keys


@pytest.fixture(scope="module")
def grid_store(tmp_path_factory):
    """A finished grid: ew and pcgrad on hps, seeds 0 and 1, with its two STL baselines (6 tiny
    runs on multidigits, trained by worker processes as the CLI's sweep does)."""
    path = tmp_path_factory.mktemp("grid") / "mtl.db"
    grid = make_grid(BASE, "ew,pcgrad", "hps", "0,1")
    configs = grid.configs()
    baselines = missing_baselines(Store(path), configs)
    ids = run_grid([*baselines, *configs], store_path=path, workers=2)
    store = Store(path)
    assert {store.get_run(i).status for i in ids} == {"done"}
    return path, ids, grid


def copy_store(source, target) -> None:
    """A consistent copy of a store in WAL mode (a file copy would miss the write-ahead log)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


@pytest.fixture
def finished_grid(grid_store, mtl_store):
    source, ids, grid = grid_store
    copy_store(source, mtl_store)
    return Store(mtl_store), ids, grid


def compare_page(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    return at


COLUMN_OF = {"compare.results": "Δm % (+ is better)", "compare.status": "Status"}


def dataframe(at: AppTest, key: str):
    """The page's table by its key (AppTest does not expose a dataframe's key: find its column)."""
    return next(d.value for d in at.dataframe if COLUMN_OF[key] in d.value.columns)


def test_the_results_table_shows_the_grids_numbers(finished_grid):
    store, ids, grid = finished_grid
    at = compare_page({"runs": ",".join(map(str, ids))})
    shown = dataframe(at, "compare.results")
    summaries = run_summaries(store, ids)
    table = results_table(with_delta_m(summaries, baseline_metrics(store, summaries)))
    assert list(shown["Method"]) == [compare_viz.BASELINE_LABEL if a == "stl" else compare_viz.method_label(m)
                                     for m, a in zip(table["method"], table["arch"], strict=True)]
    ew = table[(table["method"] == "ew") & (table["arch"] == "hps")].iloc[0]
    row = shown[(shown["Method"] == "Equal weighting") & (shown["Architecture"] == HPS)].iloc[0]
    left = summaries[(summaries["method"] == "ew") & (summaries["arch"] == "hps")]["left"]
    assert row["left: Accuracy ↑"] == f"{left.mean():.4f} ± {left.std(ddof=1):.4f}"
    assert row["Δm % (+ is better)"] == f"{ew['delta_m mean']:.2f} ± {ew['delta_m std']:.2f}"
    assert row["STL baseline runs"] == f"{ids[0]},{ids[1]}"
    baseline = shown[shown["Architecture"] == STL].iloc[0]
    assert baseline["Δm % (+ is better)"] == "0.00 ± 0.00"
    status = dataframe(at, "compare.status")
    assert sorted(status["Run"]) == sorted(ids) and set(status["Status"]) == {"done"}


def test_the_pareto_plot_marks_the_front_and_states_hypervolume_and_reference(finished_grid):
    store, ids, _ = finished_grid
    at = compare_page({"runs": ",".join(map(str, ids))})
    summaries = run_summaries(store, ids)
    values = summaries[["left", "right"]].to_numpy(dtype=float)
    front = non_dominated(values, [True, True])
    ref = reference_point(values, [True, True])
    volume = hypervolume(values, ref, [True, True])
    assert next(m for m in at.metric if m.label == "Hypervolume").value == f"{volume:.4g}"
    text = " ".join(m.value for m in at.markdown)
    assert f"({ref[0]:.4f}, {ref[1]:.4f})" in text
    for run_id in summaries["run_id"][front]:
        assert f"{run_id} (" in text.split("Non-dominated runs:")[1]
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    figure = next(f for f in figures if "hypervolume" in f["layout"].get("title", {}).get("text", ""))
    names = [trace.get("name") for trace in figure["data"]]
    assert "Pareto front" in names and "reference point" in names
    titles = [json.loads(c.proto.spec).get("title") for c in at.get("vega_lite_chart")]
    assert [t for t in titles if str(t).endswith("validation accuracy")] == [
        "left: validation accuracy", "right: validation accuracy"]  # one band chart per task


def test_the_url_reproduces_the_grid_and_the_runs(finished_grid):
    _, ids, grid = finished_grid
    at = compare_page({"runs": ",".join(map(str, ids))})
    query = {key: at.query_params[key] for key in at.query_params}
    assert query["runs"] == ",".join(map(str, ids))
    assert query["grid.methods"] == "ew,pcgrad" and query["grid.seeds"] == "0,1"
    again = compare_page(query)
    methods = next(w for w in again.multiselect if w.key == "compare.methods")
    assert methods.value == ["ew", "pcgrad"]
    assert next(w for w in again.text_input if w.key == "compare.seeds").value == "0,1"
    assert len(dataframe(again, "compare.results")) == 3


def test_a_bad_link_is_a_warning_not_a_traceback(mtl_store):
    at = compare_page({"runs": "abc,99", "lr": "-1", "grid.methods": "nope"})
    assert any("not valid" in w.value for w in at.warning)
    assert any("None of the runs" in w.value for w in at.warning)


def test_launching_a_grid_queues_it_with_its_baselines(mtl_store):
    at = compare_page()
    next(w for w in at.multiselect if w.key == "compare.methods").set_value(["ew", "mgda"])
    next(w for w in at.text_input if w.key == "compare.seeds").set_value("3")
    next(w for w in at.number_input if w.key == "compare.steps").set_value(5)
    at.run()
    launch = next(b for b in at.button if b.key == "compare.launch")
    assert launch.label == "Launch 2 runs + 1 STL baselines"
    launch.click().run()
    assert not at.exception
    ids = [int(i) for i in at.query_params["runs"].split(",")]
    store = Store(mtl_store)
    configs = [store.get_run(i).config for i in ids]
    assert [(c.arch, c.method, c.seed, c.steps) for c in configs] == [
        ("stl", "ew", 3, 5), ("hps", "ew", 3, 5), ("hps", "mgda", 3, 5)]
    assert sorted(dataframe(at, "compare.status")["Run"]) == ids


def test_missing_baselines_are_offered_and_trained_on_demand(mtl_store):
    store = Store(mtl_store)
    ids = [stored_run(store, {**SETUP, "method": m}, {"left": 0.5, "right": 0.4}) for m in ("ew", "pcgrad")]
    at = compare_page({"runs": ",".join(map(str, ids))})
    assert any("1 STL baseline run(s) are missing" in i.value for i in at.info)
    assert set(dataframe(at, "compare.results")["Δm % (+ is better)"]) == {"-"}
    next(b for b in at.button if b.key == "compare.baselines").click().run()
    new = [int(i) for i in at.query_params["runs"].split(",")][2:]
    assert [(store.get_run(i).config.arch, store.get_run(i).config.seed) for i in new] == [("stl", 0)]


def test_picking_stored_runs_compares_them(mtl_store):
    store = Store(mtl_store)
    ids = [stored_run(store, {**SETUP, "method": m, "seed": s}, {"left": 0.5 + s / 10, "right": 0.4})
           for m in ("ew", "pcgrad") for s in (0, 1)]
    at = compare_page()
    next(w for w in at.multiselect if w.key == "compare.picked").set_value(ids[:3]).run()
    next(b for b in at.button if b.key == "compare.compare").click().run()
    assert at.query_params["runs"] == ",".join(map(str, ids[:3]))
    shown = dataframe(at, "compare.results")
    assert list(shown["Seeds"]) == ["0,1", "0"]
    # The set-up is taken from the runs: their methods and seeds.
    assert next(w for w in at.multiselect if w.key == "compare.methods").value == ["ew", "pcgrad"]


def test_compare_shows_the_sweep_command_and_train_the_run_command(mtl_store):
    at = compare_page({"runs": ""})
    assert any(c.value.startswith("python -m mtl_core sweep ") for c in at.code)
    config = RunConfig.parse({**SETUP, "method": "cagrad", "seed": 4})
    train = AppTest.from_file(APP, default_timeout=90)
    for key, value in config.to_query().items():
        train.query_params[key] = value
    train.switch_page("pages/train.py").run()
    assert not train.exception
    assert cli_line(config) in [c.value for c in train.code]
    assert any(b.label == "Download config JSON" for b in train.get("download_button"))
    link = next(p for p in train.get("page_link") if p.proto.label == "Compare methods on this set-up")
    assert link.proto.page == "compare"
    assert RunConfig.from_query(dict(parse_qsl(link.proto.query_string))) == config


def test_a_live_grid_can_be_stopped_and_its_runs_exported(mtl_store):
    at = compare_page()
    next(w for w in at.text_input if w.key == "compare.seeds").set_value("0")
    next(w for w in at.number_input if w.key == "compare.steps").set_value(100_000)
    next(w for w in at.toggle if w.key == "compare.with_baselines").set_value(False)
    at.run()
    next(b for b in at.button if b.key == "compare.launch").click().run()
    ids = [int(i) for i in at.query_params["runs"].split(",")]
    assert len(ids) == 2
    assert any(b.label == "Export these runs as CSV" for b in at.get("download_button"))
    next(b for b in at.button if b.key == "compare.stop").click().run()
    store = Store(mtl_store)
    deadline = time.monotonic() + 30
    while {store.get_run(i).status for i in ids} - {"stopped"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {store.get_run(i).status for i in ids} == {"stopped"}


def test_more_than_two_tasks_get_parallel_coordinates(mtl_store):
    store = Store(mtl_store)
    setup = {"suite": "digit_attributes", "tasks": ["digit", "parity", "ink"], "steps": 20,
             "eval_every": 10, "device": "cpu"}
    ids = [stored_run(store, {**setup, "method": m}, {"digit": d, "parity": 0.8, "ink": ink})
           for m, d, ink in (("ew", 0.7, 2.0), ("uw", 0.75, 3.0))]
    at = compare_page({"runs": ",".join(map(str, ids))})
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    parallel = next(f for f in figures if f["data"][0]["type"] == "parcoords")
    labels = [d["label"] for d in parallel["data"][0]["dimensions"]]
    assert labels == ["digit Accuracy ↑", "parity Accuracy ↑", "ink MAE (pixels) ↓ (flipped)"]
    assert not any("hypervolume" in f["layout"].get("title", {}).get("text", "") for f in figures)


def test_a_set_up_from_the_train_page_is_compared_with_equal_weighting_over_three_seeds(mtl_store):
    config = RunConfig.parse({**SETUP, "method": "cagrad", "method_params": {"c": 0.7}})
    at = compare_page(config.to_query())
    assert next(w for w in at.multiselect if w.key == "compare.methods").value == ["ew", "cagrad"]
    assert next(w for w in at.text_input if w.key == "compare.seeds").value == "0,1,2"
    assert at.query_params["method.c"] == "0.7"  # the method keeps its knob
    launch = next(b for b in at.button if b.key == "compare.launch")
    assert launch.label == "Launch 6 runs + 3 STL baselines"


def test_the_results_table_says_which_differences_are_more_than_seed_noise(mtl_store):
    ids = three_seed_grid(Store(mtl_store))
    at = compare_page({"runs": ",".join(map(str, ids))})
    shown = dataframe(at, "compare.results").set_index("Method")
    column = "Δm vs Equal weighting (95% interval)"
    assert shown.loc["PCGrad", column].startswith("better: +")
    assert shown.loc["MGDA", column].startswith("within noise: ")
    assert shown.loc["Equal weighting", column] == "reference"
    assert shown.loc["PCGrad", "left vs Equal weighting"].startswith("better: +0.0300")
    assert shown.loc["PCGrad", "Rank"] == "1" and shown.loc["MGDA", "Rank"] == "=2"
    assert set(shown["Architecture"]) == {HPS, STL}  # names, not keys
    assert set(dataframe(at, "compare.status")["Architecture"]) == {HPS, STL}
    assert any("seed noise explains the difference" in c.value for c in at.caption)
    # Final values as points with error bars, and the differences with their intervals.
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    titles = [title_text(spec) for spec in specs]
    assert "left: final accuracy, mean ± std over seeds" in titles
    assert "Δm % minus Equal weighting's: 95% interval" in titles
    # The band charts are zoomed to the curves, not drawn on 0-1.
    band = specs[titles.index("left: validation accuracy")]
    domain = band["layer"][1]["encoding"]["y"]["scale"]["domain"]
    assert domain != [0.0, 1.0] and domain[1] - domain[0] < 1.0


def test_the_default_grid_runs_three_seeds(mtl_store):
    at = compare_page()
    assert next(w for w in at.text_input if w.key == "compare.seeds").value == "0,1,2"
    next(w for w in at.text_input if w.key == "compare.seeds").set_value("0").run()
    assert any("With 1 seed, seed noise can hide or fake a difference" in c.value for c in at.caption)


def test_launch_is_disabled_while_the_pages_grid_trains(mtl_store):
    store = Store(mtl_store)
    live = [stored_run(store, {**SETUP, "method": m}, {"left": 0.5, "right": 0.4}, status="running")
            for m in ("ew", "pcgrad")]
    at = compare_page({"runs": ",".join(map(str, live))})
    launch = next(b for b in at.button if b.key == "compare.launch")
    assert launch.disabled and "is training" in launch.help
    for run_id in live:
        store.set_status(run_id, "done")
    at = compare_page({"runs": ",".join(map(str, live))})
    assert not next(b for b in at.button if b.key == "compare.launch").disabled


def title_text(spec: dict) -> str:
    """A chart's title as one line (a long one may be wrapped into a list of lines to fit)."""
    title = spec.get("title", "")
    text = title.get("text", "") if isinstance(title, dict) else title
    return " ".join(text) if isinstance(text, list) else str(text)
