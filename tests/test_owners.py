"""Run ownership: signed browser identities, the lecturer key, who may manage which run, and the
job manager's own check (a page's mistake cannot stop another person's run), its fair dispatch
across owners and its server-wide queue cap."""

from __future__ import annotations

import stat
import subprocess
import time

import pytest

from mtl_core.config import RunConfig
from mtl_core.runs import jobs as jobs_module
from mtl_core.runs.jobs import JobManager, _Worker
from mtl_core.runs.limits import LimitError, SessionLimits
from mtl_core.runs.owners import (
    REFUSAL,
    Actor,
    Identities,
    OwnershipError,
    load_secret,
    may_manage,
    secret_path,
)

SECRET = b"s" * 32
CONFIG = RunConfig.parse({"suite": "synthetic", "steps": 10, "device": "cpu"})


# --- tokens -----------------------------------------------------------------------------------------

def test_an_issued_token_verifies_to_its_owner_and_each_browser_gets_another():
    ids = Identities(SECRET)
    first, second = ids.issue_token(), ids.issue_token()
    assert ids.verify(first) == first.split(".")[0]
    assert ids.verify(second) == second.split(".")[0]
    assert ids.verify(first) != ids.verify(second)
    assert len(first) <= 80 and all(c.isalnum() or c in "-_." for c in first)  # cookie-safe


def test_an_edited_cookie_is_no_identity_at_all():
    ids = Identities(SECRET)
    alice, bob = ids.issue_token(), ids.issue_token()
    alice_id, alice_sig = alice.split(".")
    bob_id, _ = bob.split(".")
    assert ids.verify(f"{bob_id}.{alice_sig}") is None  # claim Bob's id with Alice's signature
    flipped = alice_sig[:-1] + ("A" if alice_sig[-1] != "A" else "B")
    assert ids.verify(f"{alice_id}.{flipped}") is None
    assert ids.verify(alice_id) is None  # the id alone
    assert Identities(b"t" * 32).verify(alice) is None  # another server's secret


@pytest.mark.parametrize("garbage", [None, 123, b"abc.def", "", ".", "a.b", "x" * 5000,
                                     "é" * 22 + "." + "a" * 43, "a" * 22 + "." + "a" * 43 + "\n",
                                     "a" * 22 + ".." + "a" * 43, "a" * 129])
def test_garbage_verifies_to_none(garbage):
    assert Identities(SECRET).verify(garbage) is None


def test_the_lecturer_token_is_bound_to_its_browser_and_to_the_key():
    ids = Identities(SECRET, lecturer_key="open sesame")
    alice, bob = ids.verify(ids.issue_token()), ids.verify(ids.issue_token())
    token = ids.lecturer_token(alice)
    assert ids.verify_lecturer(token, alice)
    assert not ids.verify_lecturer(token, bob)  # a copied lecturer cookie without its owner
    assert not Identities(SECRET, lecturer_key="new key").verify_lecturer(token, alice)  # key changed
    assert not Identities(SECRET).verify_lecturer(token, alice)  # no lecturer any more
    owner_token = ids.issue_token()
    assert not ids.verify_lecturer(owner_token.split(".")[1], owner_token.split(".")[0])
    assert ids.verify(f"{alice}.{token}") is None  # a lecturer token is no owner token


def test_the_lecturer_key_is_checked_exactly_and_absent_without_the_variable():
    ids = Identities(SECRET, lecturer_key="open sesame")
    assert ids.has_lecturer and ids.check_lecturer_key("open sesame")
    for wrong in ["open sesame ", "OPEN SESAME", "", None, "x" * 10_000]:
        assert not ids.check_lecturer_key(wrong)
    nobody = Identities(SECRET)
    assert not nobody.has_lecturer and not nobody.check_lecturer_key("")
    with pytest.raises(ValueError):
        nobody.lecturer_token("someone")


def test_the_secret_file_is_private_and_survives_a_restart(tmp_path, monkeypatch):
    monkeypatch.delenv("MTL_SECRET", raising=False)
    store = tmp_path / "class" / "mtl.db"
    first = load_secret(store)
    path = secret_path(store)
    assert path == tmp_path / "class" / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(store) == first and len(first) >= 32
    token = Identities(first).issue_token()
    assert Identities(load_secret(store)).verify(token) is not None  # a restarted server knows it
    monkeypatch.setenv("MTL_SECRET", "x" * 40)
    assert load_secret(store) == b"x" * 40


# --- who may manage -------------------------------------------------------------------------------

