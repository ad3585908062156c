"""A classroom as a load test: N people on one served app press Train together, and some of them
close their tab, stop a run, ask for too much, break a run, make one diverge; then the server is
killed with runs going and started again.

What is measured, exactly: the app is served for real (``streamlit run app.py``, its job manager,
worker processes, SQLite store). Each person is a :class:`~benchmarks.ws_session.WsSession`: a
session speaking Streamlit's websocket protocol from this process, so the *server* does all of a
real tab's work (page runs, live-fragment polls at the interval the server asks for, every chart
serialised and sent) while no browser draws (drawing happens on the students' machines, not the
server's). An update's time runs from the request to the server's ``script_finished``; the p95 is
over every update of every session during the load. Peak memory is the summed RSS of the server
and all its worker processes, sampled every 0.1 s from /proc.

Beside the honest people, hostile sessions (:func:`hostile_visits`) do what a student who wants the
machine would: open the heavy Train and Gradient lab links of issue 16, reconnect again and again
with one identity pressing Train each time (a reload storm), and press Stop on other people's runs
and "Stop the grid" over them on Compare. The honest runs must all finish as their people expect.

Prints: sessions held, runs completed / lost, p95 (and median, max) update time, peak RSS, the
fault cases survived and what the hostile sessions got.
Run: python -m benchmarks.load [--sessions 30] [--steps 60] [--max-runs 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import torch

from benchmarks.served_app import served_app
from benchmarks.ws_session import WsSession
from mtl_core.config import RunConfig
from mtl_core.runs.owners import Identities
from mtl_core.runs.store import LIVE, TERMINAL, Store, pid_alive

ABSENT_DEVICE = "mps" if torch.cuda.is_available() else "cuda"  # a device this machine lacks
CAP = 3  # runs queued or running per session while the load runs (MTL_MAX_QUEUED_PER_SESSION)
# Closed tabs' sessions go after 2 s instead of Streamlit's 120 s (measured: ~0.75 MiB each).
SHORT_SESSION_TTL = {"STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "2"}


# --- processes and their memory (no psutil: /proc) ---------------------------------------------

def children(pid: int) -> list[int]:
    """Every living descendant of ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent:
                found.append(child)
                frontier.append(child)
    return found


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(url: str) -> int:
    """The pid of the ``streamlit run`` serving ``url`` (found by its port in /proc)."""
    port = url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                args = (entry / "cmdline").read_bytes().split(b"\0")
                if b"streamlit" in b" ".join(args) and port.encode() in args:
                    return int(entry.name)
    raise RuntimeError(f"no streamlit process serves port {port}")


