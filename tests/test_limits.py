"""Per-session caps: how many runs one session may have queued or running, how many steps a run
may ask for; the job manager enforces them per owner, the pages say so in one sentence."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from mtl_core.config import RunConfig
from mtl_core.runs.jobs import JobManager
from mtl_core.runs.limits import LimitError, SessionLimits

SHORT = RunConfig(suite="synthetic", steps=20, eval_every=10)
LONG = RunConfig(suite="synthetic", steps=100_000, eval_every=50)


def test_the_caps_come_from_the_environment_and_a_bad_value_names_its_variable():
    assert SessionLimits.from_env({}) == SessionLimits(max_active=12, max_steps=200_000)
    assert SessionLimits.from_env({"MTL_MAX_QUEUED_PER_SESSION": "2", "MTL_MAX_STEPS": " 500 "}) \
        == SessionLimits(max_active=2, max_steps=500)
    for env, says in (({"MTL_MAX_STEPS": "lots"}, "$MTL_MAX_STEPS must be a whole number"),
                      ({"MTL_MAX_STEPS": "2000000"}, "$MTL_MAX_STEPS must be in [1, 1,000,000]"),
                      ({"MTL_MAX_QUEUED_PER_SESSION": "0"}, "$MTL_MAX_QUEUED_PER_SESSION must be in")):
        with pytest.raises(ValueError, match=says.replace("$", r"\$").replace("[", r"\[")):
            SessionLimits.from_env(env)


def test_a_cap_is_one_sentence_with_the_cap_and_what_to_do():
    limits = SessionLimits(max_active=3, max_steps=1000)
    limits.check([SHORT] * 3, active=0)  # exactly at the cap is allowed
    with pytest.raises(LimitError) as caught:
        limits.check([SHORT], active=3)
    message = str(caught.value)
    assert "at most 3 at once" in message and "wait for one to finish or stop one" in message
    assert message.count(".") == 1 and "\n" not in message  # one sentence
    with pytest.raises(LimitError, match=r"room for 1"):
        limits.check([SHORT] * 2, active=2)  # a grid is refused whole, saying how many fit
    with pytest.raises(LimitError, match=r"at most 1,000 steps \(this one asks for 100,000\)"):
        limits.check([LONG], active=0)


@pytest.mark.slow
def test_the_manager_counts_runs_per_owner_and_frees_room_when_they_end(tmp_path):
    jobs = JobManager(tmp_path / "mtl.db", max_concurrent=1, warm=False,
                      limits=SessionLimits(max_active=2, max_steps=100_000))
    try:
        first = jobs.submit(LONG, owner="alice")
        second = jobs.submit(LONG, owner="alice")
        before = len(jobs.store.run_infos())
        with pytest.raises(LimitError, match="at most 2 at once"):
            jobs.submit(SHORT, owner="alice")
        assert len(jobs.store.run_infos()) == before  # a refused run leaves nothing behind
        bob = jobs.submit(SHORT, owner="bob")  # the cap is per session
        no_owner = [jobs.submit(SHORT) for _ in range(3)]  # the command line is not capped
        assert jobs.active_of("alice") == [first, second] and jobs.active_of("bob") == [bob]
        with pytest.raises(LimitError, match="room for"):
            jobs.check_room([SHORT, SHORT], "bob")
        queued = len(jobs.store.run_infos())
        with pytest.raises(LimitError, match="room for"):
            jobs.submit_all([SHORT, SHORT], owner="bob")  # a grid is queued whole or not at all
        assert len(jobs.store.run_infos()) == queued
        jobs.check_room([SHORT] * 50, None)  # no owner, no caps

        jobs.stop(second)  # queued: stopped at once, and its room is free again
        third = jobs.submit(SHORT, owner="alice")
        assert jobs.active_of("alice") == [first, third]
        for run_id in (first, third, bob, *no_owner):
            jobs.stop(run_id)
        assert jobs.wait(first, timeout=30) == "stopped"
        # The store says "stopped" as the worker ends; the manager reaps it a moment later.
        deadline = time.monotonic() + 10
        while jobs.active_of("alice") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert jobs.active_of("alice") == [] and jobs._owners == {}  # nothing accumulates
    finally:
        jobs.shutdown()


def test_the_train_page_says_why_a_run_over_the_step_cap_cannot_start(mtl_store, monkeypatch):
    monkeypatch.setenv("MTL_MAX_STEPS", "1000")
    at = AppTest.from_file("../app.py", default_timeout=60).switch_page("pages/train.py")
    for key, value in SHORT.model_copy(update={"steps": 5000}).to_query().items():
        at.query_params[key] = value
    at.run()
    next(b for b in at.button if b.label == "Train").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Could not start the run: A run here may train at most 1,000 steps (this one asks for "
        "5,000): lower Steps, or run it from a terminal with `python -m mtl_core run`."]
    assert "run" not in at.query_params  # no run was made
