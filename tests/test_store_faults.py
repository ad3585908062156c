"""Store faults end in truth (issue 16): a lock waited out or ended in a sentence, a read-only,
deleted or missing store said in one sentence, and no run left ``running`` or ``queued`` without a
live process — whatever the reader (the store's calls, ``python -m mtl_core list --json``).

Running as root makes ``chmod`` powerless, so a read-only store is simulated there the way SQLite
would see one: every new connection gets ``PRAGMA query_only`` (the same "attempt to write a
readonly database" error)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mtl_core.config import RunConfig
from mtl_core.engine.records import StepRecord
from mtl_core.runs import store as store_module
from mtl_core.runs.store import Store, StoreError, gone_message, pid_alive
from mtl_core.runs.worker import execute_run

ROOT = Path(__file__).resolve().parent.parent
CONFIG = RunConfig(suite="synthetic", steps=3, eval_every=2, probe_every=2)
TRAINABLE = RunConfig(suite="synthetic", suite_params={"train_size": 1000}, steps=40, eval_every=10,
                      probe_every=5, batch_size=64, device="cpu")


def record(step: int) -> StepRecord:
    return StepRecord(step=step, time_s=step / 100, loss={"y1": 1.0, "y2": 2.0}, weight={"y1": 1.0, "y2": 1.0})


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(done.stdout)
    assert not pid_alive(pid)
    return pid


class HeldLock:
    """Another program's connection holding the store's write lock until ``release``."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()


def make_read_only(path: Path, monkeypatch) -> None:
    """The store's file and folder read-only for this process (chmod; query_only when root)."""
    if os.geteuid() != 0:
        path.chmod(stat.S_IRUSR | stat.S_IRGRP)
        path.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
        return
    connect = store_module._connect

    def read_only_connect(where, mode):
        conn = connect(where, mode)
        conn.execute("PRAGMA query_only=1")
        return conn

    monkeypatch.setattr(store_module, "_connect", read_only_connect)


@pytest.fixture
def restore_modes(tmp_path):
    yield
    for folder in [tmp_path, *tmp_path.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o755)


# --- locks ---------------------------------------------------------------------------------------

def test_a_lock_held_past_the_busy_timeout_is_waited_out_and_the_write_lands(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "_BUSY_TIMEOUT_S", 0.1)  # SQLite's own wait, per attempt
    store = Store(tmp_path / "mtl.db", lock_wait_s=30)
    run_id = store.create_run(CONFIG)
    lock = HeldLock(store.path)
    threading.Timer(1.0, lock.release).start()  # ten busy timeouts later
    store.append(run_id, [record(1), record(2)])  # retried with back-off until the lock went
    assert store.last_step(run_id) == 2 and len(store.scalars(run_id)) == 10


def test_a_lock_held_past_the_wait_ends_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "_BUSY_TIMEOUT_S", 0.1)
    store = Store(tmp_path / "mtl.db", lock_wait_s=0.5)
    run_id = store.create_run(CONFIG)
    lock = HeldLock(store.path)
    try:
        with pytest.raises(StoreError) as caught:
            store.set_status(run_id, "running")
        assert caught.value.kind == "locked"
        assert str(caught.value).startswith(f"The run store at {store.path} stayed locked by another program")
        assert "\n" not in str(caught.value)
        assert store.get_run(run_id).status == "queued"  # reads go on in WAL mode
    finally:
        lock.release()
    store.set_status(run_id, "running")  # and once it is gone, writes work again
    assert store.get_run(run_id).status == "running"


def test_the_lock_wait_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_STORE_LOCK_WAIT_S", "7.5")
    assert Store(tmp_path / "mtl.db").lock_wait_s == 7.5
    monkeypatch.setenv("MTL_STORE_LOCK_WAIT_S", "soon")
    with pytest.raises(StoreError, match="MTL_STORE_LOCK_WAIT_S must be a number of seconds"):
        Store(tmp_path / "mtl.db")


# --- missing, read-only, deleted -----------------------------------------------------------------

def test_create_false_makes_nothing_on_disk_and_says_so(tmp_path):
    where = tmp_path / "no" / "such" / "mtl.db"
    with pytest.raises(StoreError) as caught:
        Store(where, create=False)
    assert str(caught.value) == f"There is no run store at {where}." and caught.value.kind == "missing"
    assert not (tmp_path / "no").exists()
    Store(tmp_path / "mtl.db")
    assert Store(tmp_path / "mtl.db", create=False).list_runs().empty


