"""The run store: one SQLite file that workers write in batches and every page reads.

Three tables. ``runs`` holds one row per run (its config as JSON, status, timestamps, device, the
message that explains a status, the pid of the process that owns it, a stop flag and how many
steps it has done). ``scalars`` holds the curves in long format, one number per row: (run, step,
split, task, metric, value). ``matrices`` holds the T x T cosine matrices of the task gradients and
the architectures' sharing snapshots as JSON. Nothing is pickled: the file can be read by any
SQLite client, and a store written by an older version cannot run code.

WAL mode lets one writer and many readers work at once; each thread gets its own connection, so a
page's thread and a writer thread can share one Store object.
"""

from __future__ import annotations

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

STATUSES = ("queued", "running", "done", "stopped", "diverged", "failed", "interrupted")
TERMINAL = {"done", "stopped", "diverged", "failed", "interrupted"}
LIVE = ("queued", "running")

DEFAULT_PATH = Path("runs") / "mtl.db"
MAX_RUN_ID = 2**63 - 1  # SQLite's largest integer: a larger id (from a URL) names no run
_BUSY_TIMEOUT_S = 30.0

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
    steps_done INTEGER NOT NULL DEFAULT 0
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
                "message", "pid", "steps_done")
_LIST_COLUMNS = ["id", "name", "suite", "tasks", "arch", "method", "status", "steps_done", "steps",
                 "created_at", "finished_at", "device", "message"]


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


class Store:
    """The SQLite run store. ``path`` None: ``$MTL_STORE``, else ``./runs/mtl.db``."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        chosen = path if path is not None else os.environ.get("MTL_STORE") or DEFAULT_PATH
        # Absolute, so that a worker started in another directory opens the same file.
        self.path = Path(chosen).expanduser().absolute()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        with self._transaction() as tx:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    tx.execute(statement)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # --- connections ---------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit (isolation_level=None): reads see the latest commit; writes group
            # themselves explicitly in _transaction.
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            # In WAL mode NORMAL survives a crash of the process (not of the machine) without an
            # fsync per transaction: losing the last batch of a run on power loss is acceptable.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        # IMMEDIATE takes the write lock up front, so the busy timeout applies instead of a
        # deadlock error when two writers would upgrade read locks at once.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (others close when their threads' objects go)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- runs ------------------------------------------------------------------------------------

    def create_run(self, config: RunConfig, *, status: str = "queued", name: str | None = None,
                   pid: int | None = None) -> int:
        _check_status(status)
        now = time.time()
        with self._transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO runs (name, config, status, created_at, started_at, finished_at, pid) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name or "", config.to_json(indent=None), status, now,
                 now if status == "running" else None, now if status in TERMINAL else None, pid))
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

    def finish_if_live(self, run_id: int, status: str, *, message: str | None = None) -> bool:
        """Set a terminal status only if the run is still queued or running; True if it was.

        For whoever cleans up after a process that may or may not have recorded its own ending.
        """
        if status not in TERMINAL:
            raise ValueError(f"finish_if_live needs a terminal status (got {status!r})")
        with self._transaction() as tx:
            cursor = tx.execute(
                "UPDATE runs SET status = ?, finished_at = ?, message = COALESCE(?, message) "
                "WHERE id = ? AND status IN (?, ?)", (status, time.time(), message, run_id, *LIVE))
            return cursor.rowcount > 0

    def get_run(self, run_id: int) -> RunInfo | None:
        if not 0 <= int(run_id) <= MAX_RUN_ID:  # e.g. ?run=99999999999999999999 in a URL
            return None
        row = self._conn().execute(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        return None if row is None else _run_info(row)

    def run_infos(self, statuses: Iterable[str] | None = None) -> list[RunInfo]:
        """Every run (or those with one of ``statuses``), oldest first, configs parsed."""
        chosen = list(statuses) if statuses is not None else list(STATUSES)
        if not chosen:
            return []
        rows = self._conn().execute(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE status IN "
            f"({', '.join('?' * len(chosen))}) ORDER BY id", chosen).fetchall()
        return [_run_info(row) for row in rows]

    def runs_with_config(self, config: RunConfig, statuses: Sequence[str] = STATUSES) -> list[int]:
        """Ids of the runs of exactly this configuration with one of ``statuses``, newest first
        (a study that reuses finished runs asks this for each run it needs)."""
        marks = ", ".join("?" * len(statuses))
        rows = self._conn().execute(
            f"SELECT id FROM runs WHERE config = ? AND status IN ({marks}) ORDER BY id DESC",
            (config.to_json(indent=None), *statuses)).fetchall()
        return [int(row[0]) for row in rows]

    def list_runs(self) -> pd.DataFrame:
        """Every run, newest first, with its final validation metrics as "<task> <metric>" columns."""
        rows = self._conn().execute(
            "SELECT id, name, config, status, steps_done, created_at, finished_at, device, message "
            "FROM runs ORDER BY id DESC").fetchall()
        records = []
        for run_id, name, config_json, status, steps_done, created, finished, device, message in rows:
            config = json.loads(config_json)
            records.append({
                "id": run_id, "name": name, "suite": config.get("suite"),
                "tasks": ", ".join(config.get("tasks") or ()), "arch": config.get("arch"),
                "method": config.get("method"), "status": status, "steps_done": steps_done,
                "steps": config.get("steps"), "created_at": _local_time(created),
                "finished_at": _local_time(finished), "device": device, "message": message,
            })
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
        with self._transaction() as tx:
            tx.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))

    def stop_requested(self, run_id: int) -> bool:
        row = self._conn().execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def recover_interrupted(self) -> list[int]:
        """Runs left queued or running by a process that is gone become ``interrupted``; their
        records are kept. A run without an owner pid counts as orphaned. Returns their ids."""
        rows = self._conn().execute(
            "SELECT id, pid FROM runs WHERE status IN (?, ?)", LIVE).fetchall()
        recovered = []
        for run_id, pid in rows:
            if pid is not None and pid_alive(pid):
                continue
            if self.finish_if_live(run_id, "interrupted",
                                   message="interrupted: the process running it stopped; "
                                           "the steps recorded before are kept"):
                recovered.append(run_id)
        return recovered

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
            f"SELECT step, split, task, metric, value FROM scalars WHERE {where} ORDER BY step, rowid",
            values).fetchall()
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

    def final_metrics(self, run_id: int) -> dict[str, dict[str, float]]:
        """The last validation value of each task and metric: {task: {metric: value}}."""
        rows = self._conn().execute(
            "SELECT task, metric, value FROM scalars WHERE run = ? AND split = 'val' ORDER BY step, rowid",
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
        return _scalar_frame(rows, columns).to_csv(index=False)


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
    # SQLite has no NaN (it would store NULL anyway); say so explicitly. +-inf are kept.
    number = float(value)
    return None if math.isnan(number) else number


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
    return f"{config.method} · {config.arch} · {config.suite} #{run_id}"


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


def _scalar_frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    frame["step"] = frame["step"].astype("int64")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return frame
