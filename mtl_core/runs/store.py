"""The run store: one SQLite file that workers write in batches and every page reads.

Three tables. ``runs`` holds one row per run (its config as JSON, status, timestamps, device, the
message that explains a status, the pid of the process that owns it, a stop flag and how many
steps it has done). ``scalars`` holds the curves in long format, one number per row: (run, step,
split, task, metric, value). ``matrices`` holds the T x T cosine matrices of the task gradients and
the architectures' sharing snapshots as JSON. Nothing is pickled: the file can be read by any
SQLite client, and a store written by an older version cannot run code.

WAL mode lets one writer and many readers work at once; each thread gets its own connection, so a
page's thread and a writer thread can share one Store object. WAL also needs every process that
opens the file to be on one machine (its locks live in shared memory), so a run's ``pid`` names a
process on this host: pids cannot collide across machines, and no host is recorded.

Faults end in truth. A statement that finds the database locked by another program waits: SQLite's
busy timeout, then retries with back-off, up to ``lock_wait_s`` in all ($MTL_STORE_LOCK_WAIT_S,
default 120 s). What cannot be waited out — a lock held longer, a read-only file, a file deleted or
replaced while open (never silently re-created: its runs would vanish from the pages), a file that
is no store — raises :class:`StoreError` with one sentence for a person. And every reader treats a
queued or running run whose process is gone as ``interrupted`` (writing that back when it can), so
no run shows as live without a live process, however its process ended.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mtl_core.config import ConfigError, RunConfig
from mtl_core.engine.records import StepRecord
from mtl_core.suites import user_tables

STATUSES = ("queued", "running", "done", "stopped", "diverged", "failed", "interrupted")
TERMINAL = {"done", "stopped", "diverged", "failed", "interrupted"}
LIVE = ("queued", "running")

DEFAULT_PATH = Path("runs") / "mtl.db"
MAX_RUN_ID = 2**63 - 1  # SQLite's largest integer: a larger id (from a URL) names no run
LOCK_WAIT_S = 120.0  # how long a statement waits out another program's lock, in all, before it fails
_BUSY_TIMEOUT_S = 5.0  # SQLite's own wait per attempt; between attempts we back off ...
_BACKOFF_FIRST_S = 0.05  # ... from this, doubling ...
_BACKOFF_MAX_S = 2.0  # ... up to this
_PROBE_BUSY_MS = 50  # a best-effort write (the readers' rule) waits no longer than this
MAX_NAME_CHARS = 120  # a run's name: enough to describe it, short enough for a table cell
# A CSV cell that starts with one of these is a live formula when a spreadsheet opens the file
# (OWASP's "CSV injection"); such text cells get a leading apostrophe, which the spreadsheet hides.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a deleted run's id (in a URL) is never reused
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    device TEXT,
    message TEXT,
    pid INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    steps_done INTEGER NOT NULL DEFAULT 0,
    owner TEXT  -- who may stop, rename and delete it (mtl_core.runs.owners), NULL for the command line
);
CREATE TABLE IF NOT EXISTS scalars (
    run INTEGER NOT NULL,
    step INTEGER NOT NULL,
    split TEXT NOT NULL,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL
);
CREATE INDEX IF NOT EXISTS scalars_by_metric ON scalars (run, split, metric, step);
-- A live page asks for "every row after step N" of one run, twice a second.
CREATE INDEX IF NOT EXISTS scalars_by_step ON scalars (run, step);
CREATE TABLE IF NOT EXISTS matrices (
    run INTEGER NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS matrices_by_name ON matrices (run, name, step);
"""

_RUN_COLUMNS = ("id", "name", "config", "status", "created_at", "started_at", "finished_at", "device",
                "message", "pid", "steps_done", "owner")
_LIST_COLUMNS = ["id", "name", "suite", "tasks", "arch", "method", "status", "steps_done", "steps",
                 "created_at", "finished_at", "device", "message"]


class StoreError(RuntimeError):
    """The run store cannot be used as asked; ``str()`` is one sentence for a person (what happened,
    what to do). Raised for a missing store opened with ``create=False``, a lock held longer than
    the store waits, a read-only, deleted or replaced file, a file that is no store. ``kind``
    names the fault for a caller that acts on it: "missing", "locked", "read-only", "vanished",
    "broken" (anything else)."""

    def __init__(self, message: str, kind: str = "broken") -> None:
        super().__init__(message)
        self.kind = kind


def gone_message(steps: int) -> str:
    """The message of a run presumed ``interrupted`` because its process is gone."""
    return f"interrupted: the process running it is gone; the {steps} steps recorded are kept"


_GONE_PREFIX = "interrupted: the process running it is gone"


