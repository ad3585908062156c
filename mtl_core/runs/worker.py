"""A training worker: ``python -m mtl_core.runs.worker --store PATH``, driven by the job manager.

Protocol (lines on stdin / stdout): the worker imports torch and the trainer first, prints
``ready``, then waits for ``run <id>``. It trains that run, writing records to the store in
batches, and exits: one run per process, so a run's memory, threads and any crash end with it.
While it trains, a line ``stop``, SIGTERM or the store's stop flag stop the run after the current
step (status ``stopped``); end of stdin means the server that started it is gone, so the run stops
and becomes ``interrupted``.

:func:`execute_run` — the loop from a stored run to its final status, with the batched writes —
is shared with the command line (``python -m mtl_core run``), which trains in-process;
:func:`train_here` is the same for a config not stored yet, the ``train`` a study takes.

A store that cannot be written (locked past the store's wait, read-only, deleted) ends the run
``failed`` with the store's sentence; when even that cannot be written, the worker says it on
stderr and exits with code 3, the manager records it, and if the manager cannot either, readers
see the run's process gone and show it ``interrupted``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mtl_core.config import RunConfig
from mtl_core.engine.devices import default_threads, describe
from mtl_core.engine.records import StepRecord
from mtl_core.engine.trainer import Trainer
from mtl_core.runs.store import Store, StoreError
from mtl_core.suites import mnist
from mtl_core.suites.downloads import DataUnavailable
from mtl_core.suites.user_tables import TableError

FLUSH_EVERY_S = 0.2  # the page sees curves almost at once; the store is not written per step
STOP_POLL_S = 0.1
EXIT_STORE_FAILED = 3  # the worker could not record its run's ending: its last stderr line says why


class RecordBatcher:
    """Buffers step records and appends them to the store at most every ``interval`` seconds.

    The first record goes out at once, so a page shows the first point of a curve right away.
    """

    def __init__(self, store: Store, run_id: int, *, interval: float = FLUSH_EVERY_S) -> None:
        self.store = store
        self.run_id = run_id
        self.interval = interval
        self._buffer: list[StepRecord] = []
        self._last_flush = -float("inf")

    def add(self, record: StepRecord) -> None:
        self._buffer.append(record)
        if time.monotonic() - self._last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self.store.append(self.run_id, batch)
        self._last_flush = time.monotonic()

    def abandon(self) -> None:
        """Drop what is buffered: the store failed, and waiting out its fault again would only
        delay the run's ending."""
        self._buffer = []


@dataclass
class Outcome:
    status: str
    message: str | None
    steps: int
    seconds: float  # wall time from the start of the set-up to the end of training
    recorded: bool = True  # False: the store could not take the final status (``message`` says why)


def execute_run(store: Store, run_id: int, *, stop: threading.Event,
                interrupted: threading.Event | None = None,
                on_record: Callable[[StepRecord], None] | None = None) -> Outcome:
    """Train a stored run to its end and record its final status; never raises for the run's
    own errors (they become status ``failed`` with a one-line message, traceback on stderr), nor
    for a store that fails during the run (``failed`` with the store's sentence; ``recorded``
    False if that could not be written either). A store that fails before the run starts raises
    StoreError.

    ``stop`` ends the run after the current step; when ``interrupted`` is set too, the run is
    recorded as ``interrupted`` instead of ``stopped``. The store's stop flag also sets ``stop``.
    """
    info = store.get_run(run_id)
    if info is None:
        raise KeyError(f"run {run_id} is not in the store")
    started = time.monotonic()
    store.set_status(run_id, "running", pid=os.getpid())
    poller = _StopFlagPoller(store, run_id, stop)
    poller.start()
    steps = 0
    try:
        trainer = Trainer(info.config)
        store.set_status(run_id, "running", device=describe(trainer.device))
        batcher = RecordBatcher(store, run_id)
        try:
            for record in trainer.run(should_stop=stop.is_set):
                batcher.add(record)
                if record.message:
                    store.set_status(run_id, "running", message=record.message)
                steps = record.step
                if on_record is not None:
                    on_record(record)
        except StoreError:
            batcher.abandon()
            raise
        finally:
            batcher.flush()  # what was trained is kept, whatever ended the loop
        status, message = trainer.status, trainer.message
    except (StoreError, DataUnavailable, TableError) as error:  # its sentence says it all: no traceback
        status, message = "failed", str(error)
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        status, message = "failed", one_line(error)
    finally:
        poller.stop()
    if status == "stopped" and interrupted is not None and interrupted.is_set():
        status, message = "interrupted", (f"interrupted: the app's server stopped after step {steps}; "
                                          f"the {steps} steps before are kept")
    try:
        store.set_status(run_id, status, message=message)
    except StoreError as error:
        # The lock may have passed meanwhile, hence the retry; if not, the caller says why.
        return Outcome("failed", str(error), steps, time.monotonic() - started, recorded=False)
    return Outcome(status, message, steps, time.monotonic() - started)


