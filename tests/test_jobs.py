"""The job manager with real worker processes: runs end to end, queue, stop, fail, survive."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from mtl_core.config import RunConfig
from mtl_core.engine.devices import default_threads
from mtl_core.runs.jobs import JobManager, estimate_wait, seconds_per_step
from mtl_core.runs.store import TERMINAL, Store, pid_alive
from mtl_core.runs.worker import execute_run

pytestmark = pytest.mark.slow  # every test here starts worker processes (torch's import each)

TINY = RunConfig(suite="synthetic", steps=30, eval_every=10, probe_every=5)
LONG = RunConfig(suite="synthetic", steps=1_000_000, eval_every=50, probe_every=10)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shared_manager(tmp_path_factory):
    """One manager for the module (as the app has one per server), with a warm worker."""
    jobs = JobManager(tmp_path_factory.mktemp("jobs") / "mtl.db", max_concurrent=1, warm=True)
    yield jobs
    jobs.shutdown()


@pytest.fixture
def manager(shared_manager):
    """The shared manager, idle again after the test whatever the test left running."""
    yield shared_manager
    for run_id in shared_manager.active():
        shared_manager.stop(run_id)
    wait_until(lambda: shared_manager.active() == [], timeout=15)


def wait_until(condition, timeout: float = 30.0, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        time.sleep(every)


def test_a_run_trains_in_a_warm_worker_and_lands_in_the_store(manager, tmp_path):
    store = manager.store
    assert manager.wait_for_warm_worker(timeout=60)
    submitted = time.monotonic()
    run_id = manager.submit(TINY, name="tiny")
    wait_until(lambda: store.last_step(run_id) > 0)
    first_record_s = time.monotonic() - submitted
    assert manager.wait(run_id, timeout=60) == "done"
    info = store.get_run(run_id)
    assert info.name == "tiny" and info.message is None
    assert info.device == f"cpu, {default_threads()} thread" + ("s" if default_threads() > 1 else "")
    assert info.steps_done == TINY.steps == store.last_step(run_id)
    assert info.pid is not None and info.pid != os.getpid()
    assert info.created_at <= info.started_at <= info.finished_at
    losses = store.scalars(run_id, split="train", metric="loss")
    assert losses["step"].tolist() == [s for s in range(1, 31) for _ in range(2)]
    assert set(store.final_metrics(run_id)) == {"y1", "y2"}
    assert store.matrices(run_id, name="cosine")["step"].tolist() == [1, 5, 10, 15, 20, 25, 30]
    # The warm worker had torch imported already: the first point of the curves comes well
    # within the ~3 s a cold worker spends on its imports.
    assert first_record_s < 1.5, first_record_s

    # With the same number of torch threads, the worker computes exactly what the command line
    # computes in-process.
    local = Store(tmp_path / "local.db")
    local_run = local.create_run(TINY)
    threads = torch.get_num_threads()
    torch.set_num_threads(default_threads())
    try:
        outcome = execute_run(local, local_run, stop=threading.Event())
    finally:
        torch.set_num_threads(threads)
    assert outcome.status == "done" and outcome.steps == TINY.steps
    ours, theirs = store.scalars(run_id), local.scalars(local_run)
    ours, theirs = ours[ours.metric != "time_s"], theirs[theirs.metric != "time_s"]
    assert ours.reset_index(drop=True).equals(theirs.reset_index(drop=True))


def test_runs_queue_and_stop_ends_a_running_run_within_a_second(manager):
    store = manager.store
    first = manager.submit(LONG)
    second = manager.submit(TINY)
    third = manager.submit(TINY)
    assert store.get_run(second).status == store.get_run(third).status == "queued"
    assert manager.active() == [first, second, third]

    manager.stop(third)  # a queued run stops at once, without ever starting
    info = store.get_run(third)
    assert info.status == "stopped" and info.message == "stopped before it started"
    assert manager.active() == [first, second]

    wait_until(lambda: store.last_step(first) >= 20)
    assert store.get_run(second).status == "queued" and store.last_step(second) == 0
    called = time.monotonic()
    manager.stop(first)
    returned_s = time.monotonic() - called
    assert manager.wait(first, timeout=10) == "stopped"
    ended_s = time.monotonic() - called
    assert returned_s < 0.1 and ended_s < 1.0, (returned_s, ended_s)
    info = store.get_run(first)
    assert "stopped by the user" in info.message and info.steps_done >= 20
    assert store.scalars(first, metric="loss")["step"].max() == info.steps_done  # records kept

    assert manager.wait(second, timeout=60) == "done"  # the freed slot goes to the queue
    assert store.get_run(second).started_at >= info.finished_at
    assert store.scalars(third).empty and store.get_run(third).started_at is None


def test_failed_and_killed_runs_are_recorded_and_the_manager_goes_on(manager):
    store = manager.store
    absent = "mps" if torch.cuda.is_available() else "cuda"  # a device this machine lacks
    bad = manager.submit(TINY.model_copy(update={"device": absent}))
    assert manager.wait(bad, timeout=60) == "failed"
    message = store.get_run(bad).message
    assert f"device '{absent}' was asked for" in message
    assert "\n" not in message and "Traceback" not in message

    killed = manager.submit(LONG)  # the manager goes on after a failure ...
    wait_until(lambda: store.last_step(killed) >= 5)
    os.kill(manager.worker_pid(killed), signal.SIGKILL)
    assert manager.wait(killed, timeout=10) == "failed"
    assert store.get_run(killed).message == "the worker process was killed by signal 9"
    assert store.last_step(killed) >= 5  # what it wrote is kept
    wait_until(lambda: manager.active() == [], timeout=5)  # ... and after a dead worker


def test_a_worker_that_ignores_stop_gets_sigterm_then_sigkill(manager, monkeypatch):
    monkeypatch.setattr(manager, "term_after_s", 0.3)
    monkeypatch.setattr(manager, "kill_after_s", 0.6)
    store = manager.store
    run_id = manager.submit(LONG)
    wait_until(lambda: store.last_step(run_id) >= 5)
    os.kill(manager.worker_pid(run_id), signal.SIGSTOP)  # frozen: it can obey neither line nor SIGTERM
    called = time.monotonic()
    manager.stop(run_id)
    assert manager.wait(run_id, timeout=10) == "stopped"
    assert 0.6 <= time.monotonic() - called < 3.0
    info = store.get_run(run_id)
    assert "did not respond" in info.message and info.steps_done >= 5


def test_stop_of_a_run_nobody_runs_any_more_ends_it_at_once(manager):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    orphan = manager.store.create_run(TINY, status="running", pid=int(gone.stdout))
    manager.stop(orphan)
    info = manager.store.get_run(orphan)
    assert info.status == "stopped" and "no process" in info.message


def test_shutdown_interrupts_running_and_queued_runs_and_reaps_the_workers(tmp_path):
    jobs = JobManager(tmp_path / "mtl.db", max_concurrent=1, warm=False)
    running, queued = jobs.submit(LONG), jobs.submit(TINY)
    wait_until(lambda: jobs.store.last_step(running) > 0)
    pid = jobs.worker_pid(running)
    jobs.shutdown()
    assert not pid_alive(pid)
    assert jobs.store.get_run(running).status == "interrupted"
    assert jobs.store.get_run(queued).status == "interrupted"
    assert jobs.store.last_step(running) > 0
    with pytest.raises(RuntimeError, match="shut down"):
        jobs.submit(TINY)
    jobs.shutdown()  # twice is fine


OWNER = textwrap.dedent("""
    import sys, time
    from mtl_core.config import RunConfig
    from mtl_core.runs.jobs import JobManager, estimate_wait, seconds_per_step
    jobs = JobManager(sys.argv[1], warm=False)
    run_id = jobs.submit(RunConfig(suite="synthetic", steps=1_000_000, eval_every=50))
    while jobs.store.last_step(run_id) < 5:
        time.sleep(0.01)
    print(run_id, jobs.worker_pid(run_id), flush=True)
    time.sleep(600)