class _Connection(sqlite3.Connection):
    """A connection whose statements wait out another program's lock (SQLite's busy timeout, then
    back-off up to the store's ``lock_wait_s``) and turn every other failure into a StoreError.

    Before each statement it checks that the store's file is still the one it opened: a
    connection to a deleted file would go on writing into a file nobody can see again.
    """

    store: Store | None = None  # set right after connecting; until then statements run plain
    patient: bool = True  # False: a best-effort write that gives up at once on a lock

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return self._attempt(sql, lambda: super(_Connection, self).execute(sql, parameters))

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return self._attempt(sql, lambda: super(_Connection, self).executemany(sql, parameters))

    def _attempt(self, sql: str, statement: Any) -> sqlite3.Cursor:
        store = self.store
        if store is None:
            return statement()
        store._check_present()
        started = time.monotonic()
        delay = _BACKOFF_FIRST_S
        while True:
            try:
                return statement()
            except sqlite3.Error as error:
                # Inside a transaction only a COMMIT can be retried on its own (BEGIN IMMEDIATE
                # took the write lock, so nothing else there waits for one).
                retry = _is_locked(error) and self.patient and (
                    not self.in_transaction or sql.strip().upper() == "COMMIT")
                waited = time.monotonic() - started
                if not retry or waited + delay > store.lock_wait_s:
                    raise store._explain(error, waited) from error
            time.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX_S)
            store._check_present()


@dataclass(frozen=True)
class RunInfo:
    """One row of ``runs``, with its config parsed."""

    id: int
    name: str
    config: RunConfig
    status: str
    created_at: float  # seconds since the epoch
    started_at: float | None
    finished_at: float | None
    device: str | None
    message: str | None
    pid: int | None
    steps_done: int
    owner: str | None = None  # the identity that started it; None: the command line (no owner)