class PeakRss(threading.Thread):
    """Samples the summed RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        super().__init__(daemon=True, name="peak-rss")
        self.pid, self.every = pid, every
        self.peak_kib = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak_kib = max(self.peak_kib, rss_kib([self.pid, *children(self.pid)]))
            self._done.wait(self.every)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak_kib


@dataclass
class Server:
    url: str
    pid: int
    store: Store


@contextlib.contextmanager
def serve(store_path: Path, *, max_runs: int = 1, cap: int | None = None,
          extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    env = {**os.environ, "MTL_MAX_RUNS": str(max_runs), **(extra_env or {})}
    if cap is not None:
        env["MTL_MAX_QUEUED_PER_SESSION"] = str(cap)
    with served_app(store_path, store_path.with_suffix(".log"), env=env, start_timeout=60) as url:
        yield Server(url, server_pid(url), Store(store_path))


# --- one person -------------------------------------------------------------------------------------

@dataclass
class Person:
    """What one session does, and what it saw."""

    config: RunConfig
    trains: int = 1  # presses of Train (more than CAP: the last ones are refused; 0: only reads)
    close_after_train: bool = False  # closes the tab right after pressing Train
    stop_when_running: bool = False  # presses Stop once the run trains
    expect: str = "done"  # the status its (last accepted) run must end with
    delay_s: float = 0.0  # arrives late (the cap's case: its runs queue behind everyone's)
    run_ids: list[int] = field(default_factory=list)
    alerts: list[tuple[str, str]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    final_status: str | None = None
    stop_s: float | None = None  # from pressing Stop to the page showing "stopped"
    stopped_s: float | None = None  # from pressing Stop to the store's "stopped"
    error: str | None = None  # what broke the session, if anything


def run_id_of(session: WsSession) -> int | None:
    values = parse_qs(session.view.query).get("run")
    return int(values[-1]) if values else None


def act(server: Server, person: Person, times: list[tuple[str, float, float]], deadline: float,
        readers_done: threading.Event) -> None:
    """One person's visit: open Train with their set-up, press Train, watch until the run ends.
    A reader (``trains=0``) opens the Runs page instead and reloads it every 2 s until
    ``readers_done`` is set."""
    session = None
    time.sleep(person.delay_s)
    try:
        with WsSession(server.url, timeout=120) as session:
            if not person.trains:
                session.open("runs")
                while not readers_done.wait(2.0) and time.monotonic() < deadline:
                    session.rerun()
                    person.exceptions += session.view.exceptions
                return
            session.open("train", urlencode(person.config.to_query()))
            for _ in range(person.trains):
                session.click("Train")
                person.alerts += session.view.alerts
                run_id = run_id_of(session)
                if run_id is not None and run_id not in person.run_ids:
                    person.run_ids.append(run_id)
            if person.close_after_train:
                return  # the tab is closed: the websocket goes, the run must not
            stop_pressed = None
            while time.monotonic() < deadline:
                status = session.view.metrics.get("Status")
                person.exceptions += session.view.exceptions
                if status in TERMINAL:
                    person.final_status = status
                    person.alerts += session.view.alerts
                    if stop_pressed is not None:
                        person.stop_s = time.monotonic() - stop_pressed
                    return
                if person.stop_when_running and status == "running" and stop_pressed is None:
                    stop_pressed = time.monotonic()
                    session.click("Stop")
                    threading.Thread(target=time_the_stop, args=(server, person, stop_pressed),
                                     daemon=True).start()
                    continue
                # The browser's timers fire at the interval the server asked for.
                time.sleep(min(session.view.fragments.values(), default=0.5))
                session.poll() if session.view.fragments else session.rerun()
    except Exception as error:  # a session that breaks is counted, not fatal to the others
        person.error = f"{type(error).__name__}: {error}"
    finally:
        times += session.update_log if session is not None else []


def time_the_stop(server: Server, person: Person, pressed: float) -> None:
    """How long the run takes to stop, read from the store (the page sees it at its next poll)."""
    while time.monotonic() - pressed < 120:
        if server.store.get_run(person.run_ids[-1]).status == "stopped":
            person.stopped_s = time.monotonic() - pressed
            return
        time.sleep(0.02)


def classroom(sessions: int, steps: int, trainers: int | None = None) -> list[Person]:
    """``sessions`` people with short runs (distinct seeds); the first five do the fault cases.
    With ``trainers`` set, only that many train: the others read the Runs page meanwhile."""
    def config(seed: int, **changes) -> RunConfig:
        return RunConfig.parse({"suite": "synthetic", "steps": steps, "eval_every": max(steps // 2, 1),
                                "probe_every": 10, "seed": seed, "device": "cpu", **changes})

    people = [Person(config(i)) for i in range(sessions)]
    specials = [
        Person(config(0), close_after_train=True),
        Person(config(1, steps=100_000), stop_when_running=True, expect="stopped"),
        Person(config(2), trains=CAP + 1, delay_s=5.0),
        Person(config(3, device=ABSENT_DEVICE), expect="failed"),
        Person(config(4, optimizer="sgd", lr=10.0, steps=max(steps, 200)), expect="diverged"),
    ]
    people[:len(specials)] = specials[:sessions]
    for reader in people[trainers if trainers is not None else sessions:]:
        reader.trains = 0
    return people


@dataclass
class LoadResult:
    people: list[Person]
    log: list[tuple[str, float, float]]  # every page update: (kind, start, seconds)
    peak_rss_kib: int
    statuses: dict[int, str]
    seconds: float
    faults: dict[str, tuple[bool, str]]
    server_cpu_s: float = 0.0  # CPU time the server process used during the load
    client_cpu_s: float = 0.0  # ... and this process, whose threads are the 30 sessions
    load_average: str = ""  # /proc/loadavg at the end: what else the machine was doing
    hostile: Hostile | None = None  # what the hostile sessions tried and got

    @property
    def held(self) -> int:
        return sum(p.error is None and not p.exceptions for p in self.people)

    @property
    def submitted(self) -> list[int]:
        return [run_id for p in self.people for run_id in p.run_ids]

    @property
    def completed(self) -> int:
        return sum(status in TERMINAL for status in self.statuses.values())

    @property
    def readers(self) -> int:
        return sum(not p.trains for p in self.people)

    @property
    def lost(self) -> list[int]:
        """Runs that were accepted but never ended, or ended other than their person expects."""
        lost = [r for r in self.submitted if self.statuses.get(r) not in TERMINAL]
        for person in self.people:
            if person.run_ids and self.statuses.get(person.run_ids[-1]) != person.expect:
                lost.append(person.run_ids[-1])
        return sorted(set(lost))

    @property
    def times(self) -> list[float]:
        return [seconds for _, _, seconds in self.log]

    def p95(self) -> float:
        return percentile(self.times, 95)

    def breakdown(self) -> dict[str, tuple[int, float, float]]:
        """Per kind of update: (count, median, p95)."""
        kinds: dict[str, list[float]] = {}
        for kind, _, seconds in self.log:
            kinds.setdefault(kind, []).append(seconds)
        return {kind: (len(v), statistics.median(v), percentile(v, 95)) for kind, v in kinds.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def run_load(server: Server, *, sessions: int = 30, steps: int = 60, timeout: float = 600,
             trainers: int | None = None, hostile: bool = True) -> LoadResult:
    """``sessions`` people at once on ``server`` (``trainers`` of them train, default all); returns
    what they saw and what the store holds."""
    # One visitor first, as in a lesson the teacher's: the job manager starts with the app and
    # warms its worker, so the class does not all wait for torch's import.
    with WsSession(server.url) as teacher:
        teacher.open("train")
    people = classroom(sessions, steps, trainers)
    readers_done = threading.Event()
    times: list[tuple[str, float, float]] = []
    sampler = PeakRss(server.pid)
    sampler.start()
    cpu_before, client_before = cpu_seconds(server.pid), time.process_time()
    started = time.monotonic()
    deadline = started + timeout
    threads = [threading.Thread(target=act, args=(server, person, times, deadline, readers_done),
                                daemon=True) for person in people]
    for thread in threads:
        thread.start()
    hostile_seen: list[Hostile] = []
    if hostile:
        def attack() -> None:
            time.sleep(3.0)  # once the honest runs are queued and training
            hostile_seen.append(hostile_visits(
                server, lambda: [r for p in people for r in p.run_ids], steps))
        attacker = threading.Thread(target=attack, daemon=True, name="hostile")
        attacker.start()
    for thread, person in zip(threads, people, strict=True):
        if person.trains:
            thread.join(max(0.0, deadline - time.monotonic()) + 5)
    readers_done.set()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 5)
    if hostile:
        attacker.join(max(0.0, deadline - time.monotonic()) + 5)
    # The closed tab's run and any still queued: wait for them in the store.
    ids = [run_id for person in people for run_id in person.run_ids]
    while time.monotonic() < deadline and any(
            server.store.get_run(r).status not in TERMINAL for r in ids):
        time.sleep(0.2)
    seconds = time.monotonic() - started
    peak = sampler.stop()
    server_cpu = cpu_seconds(server.pid) - cpu_before
    client_cpu = time.process_time() - client_before
    load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    statuses = {run_id: server.store.get_run(run_id).status for run_id in ids}
    return LoadResult(people, times, peak, statuses, seconds, load_faults(server, people, statuses),
                      server_cpu, client_cpu, load_average, hostile_seen[0] if hostile_seen else None)


def load_faults(server: Server, people: list[Person], statuses: dict[int, str]) -> dict[str, tuple[bool, str]]:
    """The fault cases of the load run: each (survived, what was seen)."""
    faults: dict[str, tuple[bool, str]] = {}
    by_kind = {("closed" if p.close_after_train else "stop" if p.stop_when_running else
                "cap" if p.trains > 1 else p.expect): p for p in people[:5]}
    closed = by_kind.get("closed")
    if closed is not None and closed.run_ids:
        run_id = closed.run_ids[-1]
        with WsSession(server.url) as other:  # someone else opens the closed tab's run
            other.open("train", {"run": str(run_id)})
            shown = other.view.metrics.get("Status")
        faults["tab closed mid-run"] = (statuses.get(run_id) == "done" and shown == "done",
                                        f"run {run_id} {statuses.get(run_id)}, another session sees {shown}")
    stop = by_kind.get("stop")
    if stop is not None:
        faults["Stop under load"] = (
            stop.final_status == "stopped" and stop.stopped_s is not None,
            f"{stop.final_status}: the store {stop.stopped_s or float('nan'):.2f} s after Stop, the "
            f"page {stop.stop_s or float('nan'):.1f} s after (at its next poll)")
    cap = by_kind.get("cap")
    if cap is not None:
        refused = [text for kind, text in cap.alerts if kind == "error" and f"at most {CAP}" in text]
        faults["per-session cap"] = (len(cap.run_ids) == CAP and bool(refused),
                                     f"{len(cap.run_ids)} accepted; {refused[:1]}")
    for expect, name in (("failed", "a run that raises"), ("diverged", "a diverging run")):
        person = by_kind.get(expect)
        if person is not None and person.run_ids:
            info = server.store.get_run(person.run_ids[-1])
            shown = [text for kind, text in person.alerts if kind == "error"]
            losses = server.store.scalars(info.id, metric="loss")
            kept = int(losses["step"].max()) if len(losses) else 0
            faults[name] = (
                person.final_status == info.status == expect and set(shown) == {info.message}
                and "Traceback" not in info.message and kept == info.steps_done,
                f"{person.final_status}; page shows {shown[:1]}; {kept} steps kept")
    return faults


# --- hostile sessions ---------------------------------------------------------------------------------

OWNER_COOKIE = "mtl_owner"  # pages/_identity.py: the signed identity a browser keeps
# Issue 16's links: a run that would take the machine's memory for hours, and a lab simulation of
# half an hour of the server's CPU.
HEAVY_TRAIN = ("suite=digit_attributes&tasks=digit,parity,large,ink,centre,slant&arch=ple&arch.levels=4"
               "&arch.shared_experts=16&arch.task_experts=16&arch.expert_units=256&method=cagrad"
               "&batch_size=8192&probe_every=1&snapshot_every=1&eval_every=1&steps=200000")
HEAVY_LAB = ("methods=ew,mgda,pcgrad,cagrad,graddrop,gradvac,imtl_g,nash_mtl,aligned_mtl,upgrad,config,"
             "famo&steps=100000&starts=0,0;1,1;2,2")


@dataclass
class Hostile:
    """What the hostile sessions tried and got."""

    heavy: dict[str, tuple[float, str]] = field(default_factory=dict)  # link -> (s to refusal, sentence)
    heavy_runs: int = 0  # runs the heavy links got queued (must be 0)
    storm_reconnects: int = 0
    storm_accepted: list[int] = field(default_factory=list)
    storm_most_live: int = 0  # the storm identity's most runs queued or running at once (<= CAP)
    stops_pressed: int = 0  # presses of Stop / "Stop the grid" on other people's runs
    refusals: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def hostile_visits(server: Server, honest_ids: Callable[[], list[int]], steps: int,
                   storm: int = 8) -> Hostile:
    """The hostile sessions, one after another (``honest_ids``: the honest runs so far)."""
    seen = Hostile()
    identities = Identities.for_store(server.store.path)
    cookies = {OWNER_COOKIE: identities.issue_token()}  # one person, keeping their cookie
    owner = identities.verify(cookies[OWNER_COOKIE])
    try:
        for page, query in (("train", HEAVY_TRAIN), ("gradient_lab", HEAVY_LAB)):
            with WsSession(server.url, cookies=cookies, timeout=120) as session:
                started = time.monotonic()
                session.open(page, query)
                if page == "train":
                    session.click("Train")
                errors = [text for kind, text in session.view.alerts if kind == "error"]
                seen.heavy[page] = (time.monotonic() - started, errors[0] if errors else "")
        seen.heavy_runs = sum(info.owner == owner for info in server.store.run_infos())
        config = RunConfig.parse({"suite": "synthetic", "steps": steps, "device": "cpu", "seed": 99})
        for _ in range(storm):  # a reload storm: each reconnect presses Train again
            with WsSession(server.url, cookies=cookies, timeout=120) as session:
                session.open("train", urlencode(config.to_query()))
                session.click("Train")
                seen.storm_reconnects += 1
                run_id = run_id_of(session)
                if run_id is not None and run_id not in seen.storm_accepted:
                    seen.storm_accepted.append(run_id)
                live = sum(info.owner == owner for info in server.store.run_infos(LIVE))
                seen.storm_most_live = max(seen.storm_most_live, live)
        others = [run_id for run_id in honest_ids() if server.store.get_run(run_id).status in LIVE]
        with WsSession(server.url, cookies=cookies, timeout=120) as session:
            for run_id in others[:5]:  # Stop on others' runs (a disabled button, pressed anyway)
                session.open("train", {"run": str(run_id)})
                if "Stop" in session.view.buttons:
                    session.click("Stop")
                    seen.stops_pressed += 1
                    seen.refusals += [text for kind, text in session.view.alerts if kind == "error"]
            if others:
                session.open("compare", {"runs": ",".join(map(str, others))})
                if "Stop the grid" in session.view.buttons:
                    session.click("Stop the grid")
                    seen.stops_pressed += 1
                    seen.refusals += [text for kind, text in session.view.alerts if kind in {"error", "warning", "info"}]
    except Exception as error:  # reported, not fatal: the honest sessions are what is measured
        seen.errors.append(f"{type(error).__name__}: {error}")
    return seen


def hostile_report(seen: Hostile) -> list[str]:
    lines = ["hostile sessions:"]
    for page, (seconds, sentence) in seen.heavy.items():
        lines.append(f"  heavy {page} link: refused after {seconds:.2f} s: {sentence!r}")
    lines.append(f"  heavy links' runs queued: {seen.heavy_runs}")
    lines.append(f"  reload storm: {seen.storm_reconnects} reconnects with one identity, "
                 f"{len(seen.storm_accepted)} runs accepted, at most {seen.storm_most_live} live at once (cap {CAP})")
    lines.append(f"  Stop pressed on others' runs: {seen.stops_pressed}; told: {sorted(set(seen.refusals))[:2]}")
    lines += [f"  error: {error}" for error in seen.errors]
    return lines


# --- the server killed ----------------------------------------------------------------------------

@dataclass
class KillResult:
    run_ids: list[int]
    statuses: dict[int, str]
    steps_before: dict[int, int]  # steps recorded when the server was killed
    steps_after: dict[int, int]  # steps the store holds after the restart
    last_scalar_step: dict[int, int]
    workers_gone_s: float  # from the kill until no worker of the dead server was alive
    integrity: str
    shown: str | None  # the Train page's status of the running run after the restart
    after_restart: str  # status of a run trained after the restart

    @property
    def survived(self) -> bool:
        return (all(self.statuses[r] == "interrupted" for r in self.run_ids)
                and all(self.steps_after[r] >= self.steps_before[r] for r in self.run_ids)
                and all(self.last_scalar_step[r] == self.steps_after[r] for r in self.run_ids)
                and self.integrity == "ok" and self.shown == "interrupted"
                and self.after_restart == "done" and self.workers_gone_s < 15)


def kill_and_restart(store_path: Path, *, steps_before_kill: int = 20) -> KillResult:
    """Serve the app, start a long run (and queue another) from two sessions, SIGKILL the server
    mid-run, check the workers stop, serve again on the same store and look."""
    long_run = RunConfig.parse({"suite": "synthetic", "steps": 100_000, "eval_every": 50,
                                "device": "cpu"})
    with serve(store_path) as server:
        ids = []
        for seed in (0, 1):
            with WsSession(server.url) as session:
                session.open("train", urlencode(long_run.model_copy(update={"seed": seed}).to_query()))
                session.click("Train")
                ids.append(run_id_of(session))
        wait(lambda: server.store.last_step(ids[0]) >= steps_before_kill, 60)
        workers = children(server.pid)
        steps_before = {r: server.store.last_step(r) for r in ids}
        os.kill(server.pid, signal.SIGKILL)  # no atexit, no clean-up: only the pipes close
        killed = time.monotonic()
        wait(lambda: not any(pid_alive(pid) for pid in workers), 30)
        workers_gone_s = time.monotonic() - killed
    with sqlite3.connect(store_path) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    with serve(store_path) as server:
        with WsSession(server.url) as session:
            session.open("train", {"run": str(ids[0])})
            shown = session.view.metrics.get("Status")
            session.open("train", urlencode(RunConfig.parse(
                {"suite": "synthetic", "steps": 30, "eval_every": 10, "device": "cpu"}).to_query()))
            session.click("Train")
            fresh = run_id_of(session)
        wait(lambda: server.store.get_run(fresh).status in TERMINAL, 120)
        store = server.store
        return KillResult(
            run_ids=ids, statuses={r: store.get_run(r).status for r in ids}, steps_before=steps_before,
            steps_after={r: store.last_step(r) for r in ids},
            last_scalar_step={r: int(store.scalars(r, metric="loss")["step"].max()) if
                              store.last_step(r) else 0 for r in ids},
            workers_gone_s=workers_gone_s, integrity=integrity, shown=shown,
            after_restart=store.get_run(fresh).status)


def wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout} s")
        time.sleep(0.05)


# --- a page left open ------------------------------------------------------------------------------

@dataclass
class LongSession:
    polls: int
    reloads: int
    rss_after_warm_up_kib: int
    rss_after_kib: int
    rss_samples_kib: list[int]  # the server's RSS after each block of polls and reloads
    statuses_shown: set[str]

    @property
    def growth_kib(self) -> int:
        return self.rss_after_kib - self.rss_after_warm_up_kib


def live_run_that_stands_still(store: Store, steps: int = 1000) -> int:
    """A run that reads as live (status running, owned by this living process) but gains no
    steps: a page polls it for ever, and the data it shows stays the same, so any growth of the
    server's memory is the polling's own."""
    from mtl_core.runs.worker import execute_run

    run_id = store.create_run(RunConfig.parse({"suite": "synthetic", "steps": steps, "eval_every": 50,
                                               "probe_every": 10, "device": "cpu"}))
    execute_run(store, run_id, stop=threading.Event())
    store.set_status(run_id, "running", pid=os.getpid())
    return run_id


def long_session(server: Server, run_id: int, *, blocks: int = 10, polls: int = 40,
                 reloads: int = 10, warm_up: int = 40) -> LongSession:
    """One tab polls ``run_id`` (each poll runs both live fragments, as their timers would), and
    between blocks of polls ``reloads`` other tabs open the same link and close (a refresh is a
    new session). Returns the server's RSS (the server alone: workers come and go) over time.

    Streamlit keeps a closed tab's session for ``server.disconnectedSessionTTL`` (120 s by
    default, so that a dropped connection can resume): serve with a short TTL
    (:data:`SHORT_SESSION_TTL`) to see what stays after that, which is what could pile up."""
    shown: set[str] = set()

    def block(polls: int, reloads: int) -> None:
        for _ in range(polls):
            tab.poll()
            shown.add(tab.view.metrics.get("Status", "?"))
        for _ in range(reloads):
            with WsSession(server.url) as refresh:
                refresh.open("train", {"run": str(run_id)})
                shown.add(refresh.view.metrics.get("Status", "?"))

    with WsSession(server.url) as tab:
        tab.open("train", {"run": str(run_id)})
        assert tab.view.fragments, "the page does not poll the run"
        block(warm_up, reloads)
        before = rss_kib([server.pid])
        samples = []
        for _ in range(blocks):
            block(polls, reloads)
            samples.append(rss_kib([server.pid]))
    return LongSession(blocks * polls, blocks * reloads, before, samples[-1], samples, shown)


# --- the report ---------------------------------------------------------------------------------

def report(result: LoadResult, killed: KillResult | None, long: LongSession | None = None) -> str:
    times = result.times
    lines = [
        f"sessions held: {result.held} / {len(result.people)}"
        + (f" ({result.readers} of them reading the Runs page, the others training)" if result.readers else "")
        + "".join(f"\n  broken: {p.error or p.exceptions}" for p in result.people
                  if p.error or p.exceptions),
        f"runs completed: {result.completed} / {len(result.submitted)}; lost: {len(result.lost)}"
        + (f" {result.lost}" if result.lost else ""),
        f"page updates: {len(times)}; p95 {result.p95():.3f} s, median "
        f"{statistics.median(times):.3f} s, max {max(times):.3f} s",
        "  by kind (count, median, p95): " + "; ".join(
            f"{kind} {n}, {median:.2f} s, {p95:.2f} s" for kind, (n, median, p95) in result.breakdown().items()),
        f"peak RSS, server + workers: {result.peak_rss_kib / 1024:.0f} MiB",
        f"wall time of the load: {result.seconds:.0f} s; the server's CPU time {result.server_cpu_s:.0f} s "
        f"({result.server_cpu_s / max(len(times), 1) * 1000:.0f} ms per update), the sessions' "
        f"{result.client_cpu_s:.0f} s; load average at the end {result.load_average}",
        "fault cases:",
    ]
    faults = dict(result.faults)
    if killed is not None:
        faults["server SIGKILLed mid-run"] = (killed.survived, (
            f"runs {killed.statuses}, steps before kill {killed.steps_before}, kept "
            f"{killed.steps_after}, workers gone {killed.workers_gone_s:.1f} s after, integrity "
            f"{killed.integrity}, page shows {killed.shown}, next run {killed.after_restart}"))
    lines += [f"  {'survived' if ok else 'FAILED  '}  {name}: {seen}" for name, (ok, seen) in faults.items()]
    lines.append(f"fault cases survived: {sum(ok for ok, _ in faults.values())} / {len(faults)}")
    if result.hostile is not None:
        lines += hostile_report(result.hostile)
    if long is not None:
        lines.append(
            f"a page left open: {long.polls} polls of a live run (at the 2 s poll of a 2-core "
            f"server: {long.polls * 2 / 60:.0f} min) and {long.reloads} reloads (closed sessions "
            f"kept {SHORT_SESSION_TTL['STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL']} s); server RSS "
            f"{long.rss_after_warm_up_kib / 1024:.1f} -> {long.rss_after_kib / 1024:.1f} MiB "
            f"({long.growth_kib / 1024:+.1f} MiB); per block: "
            + ", ".join(f"{kib / 1024:.1f}" for kib in long.rss_samples_kib))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--steps", type=int, default=60, help="steps of each person's run")
    parser.add_argument("--max-runs", type=int, default=1, help="runs trained at once ($MTL_MAX_RUNS)")
    parser.add_argument("--no-kill", action="store_true", help="skip the SIGKILL case")
    parser.add_argument("--long-polls", type=int, default=600,
                        help="polls of the page left open (600: 20 minutes at the 2 s poll; 1800 "
                             "an hour); 0 skips it")
    args = parser.parse_args()
    load_avg = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{os.cpu_count()} cores, load average before: {' '.join(load_avg)}")
    with tempfile.TemporaryDirectory() as workdir:
        with serve(Path(workdir) / "load.db", max_runs=args.max_runs, cap=CAP) as server:
            result = run_load(server, sessions=args.sessions, steps=args.steps)
        killed = None if args.no_kill else kill_and_restart(Path(workdir) / "kill.db")
        long = None
        if args.long_polls:
            with serve(Path(workdir) / "long.db", extra_env=SHORT_SESSION_TTL) as server:
                run_id = live_run_that_stands_still(server.store)
                long = long_session(server, run_id, blocks=10, polls=args.long_polls // 10,
                                    reloads=max(args.long_polls // 100, 1))
    print(report(result, killed, long))


if __name__ == "__main__":
    main()
