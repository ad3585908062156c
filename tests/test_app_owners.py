"""Run ownership on the pages, in AppTest: another person's run can be watched but not stopped,
renamed or deleted (the controls are disabled and say why), "Stop the grid" stops only one's own
runs and says how many it left alone, and Runs opens on one's own newest run, not the class's.

AppTest sends no cookies, so each AppTest is a browser on its first visit: it gets a new
identity, kept in its session state for the following runs."""

from __future__ import annotations

import os
import subprocess

import pytest
from streamlit.testing.v1 import AppTest

from mtl_core.config import RunConfig
from mtl_core.runs.jobs import JobManager, _Worker
from mtl_core.runs.owners import REFUSAL
from mtl_core.runs.store import Store

APP = "../app.py"
CONFIG = RunConfig.parse({"suite": "synthetic", "suite_params": {"train_size": 1000}, "steps": 40,
                          "eval_every": 10, "batch_size": 64, "device": "cpu"})
SOMEONE_ELSE = "someone-else-0000000"


@pytest.fixture
def store(mtl_store, monkeypatch):
    """The test's store; the app's job manager gets `cat` processes for workers (no torch: the
    pages here never train, they only stop)."""
    monkeypatch.delenv("MTL_LECTURER_KEY", raising=False)
    monkeypatch.setattr(JobManager, "_spawn", lambda self: _Worker(subprocess.Popen(
        ["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)))
    return Store(mtl_store)


def live_run(store: Store, owner: str | None, name: str) -> int:
    """A run training in a process of its own (this one: alive), as the CLI or a worker leaves it."""
    return store.create_run(CONFIG, status="running", name=name, pid=os.getpid(), owner=owner)


def page(name: str, query: dict[str, str] | None = None, at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(APP, default_timeout=60)
    at.query_params.clear()
    at.query_params.update(query or {})
    at.switch_page(f"pages/{name}.py").run()
    assert not at.exception, at.exception
    return at


def owner_of(at: AppTest) -> str:
    return at.session_state["identity.owner"]


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_another_persons_run_shows_no_enabled_stop_and_says_why(store):
    theirs = live_run(store, SOMEONE_ELSE, "theirs")
    at = page("train", {"run": str(theirs)})
    stop = button(at, "Stop")
    assert stop.disabled and stop.help == REFUSAL
    assert REFUSAL in [c.value for c in at.caption]
    assert not store.stop_requested(theirs)


def test_ones_own_run_can_be_stopped(store):
    at = page("home")
    mine = live_run(store, owner_of(at), "mine")
    page("train", {"run": str(mine)}, at)
    stop = button(at, "Stop")
    assert not stop.disabled
    stop.click().run()
    assert store.stop_requested(mine)
    assert REFUSAL not in [c.value for c in at.caption]


def test_stop_the_grid_stops_only_ones_own_runs_and_says_how_many_it_left(store):
    at = page("home")
    mine = live_run(store, owner_of(at), "mine")
    theirs = live_run(store, SOMEONE_ELSE, "theirs")
    cli = live_run(store, None, "a terminal's")
    page("compare", {"runs": f"{mine},{theirs},{cli}"}, at)
    button(at, "Stop the grid").click().run()
    assert not at.exception
    assert store.stop_requested(mine)
    assert not store.stop_requested(theirs) and not store.stop_requested(cli)
    assert ("Stopped 1 run and left 2 runs alone: they belong to someone else, and only the person "
            "who started them (or the lecturer) can stop them.") in [i.value for i in at.info]


def test_runs_opens_on_ones_own_newest_run_and_locks_others(store):
    at = page("home")
    mine = store.create_run(CONFIG, status="done", name="mine", owner=owner_of(at))
    theirs = store.create_run(CONFIG, status="done", name="theirs", owner=SOMEONE_ELSE)  # newer
    page("runs", at=at)
    selected = next(s for s in at.selectbox if s.key == "runs.selected")
    assert selected.value == mine
    assert not button(at, "Delete…").disabled
    selected.set_value(theirs).run()
    assert REFUSAL in [c.value for c in at.caption]
    assert button(at, "Delete…").disabled and button(at, "Delete…").help == REFUSAL
    assert next(t for t in at.text_input if t.label == "Name").disabled
    assert store.get_run(theirs).name == "theirs"


def test_runs_selects_nothing_when_none_are_ones_own(store):
    store.create_run(CONFIG, status="done", name="theirs", owner=SOMEONE_ELSE)
    at = page("runs")
    assert next(s for s in at.selectbox if s.key == "runs.selected").value is None
    assert not [b for b in at.button if b.label == "Delete…"]


def test_the_lecturer_key_in_the_sidebar_unlocks_every_run(store, monkeypatch):
    monkeypatch.setenv("MTL_LECTURER_KEY", "a long lecturer key")
    theirs = store.create_run(CONFIG, status="done", name="theirs", owner=SOMEONE_ELSE)
    at = page("runs")
    at.selectbox(key="runs.selected").set_value(theirs).run()
    assert button(at, "Delete…").disabled
    key = next(t for t in at.sidebar.text_input if t.label == "Lecturer key")
    key.input("wrong").run()
    assert "That is not the lecturer key: check it and press Enter again." in [c.value for c in at.sidebar.caption]
    next(t for t in at.sidebar.text_input if t.label == "Lecturer key").input("a long lecturer key").run()
    assert not at.exception
    assert not button(at, "Delete…").disabled
    assert "Lecturer: you may stop, rename and delete every run." in [c.value for c in at.sidebar.caption]