class Store:
    """The SQLite run store. ``path`` None: ``$MTL_STORE``, else ``./runs/mtl.db``.

    ``create`` False: open an existing store only (StoreError "There is no run store at PATH."
    otherwise, and nothing is made on disk); such a reader also opens a read-only store, whose
    writes then raise StoreError. ``lock_wait_s``: how long a statement waits out another
    program's lock in all (None: ``$MTL_STORE_LOCK_WAIT_S``, else ``LOCK_WAIT_S``).
    Raises StoreError when the store cannot be used.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, create: bool = True,
                 lock_wait_s: float | None = None) -> None:
        chosen = path if path is not None else os.environ.get("MTL_STORE") or DEFAULT_PATH
        # Absolute, so that a worker started in another directory opens the same file.
        self.path = Path(chosen).expanduser().absolute()
        self.lock_wait_s = _lock_wait(lock_wait_s)
        self.read_only = False
        self._local = threading.local()
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened
        if not create and not self.path.is_file():
            raise StoreError(f"There is no run store at {self.path}.", "missing")
        # People's own tables live beside the store: configs naming one resolve in this process.
        user_tables.add_search_root(user_tables.tables_root(self.path))
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"The run store at {self.path} cannot be created ({error.strerror}): "
                                 f"choose a writable folder with MTL_STORE.") from None
        try:
            conn = self._conn(create=create)
            self._identity = _identity(self.path)
            conn.execute("PRAGMA journal_mode=WAL")
            with self._transaction() as tx:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        tx.execute(statement)
                _add_missing_columns(tx)
        except StoreError as error:
            if create or error.kind != "read-only":
                self.close()
                raise
            self.read_only = True  # a reader (``list``) may still read a store it cannot write

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def check(self) -> None:
        """Raise StoreError unless the store can be written now: its file is the one opened and is
        writable. Cheap (a stat): for a page or scheduler to ask before it works."""
        self._check_present()
        if self.read_only or not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            raise self._read_only_error()
        # query_only: a connection that may not write (how tests run as root make a store read-only)
        if self._conn().execute("PRAGMA query_only").fetchone()[0]:
            raise self._read_only_error()

    # --- connections ---------------------------------------------------------------------------

    def _conn(self, *, create: bool = False) -> _Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # mode=rw once the store exists: a thread's first connection must not make a new empty
            # file where a deleted store was (the pages would show no runs instead of the fault).
            mode = "rwc" if create else "rw"
            try:
                conn = _connect(self.path, mode)
            except sqlite3.Error as error:
                raise self._explain(error, 0.0) from error
            conn.store = self
            # Autocommit (isolation_level=None): reads see the latest commit; writes group
            # themselves explicitly in _transaction.
            conn.execute(f"PRAGMA busy_timeout={int(min(_BUSY_TIMEOUT_S, self.lock_wait_s) * 1000)}")
            # In WAL mode NORMAL survives a crash of the process (not of the machine) without an
            # fsync per transaction: losing the last batch of a run on power loss is acceptable.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, *, patient: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``patient`` False: a best-effort write that fails at once (in
        ``_PROBE_BUSY_MS``) on a lock instead of waiting it out."""
        conn = self._conn()
        if not patient:
            conn.execute(f"PRAGMA busy_timeout={_PROBE_BUSY_MS}")
            conn.patient = False
        try:
            # IMMEDIATE takes the write lock up front, so the busy timeout applies instead of a
            # deadlock error when two writers would upgrade read locks at once.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # not conn.execute: no checks, no waits
                    sqlite3.Connection.execute(conn, "ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    sqlite3.Connection.execute(conn, "ROLLBACK")
                raise
        finally:
            if not patient:
                conn.patient = True
                with contextlib.suppress(sqlite3.Error, StoreError):
                    conn.execute(f"PRAGMA busy_timeout={int(min(_BUSY_TIMEOUT_S, self.lock_wait_s) * 1000)}")

    def _check_present(self) -> None:
        """StoreError if the file opened was deleted or replaced since (compared by device and
        inode: a new file at the same path is not this store)."""
        if self._identity is None:
            return  # still opening
        try:
            now = _identity(self.path)
        except OSError:
            now = None
        if now != self._identity:
            raise StoreError(f"The run store at {self.path} was deleted or replaced while in use, so "
                             f"its runs cannot be read or written: restore the file, or restart to "
                             f"begin a new store.", "vanished")

    def _read_only_error(self) -> StoreError:
        return StoreError(f"The run store at {self.path} is read-only, so no run can be recorded: "
                          f"make the file and its folder writable (or set MTL_STORE to another "
                          f"path) and restart.", "read-only")

    def _explain(self, error: sqlite3.Error, waited: float) -> StoreError:
        """One sentence for what went wrong with the store (a StoreError passes through)."""
        if isinstance(error, StoreError):
            return error
        try:
            self._check_present()  # a vanished file explains most errors that follow
        except StoreError as gone:
            return gone
        text = str(error).lower()
        if _is_locked(error):
            return StoreError(f"The run store at {self.path} stayed locked by another program for "
                              f"{max(waited, self.lock_wait_s):.0f} s, so it could not be written: close "
                              f"whatever holds it (an sqlite3 shell, a copy in progress) and try again.",
                              "locked")
        if "readonly" in text or "read-only" in text:
            return self._read_only_error()
        if "no such table" in text or "not a database" in text or "malformed" in text:
            return StoreError(f"The file at {self.path} is not a sound run store ({error}): set "
                              f"MTL_STORE to a run store or to a new file.")
        if "unable to open" in text and not self.path.exists():
            if self._identity is not None:
                return StoreError(f"The run store at {self.path} was deleted or replaced while in use, "
                                  f"so its runs cannot be read or written: restore the file, or restart "
                                  f"to begin a new store.", "vanished")
            return StoreError(f"There is no run store at {self.path}.", "missing")
        return StoreError(f"The run store at {self.path} cannot be used ({error}): check that the file "
                          f"and its folder exist and are writable.")

    def close(self) -> None:
        """Close this thread's connection (others close when their threads' objects go)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- runs ------------------------------------------------------------------------------------

    def create_run(self, config: RunConfig, *, status: str = "queued", name: str | None = None,
                   pid: int | None = None, owner: str | None = None) -> int:
        """Record a run; ``pid``: the process that owns it while it is queued or running (None: this
        one). Readers take a live run whose owner is gone for ``interrupted``."""
        _check_status(status)
        if name:
            check_name(name)
        now = time.time()
        if pid is None and status in LIVE:
            pid = os.getpid()
        with self._transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO runs (name, config, status, created_at, started_at, finished_at, pid, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name or "", config.to_json(indent=None), status, now,
                 now if status == "running" else None, now if status in TERMINAL else None, pid, owner))
            run_id = int(cursor.lastrowid)
            if not name:
                tx.execute("UPDATE runs SET name = ? WHERE id = ?", (default_name(config, run_id), run_id))
        return run_id

    def set_status(self, run_id: int, status: str, *, message: str | None = None,
                   device: str | None = None, pid: int | None = None) -> None:
        """Set a run's status; ``message``, ``device`` and ``pid`` change only when given.

        ``running`` stamps ``started_at`` (the first time only); a terminal status stamps
        ``finished_at``.
        """
        _check_status(status)
        now = time.time()
        sets = ["status = ?"]
        values: list[Any] = [status]
        if status == "running":
            sets.append("started_at = COALESCE(started_at, ?)")
            values.append(now)
        if status in TERMINAL:
            sets.append("finished_at = ?")
            values.append(now)
        for column, value in (("message", message), ("device", device), ("pid", pid)):
            if value is not None:
                sets.append(f"{column} = ?")
                values.append(value)
        with self._transaction() as tx:
            tx.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*values, run_id))

    def finish_if_live(self, run_id: int, status: str, *, message: str | None = None,
                       wait: bool = True) -> bool:
        """Set a terminal status only if the run is still queued or running — or only presumed
        ``interrupted`` by a reader (whoever knows how it ended says better); True if it was.

        For whoever cleans up after a process that may or may not have recorded its own ending.
        ``wait`` False: fail at once (StoreError) on a lock instead of waiting it out, for a
        caller that will try again (the job manager's scheduler must not stall).
        """
        if status not in TERMINAL:
            raise ValueError(f"finish_if_live needs a terminal status (got {status!r})")
        with self._transaction(patient=wait) as tx:
            cursor = tx.execute(
                "UPDATE runs SET status = ?, finished_at = ?, message = COALESCE(?, message) "
                "WHERE id = ? AND (status IN (?, ?) OR (status = 'interrupted' AND message LIKE ?))",
                (status, time.time(), message, run_id, *LIVE, _GONE_PREFIX + "%"))
            return cursor.rowcount > 0

    def get_run(self, run_id: int) -> RunInfo | None:
        if not 0 <= int(run_id) <= MAX_RUN_ID:  # e.g. ?run=99999999999999999999 in a URL
            return None
        row = self._conn().execute(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        return None if row is None else self._truthful([_run_info(row)])[0]

    def run_infos(self, statuses: Iterable[str] | None = None) -> list[RunInfo]:
        """Every run (or those with one of ``statuses``), oldest first, configs parsed."""
        chosen = list(statuses) if statuses is not None else list(STATUSES)
        if not chosen:
            return []
        # Live runs are read too: one whose process is gone reads back as interrupted.
        asked = sorted(set(chosen) | set(LIVE)) if "interrupted" in chosen else chosen
        rows = self._conn().execute(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE status IN "
            f"({', '.join('?' * len(asked))}) ORDER BY id", asked).fetchall()
        return [info for info in self._truthful([_run_info(row) for row in rows]) if info.status in chosen]

    def runs_with_config(self, config: RunConfig, statuses: Sequence[str] = STATUSES) -> list[int]:
        """Ids of the runs of exactly this configuration with one of ``statuses``, newest first
        (a study that reuses finished runs asks this for each run it needs)."""
        marks = ", ".join("?" * len(STATUSES))
        rows = self._conn().execute(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE config = ? AND status IN ({marks}) "
            f"ORDER BY id DESC", (config.to_json(indent=None), *STATUSES)).fetchall()
        infos = self._truthful([_run_info(row) for row in rows])  # an orphaned "running" is not reused
        return [info.id for info in infos if info.status in statuses]

    def list_runs(self) -> pd.DataFrame:
        """Every run, newest first, with its final validation metrics as "<task> <metric>" columns."""
        rows = self._conn().execute(
            "SELECT id, name, config, status, steps_done, created_at, finished_at, device, message, pid "
            "FROM runs ORDER BY id DESC").fetchall()
        records = []
        orphans = []
        for run_id, name, config_json, status, steps_done, created, finished, device, message, pid in rows:
            config = json.loads(config_json)
            if status in LIVE and not _owner_alive(pid):
                status, message, finished = "interrupted", gone_message(steps_done), time.time()
                orphans.append((run_id, steps_done))
            records.append({
                "id": run_id, "name": name, "suite": config.get("suite"),
                "tasks": ", ".join(config.get("tasks") or ()), "arch": config.get("arch"),
                "method": config.get("method"), "status": status, "steps_done": steps_done,
                "steps": config.get("steps"), "created_at": _local_time(created),
                "finished_at": _local_time(finished), "device": device, "message": message,
            })
        self._write_back(orphans)
        table = pd.DataFrame.from_records(records, columns=_LIST_COLUMNS)
        table["created_at"] = pd.to_datetime(table["created_at"])
        table["finished_at"] = pd.to_datetime(table["finished_at"])
        finals: dict[str, dict[int, float]] = {}
        # Oldest run first, so the columns follow the tasks' order as runs introduced them.
        for run_id in reversed(table["id"].tolist()):
            for task, metrics in self.final_metrics(run_id).items():
                for metric, value in _metric_first(metrics):
                    finals.setdefault(f"{task} {metric}", {})[run_id] = value
        for column, values in finals.items():
            table[column] = table["id"].map(values).astype(float)
        return table

    def rename(self, run_id: int, name: str) -> None:
        """Raises ValueError (one sentence) for a name longer than MAX_NAME_CHARS."""
        check_name(name)
        with self._transaction() as tx:
            tx.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id))

    def delete(self, run_id: int) -> None:
        """Remove a run and every row it wrote. A worker still writing to it fails its next batch
        (``append`` raises KeyError) and ends."""
        with self._transaction() as tx:
            tx.execute("DELETE FROM scalars WHERE run = ?", (run_id,))
            tx.execute("DELETE FROM matrices WHERE run = ?", (run_id,))
            tx.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def request_stop(self, run_id: int) -> None:
        """Raise the run's stop flag for the process running it; a live run whose process is gone
        (or one a reader presumed interrupted for that) is stopped here and now, as nobody else will."""
        with self._transaction() as tx:
            tx.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
            row = tx.execute("SELECT status, pid, message FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return
            status, pid, message = row
            orphaned = status in LIVE and not _owner_alive(pid)
            if orphaned or (status == "interrupted" and (message or "").startswith(_GONE_PREFIX)):
                tx.execute("UPDATE runs SET status = 'stopped', finished_at = ?, message = ? WHERE id = ?",
                           (time.time(), "stopped (no process was running it any more)", run_id))

    def stop_requested(self, run_id: int) -> bool:
        row = self._conn().execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def recover_interrupted(self) -> list[int]:
        """Runs left queued or running by a process that is gone become ``interrupted``; their
        records are kept. A run without an owner pid counts as orphaned. Returns their ids."""
        rows = self._conn().execute(
            "SELECT id, pid, steps_done FROM runs WHERE status IN (?, ?)", LIVE).fetchall()
        recovered = []
        for run_id, pid, steps_done in rows:
            if _owner_alive(pid):
                continue
            if self.finish_if_live(run_id, "interrupted", message=gone_message(steps_done)):
                recovered.append(run_id)
        return recovered

    def _truthful(self, infos: list[RunInfo]) -> list[RunInfo]:
        """The runs as they are: a queued or running one whose process is gone is ``interrupted``
        (whatever killed it — SIGKILL, a crash, a power cut — had no chance to say so). Written
        back when the store can take it at once; the reader's answer does not wait for that."""
        orphans = [info for info in infos if info.status in LIVE and not _owner_alive(info.pid)]
        if not orphans:
            return infos
        now = time.time()
        presumed = {info.id: dataclasses.replace(info, status="interrupted", finished_at=now,
                                                 message=gone_message(info.steps_done))
                    for info in orphans}
        self._write_back([(info.id, info.steps_done) for info in orphans])
        return [presumed.get(info.id, info) for info in infos]

    def _write_back(self, orphans: list[tuple[int, int]]) -> None:
        """Best effort: record the readers' ``interrupted`` (a locked or read-only store keeps its
        rows; the next reader presumes the same)."""
        if not orphans or self.read_only:
            return
        with contextlib.suppress(StoreError), self._transaction(patient=False) as tx:
            for run_id, steps_done in orphans:
                tx.execute("UPDATE runs SET status = 'interrupted', finished_at = ?, message = ? "
                           "WHERE id = ? AND status IN (?, ?)",
                           (time.time(), gone_message(steps_done), run_id, *LIVE))

    # --- records ---------------------------------------------------------------------------------

    def append(self, run_id: int, records: Sequence[StepRecord]) -> None:
        """Write a batch of step records in one transaction; raises KeyError if the run is gone."""
        if not records:
            return
        scalars: list[tuple] = []
        matrices: list[tuple] = []
        for record in records:
            scalars.extend((run_id, *row) for row in scalar_rows(record))
            matrices.extend((run_id, *row) for row in matrix_rows(record))
        last = max(record.step for record in records)
        with self._transaction() as tx:
            updated = tx.execute("UPDATE runs SET steps_done = MAX(steps_done, ?) WHERE id = ?",
                                 (last, run_id)).rowcount
            if not updated:
                raise KeyError(f"run {run_id} is not in the store (deleted?)")
            tx.executemany("INSERT INTO scalars (run, step, split, task, metric, value) "
                           "VALUES (?, ?, ?, ?, ?, ?)", scalars)
            if matrices:
                tx.executemany("INSERT INTO matrices (run, step, name, json) VALUES (?, ?, ?, ?)",
                               matrices)

    def scalars(self, run_id: int, *, split: str | None = None, metric: str | None = None,
                since_step: int = 0) -> pd.DataFrame:
        """Long-format numbers of one run with ``step > since_step``, sorted by step.

        Columns step, split, task, metric, value; task is "" for run-wide numbers (time_s,
        update_norm); a value that was NaN reads back as NaN.
        """
        where, values = _filters(run_id, since_step, split=split, metric=metric)
        rows = self._conn().execute(
            f"SELECT step, split, task, metric, value FROM scalars {_split_index(split, since_step)}"
            f"WHERE {where} ORDER BY step, rowid", values).fetchall()
        return _scalar_frame(rows, ["step", "split", "task", "metric", "value"])

    def matrices(self, run_id: int, *, name: str | None = None, since_step: int = 0) -> pd.DataFrame:
        """Columns step, name, value: "cosine" values are nested lists (T x T, the config's task
        order), sharing snapshots are DataFrames."""
        where, values = _filters(run_id, since_step, name=name)
        rows = self._conn().execute(
            f"SELECT step, name, json FROM matrices WHERE {where} ORDER BY step, rowid", values).fetchall()
        frame = pd.DataFrame(rows, columns=["step", "name", "value"])
        frame["step"] = frame["step"].astype("int64")
        frame["value"] = [_decode_matrix(text) for text in frame["value"]]
        return frame

    # --- sampled reads (long runs) -----------------------------------------------------------------

    def scalars_sampled(self, run_id: int, *, points: int, split: str | None = None,
                        metric: str | None = None) -> pd.DataFrame:
        """:meth:`scalars` of a run, but at most ``points`` steps of each (split, metric): those
        with few steps whole, the others at ``points`` steps spread evenly over their range (the
        first recorded step at or after each of ``points`` evenly spaced targets), their last step
        always included. Same columns and order as :meth:`scalars`.

        For the first open of a long run: every lookup is an index seek (``scalars_by_metric``), so
        the cost grows with ``points``, not with the run (a min/max per bucket needs every row:
        measured 1.2 s per metric of a 200,000-step run, too slow for a page). Spikes between the
        sampled steps are therefore not guaranteed here; the pages' decimation keeps them for
        every row they do read (see mtl_core/engine/downsample.py)."""
        conn = self._conn()
        frames = []
        for group_split, group_metric in self._scalar_groups(run_id, split, metric):
            key = (int(run_id), group_split, group_metric)
            steps = self._sampled_steps(
                "scalars WHERE run = ? AND split = ? AND metric = ?", key, points)
            rows = conn.execute(
                "SELECT step, split, task, metric, value, rowid FROM scalars WHERE run = ? AND split = ? "
                "AND metric = ? AND step IN (SELECT value FROM json_each(?))",
                (*key, json.dumps(steps))).fetchall()
            frames.append(rows)
        rows = sorted((row for part in frames for row in part), key=lambda row: (row[0], row[5]))
        return _scalar_frame([row[:5] for row in rows], ["step", "split", "task", "metric", "value"])

    def matrices_sampled(self, run_id: int, *, points: int, name: str | None = None) -> pd.DataFrame:
        """:meth:`matrices` of a run at no more than ``points`` steps per matrix name, spread evenly,
        the last always included (the heatmap shows the latest; its history a bounded sample)."""
        conn = self._conn()
        names = [name] if name is not None else self._distinct_after(
            "SELECT name FROM matrices WHERE run = ? AND name > ? ORDER BY name LIMIT 1", int(run_id))
        rows: list[tuple] = []
        for each in names:
            key = (int(run_id), each)
            steps = self._sampled_steps("matrices WHERE run = ? AND name = ?", key, points)
            rows += conn.execute(
                "SELECT step, name, json, rowid FROM matrices WHERE run = ? AND name = ? "
                "AND step IN (SELECT value FROM json_each(?))", (*key, json.dumps(steps))).fetchall()
        rows.sort(key=lambda row: (row[0], row[3]))
        frame = pd.DataFrame([row[:3] for row in rows], columns=["step", "name", "value"])
        frame["step"] = frame["step"].astype("int64")
        frame["value"] = [_decode_matrix(text) for text in frame["value"]]
        return frame

    def _scalar_groups(self, run_id: int, split: str | None, metric: str | None) -> list[tuple[str, str]]:
        """The run's distinct (split, metric) pairs, found by skipping along ``scalars_by_metric``
        (a DISTINCT would read every row of a long run)."""
        splits = [split] if split is not None else self._distinct_after(
            "SELECT split FROM scalars WHERE run = ? AND split > ? ORDER BY split LIMIT 1", int(run_id))
        groups: list[tuple[str, str]] = []
        for each in splits:
            metrics = self._distinct_after(
                "SELECT metric FROM scalars WHERE run = ? AND split = ? AND metric > ? ORDER BY metric LIMIT 1",
                int(run_id), each)
            groups += [(each, found) for found in metrics]
        return [(s, m) for s, m in groups if (split is None or s == split) and (metric is None or m == metric)]

    def _distinct_after(self, query: str, *key: Any) -> list[str]:
        """Distinct values of an indexed column (the last parameter of ``query``) after ``key``,
        one index seek each."""
        found: list[str] = []
        previous = ""
        while (row := self._conn().execute(query, (*key, previous)).fetchone()) is not None:
            previous = row[0]
            found.append(previous)
        return found

    def _sampled_steps(self, source: str, key: tuple, points: int) -> list[int]:
        """At most ``points`` recorded steps of ``source`` (a table and its WHERE on ``key``): all
        of them when the step range is short, else one seek per evenly spaced target."""
        conn = self._conn()
        # Two queries: SQLite answers a lone MIN or MAX with one index seek, both at once by a scan.
        low = conn.execute(f"SELECT MIN(step) FROM {source}", key).fetchone()[0]
        high = conn.execute(f"SELECT MAX(step) FROM {source}", key).fetchone()[0]
        if low is None:
            return []
        if high - low + 1 <= points:
            return list(range(int(low), int(high) + 1))
        targets = [int(round(low + (high - low) * k / (points - 1))) for k in range(points)]
        found = conn.execute(
            f"SELECT DISTINCT (SELECT MIN(step) FROM {source} AND step >= t.value) "
            "FROM json_each(?) AS t", (*key, json.dumps(targets))).fetchall()
        return sorted({int(row[0]) for row in found if row[0] is not None} | {int(high)})

    def final_metrics(self, run_id: int) -> dict[str, dict[str, float]]:
        """The last validation value of each task and metric: {task: {metric: value}}."""
        rows = self._conn().execute(
            f"SELECT task, metric, value FROM scalars {_split_index('val', 0)}"
            "WHERE run = ? AND split = 'val' ORDER BY step, rowid",
            (run_id,)).fetchall()
        final: dict[str, dict[str, float]] = {}
        for task, metric, value in rows:
            final.setdefault(task, {})[metric] = math.nan if value is None else float(value)
        return final

    def last_step(self, run_id: int) -> int:
        row = self._conn().execute("SELECT steps_done FROM runs WHERE id = ?", (run_id,)).fetchone()
        return int(row[0]) if row else 0

    def export_csv(self, run_ids: Iterable[int]) -> str:
        """Tidy CSV of the runs' scalars: run_id, run_name, step, split, task, metric, value."""
        ids = [int(run_id) for run_id in run_ids]
        columns = ["run_id", "run_name", "step", "split", "task", "metric", "value"]
        rows: list[tuple] = []
        for run_id in ids:
            rows.extend(self._conn().execute(
                "SELECT s.run, r.name, s.step, s.split, s.task, s.metric, s.value FROM scalars s "
                "JOIN runs r ON r.id = s.run WHERE s.run = ? ORDER BY s.step, s.rowid", (run_id,)))
        frame = _scalar_frame(rows, columns)
        for column in ("run_name", "split", "task", "metric"):  # text; numbers keep their sign
            frame[column] = frame[column].map(spreadsheet_safe)
        return frame.to_csv(index=False)


def check_name(name: str) -> None:
    """Raise ValueError with one sentence if ``name`` cannot be a run's name: too long, or not one
    line of printable text (a carriage return in a name split its row of an exported CSV)."""
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"A run's name is at most {MAX_NAME_CHARS} characters (this one has "
                         f"{len(name):,}): shorten it.")
    if not name.isprintable():
        raise ValueError("A run's name is one line of printable text: remove the line breaks, tabs "
                         "and other control characters.")


def spreadsheet_safe(cell: Any) -> Any:
    """A text cell as a spreadsheet will show it, never run it: a leading ', where the text
    would start a formula (OWASP's rule for CSV injection)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


# --- records -> rows ---------------------------------------------------------------------------

def scalar_rows(record: StepRecord) -> Iterator[tuple[int, str, str, str, float | None]]:
    """(step, split, task, metric, value) for every number in a record."""
    step = record.step
    for task, value in record.loss.items():
        yield step, "train", task, "loss", _number(value)
    for task, value in record.weight.items():
        yield step, "train", task, "weight", _number(value)
    yield step, "train", "", "time_s", _number(record.time_s)
    if record.update_norm is not None:
        yield step, "train", "", "update_norm", _number(record.update_norm)
    for metric, values in (("grad_norm", record.grad_norm), ("cos_update", record.cos_update)):
        for task, value in (values or {}).items():
            yield step, "train", task, metric, _number(value)
    for task, metrics in (record.val or {}).items():
        for metric, value in metrics.items():
            yield step, "val", task, metric, _number(value)
    for layer, pairs in (record.layer_cosine or {}).items():  # split "layer": task = pair, metric = layer
        for pair, value in pairs.items():
            yield step, "layer", pair, layer, _number(value)


def matrix_rows(record: StepRecord) -> Iterator[tuple[int, str, str]]:
    """(step, name, JSON) for the cosine and affinity matrices and each sharing snapshot of a record."""
    for name, matrix in (("cosine", record.cosine), ("affinity", record.affinity)):
        if matrix is not None:
            yield record.step, name, _dumps([[_number(v) for v in row] for row in matrix])
    for name, frame in (record.snapshot or {}).items():
        yield record.step, name, _encode_frame(frame)


def _number(value: Any) -> float | None:
    # A non-finite number (a diverging loss, an affinity divided by zero) is stored as missing:
    # SQLite has no NaN and JSON has neither NaN nor inf, and one such value must not fail the run.
    number = float(value)
    return number if math.isfinite(number) else None


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _encode_frame(frame: pd.DataFrame) -> str:
    """pandas' "split" orientation ({"index", "columns", "data"}), NaN and +-inf as null."""
    data = [[_json_number(v) for v in row] for row in frame.to_numpy(dtype=object).tolist()]
    return _dumps({"index": frame.index.tolist(), "columns": frame.columns.tolist(), "data": data})


def _json_number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _decode_matrix(text: str) -> Any:
    data = json.loads(text)
    if isinstance(data, dict):
        frame = pd.DataFrame(data["data"], index=data["index"], columns=data["columns"])
        try:
            return frame.astype(float)
        except (TypeError, ValueError):
            return frame
    return [[math.nan if v is None else v for v in row] for row in data]


# --- helpers -------------------------------------------------------------------------------------

def default_name(config: RunConfig, run_id: int) -> str:
    suite = config.suite
    if user_tables.KEY_PATTERN.fullmatch(suite):  # a person's table: its file's name, not its hash
        with contextlib.suppress(ValueError):
            suite = user_tables.find_table(suite).spec.file_name or suite
    return f"{config.method} · {config.arch} · {suite} #{run_id}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie (exited, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _connect(path: Path, mode: str) -> _Connection:
    """A connection to the store's file; ``mode`` "rw" (it must exist) or "rwc" (create it)."""
    uri = f"{path.as_uri()}?mode={mode}"
    return sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False, factory=_Connection)