def train_here(store: Store, config: RunConfig) -> int:
    """Store a run of ``config`` and train it in this process, to its end; returns its id (whatever
    its final status). Bound to a store, it is the ``train(config) -> run id`` a study takes
    (:func:`mtl_core.studies.transfer.train_transfer_study`) to train where it is called."""
    run_id = store.create_run(config, status="queued", pid=os.getpid())
    execute_run(store, run_id, stop=threading.Event())
    return run_id


def one_line(error: BaseException) -> str:
    """An exception as one sentence: the message alone for a ValueError (a person's input was
    wrong), else prefixed with the exception's type."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if isinstance(error, ValueError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _StopFlagPoller(threading.Thread):
    """Watches the store's stop flag (set by any process, e.g. the app) and sets ``stop``."""

    def __init__(self, store: Store, run_id: int, stop: threading.Event) -> None:
        super().__init__(name=f"stop-flag-{run_id}", daemon=True)
        self.store, self.run_id, self.target = store, run_id, stop
        self._done = threading.Event()

    def run(self) -> None:
        try:
            while not self._done.wait(STOP_POLL_S):
                try:
                    requested = self.store.stop_requested(self.run_id)
                except StoreError:
                    continue  # the run's own writes meet the same fault and end it, saying why
                if requested:
                    self.target.set()
                    return
        finally:
            self.store.close()

    def stop(self) -> None:
        self._done.set()


def warm_up() -> None:
    """Pay what a run needs before saying ``ready``: torch and the trainer (~1.5 s) came with this
    module's imports; torch._dynamo, which building the first optimizer imports, costs another
    ~1.3 s; the offline MNIST subset, 0.1 s."""
    torch.set_num_threads(default_threads())
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    # The real MNIST digits every MultiMNIST run starts from (0.1 s to read, 4 MB): read while
    # waiting, not after the person pressed Train.
    with contextlib.suppress(DataUnavailable):
        mnist.load_subset_digits()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtl_core.runs.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--store", required=True, help="the SQLite run store")
    args = parser.parse_args(argv)

    warm_up()
    print("ready", flush=True)
    line = sys.stdin.readline()
    if not line:
        return 0  # the manager went away before giving us a run
    command, _, argument = line.strip().partition(" ")
    if command != "run" or not argument.strip().isdigit():
        print(f"mtl worker: expected 'run <id>', got {line.strip()!r}", file=sys.stderr)
        return 2
    run_id = int(argument)

    stop = threading.Event()
    interrupted = threading.Event()

    def read_commands() -> None:
        for command_line in sys.stdin:
            if command_line.strip() == "stop":
                stop.set()
        interrupted.set()  # end of stdin: whoever started us is gone
        stop.set()

    threading.Thread(target=read_commands, name="stdin", daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # create=False: a store deleted since the manager opened it is not made anew, empty.
        store = Store(args.store, create=False)
        outcome = execute_run(store, run_id, stop=stop, interrupted=interrupted)
    except StoreError as error:
        outcome = Outcome("failed", str(error), 0, 0.0, recorded=False)
    if not outcome.recorded:
        # The last line on stderr is what the manager records as the run's message.
        print(outcome.message, file=sys.stderr, flush=True)
        return EXIT_STORE_FAILED
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is committed: skip the interpreter's teardown (torch's takes a noticeable
    # moment), so the slot frees and the next queued run starts at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
