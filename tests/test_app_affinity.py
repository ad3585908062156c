"""The Task affinity page in AppTest: a stored TAG run's matrices, the transfer study and the
groupings, and the buttons that start runs through the job manager."""

from __future__ import annotations

import json
import threading
from functools import partial

import numpy as np
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from mtl_core.config import RunConfig
from mtl_core.runs.store import Store
from mtl_core.runs.worker import execute_run, train_here
from mtl_core.studies import affinity, grouping, transfer

APP = "../app.py"
TASKS = ("digit", "parity", "ink")


def affinity_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/affinity.py").run()
    assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> list[dict]:
    specs = []
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        spec["_data"] = [convert_arrow_bytes_to_pandas_df(d.data.data) for d in element.proto.datasets]
        specs.append(spec)
    return specs


def title_of(spec: dict) -> str:
    title = spec.get("title")
    return title.get("text") if isinstance(title, dict) else title


def tag_config(**changes) -> RunConfig:
    return RunConfig.parse({"suite": "digit_attributes", "tasks": TASKS, "steps": 20, "eval_every": 20,
                            "probe_every": 5, "affinity_every": 5, "batch_size": 64, "snapshot_every": 0,
                            "device": "cpu", **changes})


def trained(store: Store, config: RunConfig) -> int:
    run_id = store.create_run(config)
    assert execute_run(store, run_id, stop=threading.Event()).status == "done"
    return run_id


def button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def test_without_a_tag_run_the_page_says_how_to_start_one(mtl_store):
    at = affinity_page()
    assert any("No run has measured" in i.value for i in at.info)
    suite = next(s for s in at.selectbox if s.key == "affinity.suite")
    assert suite.value == "digit_attributes"
    tasks = next(m for m in at.multiselect if m.key == "affinity.tasks.digit_attributes")
    assert tasks.value == ["digit", "parity", "large", "ink", "centre", "slant"]
    for widget in [*at.selectbox, *at.multiselect, *at.number_input, *at.button]:
        assert widget.help, widget.label  # every control explains itself
    tasks.set_value(["digit"]).run()
    assert any("two or more tasks" in e.value for e in at.error)
    assert button(at, "affinity.start").disabled


def test_a_tag_run_shows_its_matrices_network_and_groupings(mtl_store):
    store = Store(mtl_store)
    run_id = trained(store, tag_config())
    at = affinity_page()
    specs = charts(at)
    titles = [title_of(spec) for spec in specs]
    assert titles[:2] == ["Lookahead affinity (TAG)", "Gradient cosine"]
    expected = affinity.run_affinities(store, run_id)
    # The heatmap's cells are the mean of the stored matrices, off the diagonal, shown in the
    # power of ten its legend names.
    tag = specs[0]
    cells = next(d for d in tag["_data"] if "source" in d)
    assert len(cells) == 3 * 2
    legend = tag["layer"][0]["encoding"]["color"]["title"]
    exponent = int(legend.split("10")[-1].rstrip(")").translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789"))) \
        if "×10" in legend else 0
    for row in cells.itertuples():
        assert row.value * 10.0**exponent == pytest.approx(expected["tag"].at[row.source, row.target], rel=1e-4)
    cosine = specs[1]
    assert cosine["layer"][0]["encoding"]["color"]["scale"]["domain"] == [-1.0, 1.0]
    # The network view of the default choice (TAG), and its groupings g = 1..3.
    assert "Lookahead affinity (TAG): tasks as a network" in titles
    table = at.dataframe[-1].value
    assert list(table["Groups"]) == [1, 2, 3]
    best = grouping.best_groupings(expected["tag"])
    assert list(table["Best split"]) == [g.label for g in best]
    assert np.allclose(table["Score"], [g.score for g in best])
    # Agreement between the two measures, and the transfer study not yet trained.
    assert at.dataframe[0].value.shape == (2, 2)
    assert button(at, "affinity.transfer").label == "Train the 4 missing runs"
    assert any("0 of 4 runs done" in c.value for c in at.caption)


def test_the_transfer_matrix_appears_once_its_runs_are_done(mtl_store):
    store = Store(mtl_store)
    base = tag_config()
    trained(store, base)
    transfer.train_transfer_study(store, base, train=partial(train_here, store))  # the core call, without the app
    at = affinity_page()
    titles = [title_of(spec) for spec in charts(at)]
    assert titles[:3] == ["Lookahead affinity (TAG)", "Gradient cosine", "Pairwise transfer"]
    assert any("4 of 4 runs done" in c.value for c in at.caption)
    assert not any(b.key == "affinity.transfer" for b in at.button)
    assert at.dataframe[0].value.shape == (3, 3)  # three measures compared
    next(r for r in at.radio if r.key == "affinity.by").set_value("transfer").run()
    assert "Pairwise transfer: tasks as a network" in [title_of(s) for s in charts(at)]
    gains = transfer.transfer_gains(store, base)
    table = at.dataframe[-1].value
    assert list(table["Best split"]) == [g.label for g in grouping.best_groupings(gains)]


def test_the_buttons_start_runs_through_the_job_manager(mtl_store):
    store = Store(mtl_store)
    run_id = trained(store, tag_config())
    at = affinity_page()
    check = next(s for s in at.selectbox if s.key == "affinity.check.tag")
    check.set_value(3).run()
    button(at, "affinity.train_grouping").click().run()
    assert not at.exception
    started = [store.get_run(int(i)) for i in store.list_runs()["id"] if int(i) != run_id]
    assert sorted(info.config.tasks for info in started) == [("digit",), ("ink",), ("parity",)]
    assert all(info.config.steps == 20 and info.config.affinity_every == 0 for info in started)

    next(n for n in at.number_input if n.key == "affinity.steps").set_value(30).run()
    button(at, "affinity.start").click().run()
    assert not at.exception
    newest = store.get_run(int(store.list_runs()["id"].iloc[0]))
    assert newest.config.affinity_every == 10 and newest.config.probe_every == 10
    assert newest.config.steps == 30 and len(newest.config.tasks) == 6
    assert next(s for s in at.selectbox if s.key == "affinity.run").value == newest.id
