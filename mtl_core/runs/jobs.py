"""Background runs for the app: a queue, at most N worker processes, stop, clean-up.

Each run trains in its own worker process (``python -m mtl_core.runs.worker``) started with
``subprocess``. Not a thread of the server: a torch loop there shares the interpreter lock with
the pages and slows every chart update (18 -> 50 ms measured). Not ``multiprocessing``: under
Streamlit the page script is the main module, and a spawned child would run it again.

A worker pays torch's import (~2.5 s with the optimizer's) before its first step, so the manager
keeps one *warm* worker started and waiting whenever a slot is free or a run waits: a submitted run
takes it and shows its first curve at once (measured: 0.07 s from submit to the first stored
step, against ~3 s for a cold worker).

The manager holds no torch. Its scheduler thread hands queued runs to free slots, escalates
stops that are not obeyed (the stop flag and a "stop" line first, SIGTERM after 2 s, SIGKILL after
5 s), and notices workers that die without recording an ending. Workers read their stdin: when
the server dies, the pipe closes and they stop the run as ``interrupted``.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import heapq
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mtl_core.config import RunConfig
from mtl_core.runs.limits import LimitError, SessionLimits
from mtl_core.runs.owners import Actor, OwnershipError, may_manage
from mtl_core.runs.store import TERMINAL, Store, StoreError, pid_alive, release, supervise

TERM_AFTER_S = 2.0  # a stop not obeyed by then gets SIGTERM ...
KILL_AFTER_S = 5.0  # ... and SIGKILL by then
SPARE_DELAY_S = 2.0  # after a run takes the warm worker, let it start before warming the next
TICK_S = 0.05
# A classroom's queued pages all ask where their run stands, every few seconds: measure the queue at
# most this often and answer them all from that (each measure reads the store once per run ahead).
QUEUE_MEASURE_S = 1.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
MAX_QUEUED_ENV = "MTL_MAX_QUEUED"
# Runs waiting, all people together: a class of 30 with a default Compare grid each is 120 runs;
# beyond that, new ones would wait for hours, and a script minting identities could fill the disk.
DEFAULT_MAX_QUEUED = 120


@dataclass
class _Worker:
    process: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    ready: threading.Event = field(default_factory=threading.Event)
    stderr_tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=20))
    readers: list[threading.Thread] = field(default_factory=list)
    run_id: int | None = None
    stop_at: float | None = None  # monotonic time of the stop request
    signalled: int = 0  # 0: none yet, 1: SIGTERM sent, 2: SIGKILL sent

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, line: str) -> bool:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self.process.stdin is not None:
                self.process.stdin.close()

    def last_error_line(self) -> str | None:
        for reader in self.readers:
            reader.join(timeout=1.0)  # the last lines may still be in the pipe
        lines = [line for line in self.stderr_tail if line.strip()]
        return lines[-1].strip() if lines else None


@dataclass(frozen=True)
class QueuePlace:
    """Where a queued run stands: its ``position`` in the queue (1: it starts next), the ids of the
    runs ``ahead`` of it (those training now, then those queued before it) and ``wait_s``, the
    estimated seconds until it starts (None while no run ahead has a measured speed)."""

    position: int
    ahead: tuple[int, ...]
    wait_s: float | None


def estimate_wait(running: Sequence[float | None], queued: Sequence[float | None], slots: int) -> float | None:
    """Seconds until a slot is free for the run queued after ``queued``.

    ``running``: the remaining seconds of each run training now; ``queued``: the seconds each run
    queued ahead will take, in queue order; ``slots``: runs trained at once. Each queued run takes
    the slot that frees first, as the scheduler hands them out; None if any duration is unknown.
    """
    if any(seconds is None for seconds in (*running, *queued)):
        return None
    free_at = [max(float(seconds), 0.0) for seconds in running]  # type: ignore[arg-type]
    free_at += [0.0] * max(slots - len(free_at), 0)
    heapq.heapify(free_at)
    for seconds in queued:
        heapq.heappush(free_at, heapq.heappop(free_at) + max(float(seconds), 0.0))  # type: ignore[arg-type]
    return free_at[0]


def seconds_per_step(store: Store, run_id: int, steps_done: int) -> float | None:
    """A run's measured seconds per optimiser step so far (its recorded time at its last step over
    that step, diagnostics included), or None before its first step."""
    if steps_done <= 0:
        return None
    times = store.scalars(run_id, split="train", metric="time_s", since_step=steps_done - 1)
    if times.empty:
        return None
    step, seconds = int(times["step"].iloc[-1]), float(times["value"].iloc[-1])
    return seconds / step if step > 0 and seconds > 0 else None


def _setup_key(config: RunConfig) -> str:
    """What sets a run's time per step: everything but its seed, length and learning rate."""
    data = config.model_dump(mode="json")
    return json.dumps({k: v for k, v in data.items() if k not in {"seed", "steps", "lr"}}, sort_keys=True)