def _identity(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _is_locked(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _lock_wait(seconds: float | None) -> float:
    if seconds is not None:
        return float(seconds)
    text = os.environ.get("MTL_STORE_LOCK_WAIT_S")
    try:
        value = float(text) if text else LOCK_WAIT_S
    except ValueError:
        raise StoreError(f"MTL_STORE_LOCK_WAIT_S must be a number of seconds (got {text!r}).") from None
    if not (math.isfinite(value) and value >= 0):
        raise StoreError(f"MTL_STORE_LOCK_WAIT_S must be a number of seconds of 0 or more (got {text!r}).")
    return value


# Pids of processes whose ending a supervisor in this interpreter (the job manager) is about to
# record: from the moment one exits until its ending is written, readers here must not presume it
# interrupted (a page would briefly show "interrupted" for a run about to read "failed").
_SUPERVISED: set[int] = set()


def supervise(pid: int) -> None:
    """Readers in this process take ``pid`` for alive until :func:`release` (the job manager
    records its workers' endings)."""
    _SUPERVISED.add(int(pid))


def release(pid: int) -> None:
    _SUPERVISED.discard(int(pid))


def _owner_alive(pid: int | None) -> bool:
    """Whether a live run's owning process still runs (no pid: nobody owns it)."""
    return pid is not None and (int(pid) in _SUPERVISED or pid_alive(int(pid)))


def _add_missing_columns(tx: sqlite3.Connection) -> None:
    """Bring a store written by an older version up to this schema (CREATE TABLE IF NOT EXISTS
    leaves its tables as they were); its runs keep their rows and read back with an owner of None."""
    present = {row[1] for row in tx.execute("PRAGMA table_info(runs)")}
    if "owner" not in present:
        tx.execute("ALTER TABLE runs ADD COLUMN owner TEXT")


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)} (got {status!r})")