@pytest.mark.parametrize(("actor", "run_owner", "allowed"), [
    (Actor("alice"), "alice", True),
    (Actor("alice"), "bob", False),
    (Actor("alice"), None, False),  # a command-line run
    (Actor(None), None, False),
    (Actor(None), "alice", False),
    (Actor("alice", lecturer=True), "bob", True),
    (Actor("alice", lecturer=True), None, True),
])
def test_may_manage(actor, run_owner, allowed):
    assert may_manage(actor, run_owner) is allowed


def test_the_refusal_is_one_sentence():
    assert REFUSAL.count(". ") == 0 and REFUSAL.endswith(".")
    assert str(OwnershipError()) == REFUSAL and issubclass(OwnershipError, PermissionError)


# --- the job manager --------------------------------------------------------------------------------

@pytest.fixture
def manager(tmp_path, monkeypatch):
    """A manager whose 'workers' are `cat` processes: they take a run and never train it, so a
    test decides when each ends (by killing it) without torch."""
    monkeypatch.setenv("MTL_MAX_QUEUED", "4")

    def fake_spawn(self) -> _Worker:
        return _Worker(subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        text=True))

    monkeypatch.setattr(JobManager, "_spawn", fake_spawn)
    made = JobManager(tmp_path / "mtl.db", max_concurrent=1, warm=False,
                      limits=SessionLimits(max_active=3, max_steps=1000))
    yield made
    made.shutdown()


def running(manager: JobManager) -> list[int]:
    with manager._lock:
        return list(manager._running)


def end_running_run(manager: JobManager) -> int:
    """Kill the fake worker of the running run; returns the run that starts next."""
    (run_id,) = running(manager)
    manager._running[run_id].process.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = running(manager)
        if now and now != [run_id]:
            return now[0]
        time.sleep(0.01)
    raise AssertionError("the next run did not start")


def test_stop_by_someone_else_raises_and_the_run_keeps_training(manager):
    alice_running = manager.submit(CONFIG, owner="alice")
    alice_queued = manager.submit(CONFIG, owner="alice")
    for run_id in (alice_running, alice_queued):
        with pytest.raises(OwnershipError, match="belongs to someone else"):
            manager.stop(run_id, by=Actor("bob"))
    assert manager.active() == [alice_running, alice_queued]
    assert not manager.store.stop_requested(alice_running)
    assert manager.store.get_run(alice_queued).status == "queued"

    manager.stop(alice_queued, by=Actor("alice"))  # the owner may
    assert manager.store.get_run(alice_queued).status == "stopped"
    manager.stop(alice_running, by=Actor("bob", lecturer=True))  # and the lecturer
    assert manager.store.stop_requested(alice_running)


def test_a_command_line_run_is_stopped_only_by_the_lecturer_or_a_trusted_caller(manager):
    cli_run = manager.submit(CONFIG)  # no owner: a terminal's run
    with pytest.raises(OwnershipError):
        manager.stop(cli_run, by=Actor("alice"))
    assert not manager.store.stop_requested(cli_run)
    manager.stop(cli_run)  # by=None: the command line itself, or a test
    assert manager.store.stop_requested(cli_run)


def test_dispatch_takes_turns_across_owners(manager, monkeypatch):
    monkeypatch.setattr(jobs_module, "DEFAULT_MAX_QUEUED", 10)
    manager.max_queued = 10
    a1, a2, a3 = (manager.submit(CONFIG, owner="alice") for _ in range(3))
    b1, b2 = (manager.submit(CONFIG, owner="bob") for _ in range(2))
    (c1,) = [manager.submit(CONFIG, owner="carol")]
    assert running(manager) == [a1]
    order = [a1] + [end_running_run(manager) for _ in range(5)]
    # Bob and Carol do not wait for all of Alice's runs; each owner's own runs keep their order.
    assert order == [a1, b1, c1, a2, b2, a3]


def test_the_server_wide_queue_cap_refuses_in_one_sentence(manager):
    manager.submit(CONFIG, owner="alice")  # trains
    for owner in ("bob", "carol", "dave", "erin"):
        manager.submit(CONFIG, owner=owner)  # four wait: the cap (MTL_MAX_QUEUED=4)
    with pytest.raises(LimitError) as refused:
        manager.submit(CONFIG, owner="frank")
    assert str(refused.value) == "The server's queue is full (4 runs waiting): try again in a few minutes."
    assert len(manager.active()) == 5
    manager.submit(CONFIG)  # the command line is not capped


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", "²"])
def test_a_bad_queue_cap_stops_the_manager_at_start(tmp_path, monkeypatch, value):
    monkeypatch.setenv("MTL_MAX_QUEUED", value)
    with pytest.raises(ValueError, match="MTL_MAX_QUEUED"):
        JobManager(tmp_path / "mtl.db", warm=False)
