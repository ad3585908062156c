"""The server SIGKILLed mid-run, end to end: the app is served (``streamlit run app.py``), two
sessions start a run and queue another, the server is killed with ``kill -9`` (no atexit, no
clean-up), and the app is served again on the same store.

The other faults (a run that raises, a diverging run, a tab closed mid-run, Stop under load) are
checked under load by tests/test_load.py, in benchmarks/load.py's classroom scenario."""

from __future__ import annotations

import pytest

from benchmarks.load import kill_and_restart

pytestmark = pytest.mark.slow  # serves the app twice and trains in worker processes


def test_the_server_killed_mid_run_leaves_interrupted_runs_their_records_and_a_sound_store(tmp_path):
    result = kill_and_restart(tmp_path / "mtl.db")
    running, queued = result.run_ids
    # The workers saw their pipe close and stopped: nothing keeps writing to the store.
    assert result.workers_gone_s < 15, result.workers_gone_s
    assert result.statuses == {running: "interrupted", queued: "interrupted"}
    assert result.steps_before[running] >= 20
    # Every step recorded before the kill is still there, and the curves end where the run did.
    assert result.steps_after[running] >= result.steps_before[running]
    assert result.last_scalar_step[running] == result.steps_after[running]
    assert result.steps_after[queued] == 0  # it never started
    assert result.integrity == "ok"
    assert result.shown == "interrupted"  # the restarted app shows it so
    assert result.after_restart == "done"  # and trains again