def _run_info(row: Sequence[Any]) -> RunInfo:
    """A ``runs`` row, selected as ``_RUN_COLUMNS``, with its config parsed."""
    values = dict(zip(_RUN_COLUMNS, row, strict=True))
    values["config"] = _load_config(values["config"])
    return RunInfo(**values)


def _load_config(text: str) -> RunConfig:
    try:
        return RunConfig.from_json(text)
    except ConfigError:
        # A run saved by a version with other knobs: show it as stored rather than fail the page.
        return RunConfig.model_construct(**json.loads(text))


def _local_time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds)


def _metric_first(metrics: dict[str, float]) -> list[tuple[str, float]]:
    """The task's own metric before its validation loss."""
    return sorted(metrics.items(), key=lambda item: item[0] == "loss")


def _filters(run_id: int, since_step: int, **equal: str | None) -> tuple[str, list[Any]]:
    clauses = ["run = ?"]
    values: list[Any] = [int(run_id)]
    for column, value in equal.items():
        if value is not None:
            clauses.append(f"{column} = ?")
            values.append(value)
    clauses.append("step > ?")
    values.append(int(since_step))
    return " AND ".join(clauses), values


def _split_index(split: str | None, since_step: int) -> str:
    """The index for a whole split of a run: for ``ORDER BY step`` SQLite prefers
    ``scalars_by_step`` and then reads every row of the run (a 200,000-step run's validation
    numbers: 0.69 s that way, 3 ms by ``scalars_by_metric``). A poll for new steps keeps the
    planner's choice: its range on ``scalars_by_step`` reads just those."""
    return "INDEXED BY scalars_by_metric " if split is not None and since_step == 0 else ""


def _scalar_frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    frame["step"] = frame["step"].astype("int64")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return frame