class JobManager:
    """Runs trainings in worker processes, at most ``max_concurrent`` at once, queueing the rest.

    ``max_concurrent`` None: ``$MTL_MAX_RUNS``, else 1 (CPU runs share the cores; two at once
    are each about half as fast). ``warm``: keep one worker started and waiting. ``limits``: the
    per-session caps on runs submitted with an ``owner`` (None: from the environment, see
    :mod:`mtl_core.runs.limits`).
    """

    term_after_s = TERM_AFTER_S
    kill_after_s = KILL_AFTER_S

    def __init__(self, store_path: str | os.PathLike[str] | None = None, *,
                 max_concurrent: int | None = None, warm: bool = True,
                 limits: SessionLimits | None = None) -> None:
        self.store = Store(store_path)
        if max_concurrent is None:
            max_concurrent = int(os.environ.get("MTL_MAX_RUNS") or 1)
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1 (got {max_concurrent})")
        self.max_concurrent = max_concurrent
        self.warm = warm
        self.limits = limits if limits is not None else SessionLimits.from_env()
        self._owners: dict[int, str] = {}  # run id -> the identity that submitted it
        self.max_queued = max_queued_from_env()
        self._turns: dict[str | None, int] = {}  # owner -> when a run of theirs last started (a count)
        self._turn = 0
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._queue: collections.deque[int] = collections.deque()
        self._running: dict[int, _Worker] = {}
        self._spare: _Worker | None = None
        self._spare_after = 0.0
        self._closed = False
        self._rates: dict[str, float] = {}  # set-up -> its last measured seconds per step
        self._places: dict[int, QueuePlace] = {}
        self._places_at = -math.inf
        # Endings of exited workers the store could not take yet (locked, read-only): retried
        # each tick; meanwhile readers see the worker's pid gone and show the run interrupted.
        self._endings: dict[int, tuple[str, str]] = {}
        self._complaint: str | None = None  # the last store fault printed (printed once, not per tick)
        try:
            self.recovered = self.store.recover_interrupted()
        except StoreError as error:  # readers presume the same of those runs meanwhile
            self.recovered = []
            self._complain(error)
        if warm:
            with self._lock:
                self._ensure_spare()
        self._scheduler = threading.Thread(target=self._schedule_loop, name="mtl-jobs", daemon=True)
        self._scheduler.start()
        atexit.register(self.shutdown)

    # --- the public calls ---------------------------------------------------------------------------

    def submit(self, config: RunConfig, *, name: str | None = None, owner: str | None = None) -> int:
        """Record the run as queued and start it now if a slot is free; returns its id.

        ``owner`` (the app's session id): the run counts against that session's caps, and
        :class:`~mtl_core.runs.limits.LimitError` says so, with nothing recorded, when it goes over one.
        """
        if owner is not None:
            self.limits.check_cost([config])  # before the lock: see check_room
        run_id = self._enqueue(config, name, owner)
        self._wake.set()
        return run_id

    def _enqueue(self, config: RunConfig, name: str | None, owner: str | None) -> int:
        """Record a run whose cost has been checked as queued, if its owner has room (under the
        lock, so that two submissions at once cannot both take the last place)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job manager is shut down")
            self._check_count([config], owner)
            run_id = self.store.create_run(config, status="queued", name=name, pid=os.getpid(),
                                           owner=owner)
            if owner is not None:
                self._owners[run_id] = owner
            self._queue.append(run_id)
            self._dispatch()
            return run_id

    def stop(self, run_id: int, *, by: Actor | None = None) -> None:
        """Stop a run: a queued one at once, a running one after its current step. Returns at once;
        the escalation (SIGTERM, SIGKILL) for a worker that does not obey happens in the background.

        ``by``: who asks (a page passes its browser's identity); an actor that may not manage the
        run gets :class:`~mtl_core.runs.owners.OwnershipError` and nothing is stopped. None: a
        trusted caller (the command line, tests) — the pages check before they offer a Stop.
        """
        with self._lock:
            if by is not None:
                info = self.store.get_run(run_id)
                if info is None:
                    return  # deleted meanwhile: nothing to stop
                if not may_manage(by, self._owners.get(run_id, info.owner)):
                    raise OwnershipError()
            if run_id in self._queue:
                self._queue.remove(run_id)
                self.store.finish_if_live(run_id, "stopped", message="stopped before it started")
                return
            worker = self._running.get(run_id)
            self.store.request_stop(run_id)  # also reaches runs of other processes (the CLI)
            if worker is not None and worker.stop_at is None:
                worker.stop_at = time.monotonic()
                worker.send("stop")
            elif worker is None:
                info = self.store.get_run(run_id)
                if info is not None and info.status not in TERMINAL and (
                        info.pid is None or not pid_alive(info.pid)):
                    # Nobody is left to obey the flag: say so now rather than never.
                    self.store.finish_if_live(run_id, "stopped",
                                              message="stopped (no process was running it any more)")
        self._wake.set()

    def active(self) -> list[int]:
        """Ids of this manager's queued and running runs."""
        with self._lock:
            return [*self._running, *self._queue]

    def active_of(self, owner: str) -> list[int]:
        """Ids of the queued and running runs that ``owner`` submitted."""
        with self._lock:
            live = self.active()
            # Forget ended runs here: a server up for weeks must not keep one entry per run.
            self._owners = {run_id: who for run_id, who in self._owners.items() if run_id in live}
            return [run_id for run_id in live if self._owners.get(run_id) == owner]

    def submit_all(self, configs: list[RunConfig], *, owner: str | None = None) -> list[int]:
        """Submit ``configs`` (a grid) whole or not at all: LimitError, with nothing recorded, when
        they do not all fit ``owner``'s caps; returns their ids."""
        if owner is not None:
            self.limits.check_cost(configs)  # before the lock: see check_room
        with self._lock:
            self._check_count(configs, owner)
            ids = [self._enqueue(config, None, owner) for config in configs]
        self._wake.set()
        return ids

    def check_room(self, configs: list[RunConfig], owner: str | None) -> None:
        """Raise LimitError unless ``owner`` may submit all of ``configs`` now (a grid is queued
        whole or not at all); no owner, no caps.

        The runs' cost is checked before the manager's lock is taken: a set-up not estimated before
        takes a trace (seconds for a large one, more while torch is first imported), and the
        scheduler and every page's poll wait on that lock."""
        if owner is None:
            return
        self.limits.check_cost(list(configs))
        with self._lock:
            self._check_count(configs, owner)

    def _check_count(self, configs: list[RunConfig], owner: str | None) -> None:
        """The caps on how many runs wait: the server's queue and ``owner``'s own."""
        if owner is None:
            return
        with self._lock:
            if len(self._queue) + len(configs) > self.max_queued:
                raise LimitError(f"The server's queue is full ({len(self._queue)} runs waiting): try "
                                 "again in a few minutes.")
            self.limits.check_count(list(configs), len(self.active_of(owner)))

    def wait(self, run_id: int, timeout: float | None = None) -> str:
        """Block until the run ends (or ``timeout`` passes); returns its status then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.store.get_run(run_id)
            if info is None:
                raise KeyError(f"run {run_id} is not in the store")
            if info.status in TERMINAL or (deadline is not None and time.monotonic() >= deadline):
                return info.status
            time.sleep(0.02)

    def wait_for_warm_worker(self, timeout: float | None = None) -> bool:
        """Block until the warm worker has imported torch and waits for a run (benchmarks, tests);
        False if there is none (``warm=False``) or it is not ready in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                spare = self._spare
            if spare is not None and spare.ready.is_set():
                return True
            if not self.warm or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(0.02)

    def queue_place(self, run_id: int) -> QueuePlace | None:
        """Where the run stands in this manager's queue, or None when it is not waiting in it.

        The wait is measured, not guessed: a run training now will take its remaining steps times
        its own seconds per step so far; a run queued ahead, its steps times the seconds per step
        last measured for its set-up (suite, tasks, architecture, method, batch size, probes,
        device: all but seed, steps and learning rate), else the mean of the runs training now.
        :func:`estimate_wait` hands them to the slots in queue order. Left out: the seconds each
        worker spends building its data and model before its first step. Measured at most every
        ``QUEUE_MEASURE_S`` for all queued runs at once.
        """
        now = time.monotonic()
        with self._lock:
            if run_id not in self._queue:
                return None
            if run_id in self._places and now - self._places_at < QUEUE_MEASURE_S:
                return self._places[run_id]
            running, queued = list(self._running), list(self._queue)
        places = self._measure_queue(running, queued)
        with self._lock:
            self._places, self._places_at = places, now
        return places.get(run_id)

    def _measure_queue(self, running: list[int], queued: list[int]) -> dict[int, QueuePlace]:
        """Every queued run's place (outside the lock: it reads the store)."""
        remaining: list[float | None] = []
        unmeasured: list[int] = []  # running runs before their first step: their steps to go
        measured = []
        for run_id in running:
            info = self.store.get_run(run_id)
            if info is None:
                continue
            rate = seconds_per_step(self.store, run_id, info.steps_done)
            steps_left = max(info.config.steps - info.steps_done, 0)
            if rate is None:
                remaining.append(None)
                unmeasured.append(steps_left)
                continue
            self._rates[_setup_key(info.config)] = rate
            measured.append(rate)
            remaining.append(steps_left * rate)
        fallback = sum(measured) / len(measured) if measured else None
        if fallback is not None:
            # A run still building its data has no speed yet: take that of the runs beside it.
            remaining = [seconds if seconds is not None else unmeasured.pop(0) * fallback
                         for seconds in remaining]
        durations: list[float | None] = []
        places = {}
        for position, run_id in enumerate(queued, start=1):
            ahead = (*running, *queued[:position - 1])
            places[run_id] = QueuePlace(position, ahead,
                                        estimate_wait(remaining, durations, self.max_concurrent))
            info = self.store.get_run(run_id)
            if info is None:  # deleted meanwhile: the scheduler will skip it
                durations.append(0.0)
                continue
            rate = self._rates.get(_setup_key(info.config), fallback)
            durations.append(None if rate is None else info.config.steps * rate)
        return places

    def worker_pid(self, run_id: int) -> int | None:
        """The pid of the worker training this run, or None."""
        with self._lock:
            worker = self._running.get(run_id)
            return worker.pid if worker is not None else None

    def shutdown(self) -> None:
        """Stop everything: queued runs and running ones become ``interrupted`` (the app is going
        away), workers are reaped. Safe to call twice; registered with atexit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queued, self._queue = list(self._queue), collections.deque()
            workers = list(self._running.values())
            spare, self._spare = self._spare, None
        atexit.unregister(self.shutdown)
        self._wake.set()
        for run_id in queued:
            self._finish_quietly(run_id, "interrupted",
                                 "interrupted: the app stopped before the run started")
        if spare is not None:
            # It holds no run, so there is nothing for it to record: no need to wait the grace
            # period while it may still be importing torch (every test's teardown did, 2 s).
            with contextlib.suppress(OSError):
                spare.process.send_signal(signal.SIGTERM)
            workers.append(spare)
        for worker in workers:
            worker.close_stdin()  # end of input: the worker records 'interrupted' and exits
        deadline = time.monotonic() + TERM_AFTER_S
        for signum, grace in ((None, TERM_AFTER_S), (signal.SIGTERM, KILL_AFTER_S - TERM_AFTER_S),
                              (signal.SIGKILL, 5.0)):
            alive = [w for w in workers if w.process.poll() is None]
            if not alive:
                break
            if signum is not None:
                for worker in alive:
                    with contextlib.suppress(OSError):
                        worker.process.send_signal(signum)
                deadline = time.monotonic() + grace
            for worker in alive:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for worker in workers:
            if worker.run_id is not None:
                self._finish_quietly(worker.run_id, "interrupted",
                                     "interrupted: the app stopped during the run")
        self._scheduler.join(timeout=2.0)
        with self._lock:
            self._running.clear()
            endings, self._endings = dict(self._endings), {}
        for run_id, (status, message) in endings.items():
            self._finish_quietly(run_id, status, message)

    def _finish_quietly(self, run_id: int, status: str, message: str) -> None:
        """Record an ending at shutdown if the store takes it; if not (read-only, deleted), the
        app still stops without a traceback, and readers see the run's process gone."""
        try:
            self.store.finish_if_live(run_id, status, message=message)
        except StoreError as error:
            self._complain(error)

    # --- scheduling --------------------------------------------------------------------------------

    def _schedule_loop(self) -> None:
        while not self._closed:
            self._wake.wait(TICK_S)
            self._wake.clear()
            try:
                with self._lock:
                    if self._closed:
                        return
                    self._reap()
                    self._escalate_stops()
                    # A store that cannot be written would fail every run handed out: keep them
                    # queued (truthfully: this server still holds them) until it can.
                    if self._store_writable():
                        self._dispatch()
                    # Warm a worker only when a run could take it: while every slot trains and
                    # nothing waits, its imports would just slow the runs down (on a CPU).
                    wanted = len(self._running) < self.max_concurrent or bool(self._queue)
                    if self.warm and wanted and time.monotonic() >= self._spare_after:
                        self._ensure_spare()
                # Outside the lock: pages that submit or ask for places never wait on the store here.
                self._record_endings()
            except Exception as error:  # the scheduler must outlive any one bad run
                self._complain(error)

    def _store_writable(self) -> bool:
        try:
            self.store.check()
        except StoreError as error:
            self._complain(error)
            return False
        return True

    def _record_endings(self) -> None:
        """Write the endings of exited workers; those the store will not take now (a lock, without
        waiting for it: the scheduler must keep ticking) stay for the next tick."""
        with self._lock:
            pending = list(self._endings.items())
        for run_id, (status, message) in pending:
            try:
                self.store.finish_if_live(run_id, status, message=message, wait=False)
            except StoreError as error:
                self._complain(error)
                return
            with self._lock:
                self._endings.pop(run_id, None)
        if pending:
            self._complaint = None

    def _complain(self, error: BaseException) -> None:
        """Say a scheduler fault on stderr once, not twenty times a second while it lasts."""
        text = str(error) if isinstance(error, StoreError) else repr(error)
        if text != self._complaint:
            self._complaint = text
            print(f"mtl jobs: {text}", file=sys.stderr)

    def _next_queued(self) -> int:
        """Take the queued run that starts next: fair across owners, so one person's twelve queued
        runs do not hold a class back. The owner with the fewest runs training now goes first;
        among equals, the one whose run started least recently (with one slot, nobody trains at a
        dispatch, and this is what makes it a round-robin); then the run queued first."""
        training = collections.Counter(self._owners.get(run_id) for run_id in self._running)
        pick = min(range(len(self._queue)), key=lambda i: (
            training[self._owners.get(self._queue[i])], self._turns.get(self._owners.get(self._queue[i]), -1), i))
        run_id = self._queue[pick]
        del self._queue[pick]
        owner = self._owners.get(run_id)
        self._turn += 1
        self._turns[owner] = self._turn
        if len(self._turns) > 4 * DEFAULT_MAX_QUEUED:  # a server up for weeks: forget who left
            live = {self._owners.get(r) for r in (*self._running, *self._queue)} | {owner}
            self._turns = {who: turn for who, turn in self._turns.items() if who in live}
        return run_id

    def _dispatch(self) -> None:
        """Give queued runs to free slots (the warm worker first), fairly across owners."""
        while self._queue and len(self._running) < self.max_concurrent:
            run_id = self._next_queued()
            info = self.store.get_run(run_id)
            if info is None or info.status != "queued":
                continue  # deleted or ended meanwhile
            worker = None
            try:
                for _attempt in range(2):
                    candidate = self._take_spare() or self._spawn()
                    if candidate.send(f"run {run_id}"):
                        worker = candidate
                        break
                    self._discard(candidate)  # the spare had died; a fresh one gets the run
                problem = "the worker process would not take the run"
            except OSError as error:  # no more processes, no memory: this run fails, not the app
                problem = f"could not start a worker process ({error})"
            if worker is None:
                self.store.finish_if_live(run_id, "failed", message=problem)
                continue
            worker.run_id = run_id
            self._running[run_id] = worker
            self._spare_after = time.monotonic() + SPARE_DELAY_S

    def _reap(self) -> None:
        """Record the ending of each worker that exited, at the tick it exits. A worker that could
        not record its own ending said why on its last stderr line (the run's message). What the
        store will not take now is kept in ``_endings`` and retried; the run is never dropped."""
        for run_id, worker in list(self._running.items()):
            supervise(worker.pid)  # before poll(): once reaped, the pid is gone for readers
            code = worker.process.poll()
            if code is None:
                continue
            del self._running[run_id]
            if worker.stop_at is not None:
                ending = ("stopped", "stopped by the user (the worker did not respond and was ended)")
            else:
                line = worker.last_error_line()
                ending = ("failed", line or (f"the worker process exited with code {code}" if code >= 0
                                             else f"the worker process was killed by signal {-code}"))
            try:
                self.store.finish_if_live(run_id, ending[0], message=ending[1], wait=False)
            except StoreError as error:
                self._endings[run_id] = ending
                self._complain(error)
            finally:
                release(worker.pid)
        if self._spare is not None and self._spare.process.poll() is not None:
            line = self._spare.last_error_line()
            print(f"mtl jobs: the warm worker exited ({line or self._spare.process.returncode})",
                  file=sys.stderr)
            self._spare = None
            self._spare_after = time.monotonic() + SPARE_DELAY_S  # do not spin on a broken set-up

    def _escalate_stops(self) -> None:
        now = time.monotonic()
        for worker in self._running.values():
            if worker.stop_at is None or worker.process.poll() is not None:
                continue
            waited = now - worker.stop_at
            if worker.signalled == 0 and waited >= self.term_after_s:
                worker.signalled = 1
                with contextlib.suppress(OSError):
                    worker.process.send_signal(signal.SIGTERM)
            elif worker.signalled == 1 and waited >= self.kill_after_s:
                worker.signalled = 2
                with contextlib.suppress(OSError):
                    worker.process.kill()

    # --- worker processes ------------------------------------------------------------------------

    def _ensure_spare(self) -> None:
        if self._spare is None and not self._closed:
            try:
                self._spare = self._spawn()
            except OSError as error:  # runs will get a cold worker (or fail and say why)
                print(f"mtl jobs: could not start a warm worker ({error})", file=sys.stderr)
                self._spare_after = time.monotonic() + 10 * SPARE_DELAY_S

    def _take_spare(self) -> _Worker | None:
        spare, self._spare = self._spare, None
        if spare is not None and spare.process.poll() is not None:
            self._discard(spare)
            return None
        return spare

    def _spawn(self) -> _Worker:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.max_concurrent > 1 and "MTL_TORCH_THREADS" not in env:
            # Runs side by side share the cores instead of each taking them all.
            env["MTL_TORCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.max_concurrent))
        process = subprocess.Popen(
            [sys.executable, "-m", "mtl_core.runs.worker", "--store", str(self.store.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1, env=env, close_fds=True)
        worker = _Worker(process)
        worker.readers = [
            threading.Thread(target=_read_stdout, args=(worker,), daemon=True, name="worker-stdout"),
            threading.Thread(target=_read_stderr, args=(worker,), daemon=True, name="worker-stderr"),
        ]
        for reader in worker.readers:
            reader.start()
        return worker

    def _discard(self, worker: _Worker) -> None:
        worker.close_stdin()
        with contextlib.suppress(OSError):
            worker.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=1.0)


def max_queued_from_env() -> int:
    """``$MTL_MAX_QUEUED``: how many runs may wait at once, all people together (default
    :data:`DEFAULT_MAX_QUEUED`); a value that is not a whole number of at least 1 raises ValueError
    naming the variable, so a mistyped setting stops the server at start."""
    text = os.environ.get(MAX_QUEUED_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_QUEUED
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"${MAX_QUEUED_ENV} must be a whole number of at least 1 (got {text!r})")
    return int(text)


def _read_stdout(worker: _Worker) -> None:
    assert worker.process.stdout is not None
    for line in worker.process.stdout:
        if line.strip() == "ready":
            worker.ready.set()


def _read_stderr(worker: _Worker) -> None:
    """Keep the last lines (a failed worker's message) and pass everything on to our stderr."""
    assert worker.process.stderr is not None
    for line in worker.process.stderr:
        worker.stderr_tail.append(line)
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"[mtl worker {worker.pid}] {line}")