def test_a_read_only_store_refuses_at_open_in_one_sentence_but_a_reader_may_read_it(
        tmp_path, monkeypatch, restore_modes):
    path = tmp_path / "runs" / "mtl.db"
    run_id = Store(path).create_run(CONFIG, status="done")
    make_read_only(path, monkeypatch)
    with pytest.raises(StoreError) as caught:
        Store(path)
    assert caught.value.kind == "read-only"
    assert str(caught.value).startswith(f"The run store at {path} is read-only, so no run can be recorded")
    reader = Store(path, create=False)  # `list` and `export` still read it
    assert reader.read_only and reader.get_run(run_id).status == "done"
    with pytest.raises(StoreError, match="is read-only"):
        reader.check()
    with pytest.raises(StoreError, match="is read-only"):
        reader.rename(run_id, "renamed")


def test_a_store_that_turns_read_only_mid_run_ends_the_run_failed_with_the_sentence(tmp_path):
    store = Store(tmp_path / "mtl.db")
    # Long enough that a batched write (every 0.2 s) falls well before its end on any machine.
    config = TRAINABLE.model_copy(update={"steps": 5_000})
    run_id = store.create_run(config)

    def turn_read_only(step_record: StepRecord) -> None:
        if step_record.step == 5:  # the run's own connection can no longer write, as after a chmod
            store._conn().execute("PRAGMA query_only=1")

    outcome = execute_run(store, run_id, stop=threading.Event(), on_record=turn_read_only)
    assert outcome.status == "failed" and not outcome.recorded
    assert outcome.message.startswith(f"The run store at {store.path} is read-only")
    assert outcome.steps < config.steps  # it ended at the first write that failed


def test_a_deleted_store_is_said_in_one_sentence_and_never_made_anew(tmp_path):
    path = tmp_path / "mtl.db"
    store = Store(path)
    run_id = store.create_run(CONFIG)
    for file in tmp_path.glob("mtl.db*"):
        file.unlink()
    for read in (lambda: store.get_run(run_id), store.list_runs, lambda: store.append(run_id, [record(1)])):
        with pytest.raises(StoreError) as caught:
            read()
        assert caught.value.kind == "vanished"
        assert str(caught.value).startswith(f"The run store at {path} was deleted or replaced while in use")
    other_thread: list[BaseException] = []
    thread = threading.Thread(target=lambda: other_thread.append(pytest.raises(StoreError, store.run_infos).value))
    thread.start()
    thread.join()
    assert other_thread[0].kind == "vanished"
    assert not path.exists()  # a new thread's connection did not create an empty store in its place


def test_a_store_replaced_by_another_file_is_not_taken_for_it(tmp_path):
    path = tmp_path / "mtl.db"
    store = Store(path)
    store.create_run(CONFIG)
    path.unlink()
    Store(path)  # a new, empty store at the same path (another app started on it)
    with pytest.raises(StoreError, match="was deleted or replaced while in use"):
        store.run_infos()


# --- no live run without a live process ------------------------------------------------------------

def test_a_live_run_whose_process_is_gone_reads_back_interrupted_everywhere(tmp_path):
    store = Store(tmp_path / "mtl.db")
    gone = dead_pid()
    running = store.create_run(CONFIG, status="running", pid=gone)
    store.append(running, [record(1), record(2)])
    queued = store.create_run(CONFIG, status="queued", pid=gone)
    alive = store.create_run(CONFIG, status="running")  # this process: alive
    # Another program holds the write lock: readers say the truth without waiting to write it.
    lock = HeldLock(store.path)
    try:
        info = store.get_run(running)
        assert info.status == "interrupted" and info.message == gone_message(2) == (
            "interrupted: the process running it is gone; the 2 steps recorded are kept")
        assert {i.id: i.status for i in store.run_infos()} == {
            running: "interrupted", queued: "interrupted", alive: "running"}
        assert [i.id for i in store.run_infos(["running", "queued"])] == [alive]
        table = store.list_runs().set_index("id")
        assert table.loc[running, "status"] == table.loc[queued, "status"] == "interrupted"
        assert table.loc[alive, "status"] == "running"
        assert store.runs_with_config(CONFIG, statuses=("queued", "running")) == [alive]
    finally:
        lock.release()
    store.run_infos()  # now the store takes it: written back
    raw = sqlite3.connect(store.path).execute("SELECT id, status FROM runs ORDER BY id").fetchall()
    assert raw == [(running, "interrupted"), (queued, "interrupted"), (alive, "running")]
    # Whoever knows how it ended still says so (the job manager recording a worker's last words).
    assert store.finish_if_live(running, "failed", message="the worker said why")
    assert store.get_run(running).message == "the worker said why"