""")


def test_when_the_server_is_killed_its_worker_stops_and_the_run_is_interrupted(tmp_path):
    path = tmp_path / "mtl.db"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(path)], stdout=subprocess.PIPE,
                             text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        run_id, worker_pid = map(int, owner.stdout.readline().split())
        os.kill(owner.pid, signal.SIGKILL)  # no atexit, no clean-up: only the closed pipe
        owner.wait(timeout=10)
        wait_until(lambda: not pid_alive(worker_pid), timeout=10)
    finally:
        if owner.poll() is None:
            owner.kill()
    store = Store(path)
    jobs = JobManager(path, warm=False)  # a restarted server recovers what the dead one left
    jobs.shutdown()
    info = store.get_run(run_id)
    assert info.status == "interrupted" and "interrupted" in info.message
    assert info.status in TERMINAL and info.steps_done >= 5
    assert store.scalars(run_id, metric="loss")["step"].max() == info.steps_done
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)



def test_the_wait_hands_the_runs_ahead_to_the_slot_that_frees_first():
    assert estimate_wait([], [], slots=1) == 0.0  # nothing ahead, a slot is free
    assert estimate_wait([30.0], [], slots=2) == 0.0  # the second slot is free
    assert estimate_wait([30.0], [100.0], slots=1) == 130.0
    # the slots free at 10 and 30: the first run ahead takes 10 (to 110), the second 30 (to 35)
    assert estimate_wait([30.0, 10.0], [100.0, 5.0], slots=2) == 35.0
    assert estimate_wait([30.0], [None], slots=1) is None  # a run ahead of unknown speed


def test_a_queued_run_knows_its_place_and_its_wait_behind_two_runs(manager):
    """Two runs ahead: one training (its remaining steps at its measured speed) and one queued
    of the same set-up (its steps at that speed); the wait is their sum, on one slot."""
    store = manager.store
    running = manager.submit(LONG)
    queued_first = manager.submit(LONG.model_copy(update={"seed": 1, "steps": 4000}))
    last = manager.submit(TINY)
    wait_until(lambda: store.last_step(running) >= 20, timeout=90)  # a cold worker on a busy CPU

    assert manager.queue_place(running) is None  # training, not waiting
    first_place = manager.queue_place(queued_first)
    assert (first_place.position, first_place.ahead) == (1, (running,))
    place = manager.queue_place(last)
    assert (place.position, place.ahead) == (2, (running, queued_first))

    info = store.get_run(running)
    rate = seconds_per_step(store, running, info.steps_done)
    assert rate is not None and 0 < rate < 1
    # One measure answers every queued run (the two places above come from the same one).
    expected = (LONG.steps - info.steps_done) * rate + 4000 * rate
    assert place.wait_s == pytest.approx(expected, rel=0.05)
    assert first_place.wait_s == pytest.approx((LONG.steps - info.steps_done) * rate, rel=0.05)
    assert place.wait_s > first_place.wait_s

    manager.stop(running)  # the next run moves up
    wait_until(lambda: manager.queue_place(last) is not None and manager.queue_place(last).position == 1,
               timeout=15)
    assert manager.queue_place(last).ahead == (queued_first,)