def test_the_cli_list_shows_runs_of_killed_processes_interrupted(tmp_path):
    store = Store(tmp_path / "mtl.db")
    killed = store.create_run(CONFIG, status="running", pid=dead_pid())
    listed = subprocess.run([sys.executable, "-m", "mtl_core", "list", "--json", "--store", str(store.path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert rows[killed]["status"] == "interrupted"
    assert rows[killed]["message"] == gone_message(0)


def test_a_stop_of_a_run_nobody_runs_ends_it_stopped(tmp_path):
    store = Store(tmp_path / "mtl.db")
    run_id = store.create_run(CONFIG, status="running", pid=dead_pid())
    assert store.get_run(run_id).status == "interrupted"  # a reader presumed it first
    store.request_stop(run_id)
    info = store.get_run(run_id)
    assert info.status == "stopped" and "no process" in info.message


# --- the pages ---------------------------------------------------------------------------------------

PAGES = ("pages/train.py", "pages/runs.py", "pages/compare.py", "pages/affinity.py")


def page(name: str):
    from streamlit.testing.v1 import AppTest  # only these tests need streamlit's test harness

    at = AppTest.from_file("../app.py", default_timeout=60)
    at.switch_page(name).run()
    return at


def test_the_app_started_on_a_read_only_store_says_so_on_train(mtl_store, monkeypatch, restore_modes):
    Store(mtl_store).create_run(CONFIG, status="done")
    make_read_only(mtl_store, monkeypatch)
    at = page("pages/train.py")
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"The run store at {mtl_store} is read-only, so no run can be recorded: make the file and its "
        f"folder writable (or set MTL_STORE to another path) and restart."]


@pytest.mark.parametrize("name", PAGES)
def test_a_store_deleted_while_the_app_runs_is_one_sentence_on_every_page(mtl_store, name):
    store = Store(mtl_store)
    store.create_run(CONFIG, status="running")  # live: this process
    assert not page(name).exception  # the app has opened the store
    for file in mtl_store.parent.glob("mtl.db*"):
        file.unlink()
    at = page(name)
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith(
        f"The run store at {mtl_store} was deleted or replaced while in use")
    assert not mtl_store.exists()  # not silently made anew, empty


@pytest.mark.slow  # trains in worker processes
def test_a_worker_locked_out_ends_its_run_failed_and_the_manager_goes_on(tmp_path, monkeypatch):
    from mtl_core.runs.jobs import JobManager  # only this test starts workers

    monkeypatch.setenv("MTL_STORE_LOCK_WAIT_S", "1")  # the workers inherit it
    jobs = JobManager(tmp_path / "mtl.db", max_concurrent=1, warm=False)
    try:
        long_run = jobs.submit(RunConfig(suite="synthetic", steps=1_000_000, eval_every=50, probe_every=10))
        deadline = time.monotonic() + 120
        while jobs.store.last_step(long_run) < 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        lock = HeldLock(jobs.store.path)
        while jobs.worker_pid(long_run) is not None:  # the worker gave up and exited; reaped at once
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Locked: the manager could not write the ending; readers do not show a live run.
        assert jobs.store.get_run(long_run).status == "interrupted"
        lock.release()
        # The manager's next tick writes its kept ending over the readers' presumption.
        while jobs.store.get_run(long_run).status != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = jobs.store.get_run(long_run)
        assert info.status == "failed" and "stayed locked by another program" in info.message
        after = jobs.submit(TRAINABLE)  # and it goes on scheduling
        assert jobs.wait(after, timeout=120) == "done"
    finally:
        jobs.shutdown()
