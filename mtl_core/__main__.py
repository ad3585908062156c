"""The command line: ``python -m mtl_core run | sweep | list | export | catalogue | data | serve``.

``run`` trains in this process (no worker) and writes to the same store the app reads, so a run
started here shows up on the app's Runs page, live. Mistakes in the input end with one line on
stderr that starts with "error: " and exit code 2. SIGTERM or Ctrl-C ends a ``run`` or ``sweep``
after the current step: its runs are recorded ``interrupted`` with their steps kept, and the exit
code is 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).

Examples::

    python -m mtl_core run --suite synthetic --method ew --steps 300 --param suite.correlation=0.9
    python -m mtl_core run --config run-12.json --seed 3 --json
    python -m mtl_core run --data penguins.csv --targets species,body_mass_g --steps 300
    python -m mtl_core sweep --suite multidigits --methods ew,pcgrad --seeds 0,1,2 --steps 200
    python -m mtl_core list
    python -m mtl_core export 12 13 --csv --out runs.csv
    python -m mtl_core catalogue --json
    python -m mtl_core data download mnist
    python -m mtl_core serve --server.port 8501
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sqlite3
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import MAX_CONFIG_BYTES, ConfigError, RunConfig
from mtl_core.methods import METHODS
from mtl_core.registry import Entry, Knob
from mtl_core.runs import settings
from mtl_core.runs.store import MAX_NAME_CHARS, Store, StoreError, check_name
from mtl_core.suites import SUITES, downloads
from mtl_core.suites.user_tables import (
    LIMITS,
    TableError,
    TableSpec,
    add_search_root,
    prepare,
    read_table,
    store_table,
    tables_root,
)

if TYPE_CHECKING:
    from mtl_core.runs.worker import Outcome

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # the shell's code for "ended by Ctrl-C"
# --threads: torch's pool beyond a few threads per core only adds contention, and 100,000 threads
# crashed OpenMP (a segfault that left the run `running`); the server's MTL_TORCH_THREADS has the same bound.
MAX_THREADS = settings.MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
_GROUPS = ("suite", "arch", "method")
WIDTH = 100  # `list` and `catalogue` fit a terminal this wide


class UsageError(Exception):
    """A mistake in what the user typed: reported as one line, exit code 2."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or Ctrl-C) ended the command; ``signum`` gives its exit code, 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mtl_core", description="MTL Playground from the command line.")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{run,sweep,list,export,catalogue,data,serve}")

    run = commands.add_parser("run", help="train one run in this process and store its records")
    run.add_argument("--config", metavar="FILE", help="a run's config JSON (e.g. from the Runs page); "
                                                      "flags given as well override its values")
    run.add_argument("--suite", help="task suite, e.g. multidigits, synthetic")
    run.add_argument("--tasks", help="comma-separated tasks, e.g. left,right (default: the suite's)")
    run.add_argument("--arch", help="sharing architecture, e.g. hps")
    run.add_argument("--method", help="task-balancing method, e.g. ew")
    run.add_argument("--steps", type=int, help="optimiser steps")
    run.add_argument("--seed", type=int, help="random seed (same seed, same numbers)")
    run.add_argument("--lr", type=float, help="learning rate")
    run.add_argument("--optimizer", help="adam or sgd")
    run.add_argument("--batch-size", type=int, dest="batch_size")
    run.add_argument("--eval-every", type=int, dest="eval_every", help="validation every N steps")
    run.add_argument("--probe-every", type=int, dest="probe_every",
                     help="gradient diagnostics every N steps (0: never)")
    run.add_argument("--snapshot-every", type=int, dest="snapshot_every",
                     help="sharing snapshot every N steps (0: never)")
    run.add_argument("--affinity-every", type=int, dest="affinity_every",
                     help="lookahead task affinity (TAG) every N steps (0: never)")
    run.add_argument("--device", help="auto, cpu, cuda or mps")
    run.add_argument("--threads", type=int, help=f"torch CPU threads, 1 to {MAX_THREADS} (default: "
                     "$MTL_TORCH_THREADS or all cores but one, as in the app; CPU runs repeat bit for bit "
                     "with the same count)")
    run.add_argument("--param", action="append", default=[], metavar="GROUP.KNOB=VALUE",
                     help="a knob of the suite, arch or method, e.g. suite.correlation=0.9 (repeatable)")
    run.add_argument("--name", help=f"a name for the run, at most {MAX_NAME_CHARS} characters "
                     "(default: method · arch · suite #id)")
    run.add_argument("--json", action="store_true", help="print one JSON line of results on stdout")
    run.add_argument("--store", metavar="PATH", help="run store (default: $MTL_STORE or ./runs/mtl.db)")
    run.add_argument("--data", metavar="FILE.csv", help="train on your own table: it is stored beside the "
                     "run store (in its folder's tables/) and named by its hash, so the run's exported config "
                     f"re-runs it; at most {LIMITS.max_bytes // (1024 * 1024)} MB, {LIMITS.max_rows:,} rows, "
                     f"{LIMITS.max_columns} columns")
    run.add_argument("--targets", metavar="COLUMNS", help="with --data: the columns to predict, comma-separated "
                     "(two or more; each becomes a task)")
    run.add_argument("--inputs", metavar="COLUMNS", help="with --data: the columns to learn from (default: "
                     "every other usable column)")
    run.add_argument("--kinds", metavar="COLUMN=KIND,...", help="with --data: a target's kind where the "
                     "inferred one is wrong, e.g. grade=classification,price=regression")

    _add_sweep_parser(commands)

    listing = commands.add_parser("list", help="show the stored runs (fits a 100-column terminal; "
                                  "--json has every field)")
    listing.add_argument("--json", action="store_true", help="one JSON object per run, as a list")
    listing.add_argument("--store", metavar="PATH")

    catalogue = commands.add_parser("catalogue", help="the suites (with their tasks), architectures and "
                                    "methods, with their knobs")
    catalogue.add_argument("--json", action="store_true", help="the whole catalogue as one JSON object")

    export = commands.add_parser("export", help="a run's records as CSV, or its config as JSON")
    export.add_argument("runs", nargs="+", type=int, metavar="RUN", help="run ids")
    what = export.add_mutually_exclusive_group(required=True)
    what.add_argument("--csv", action="store_true", help="tidy CSV of every recorded number")
    what.add_argument("--config", action="store_true", help="the run's config JSON (one run)")
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    export.add_argument("--store", metavar="PATH")

    _add_data_parser(commands)

    serve = commands.add_parser("serve", help="check the server's MTL_* settings, then start the app "
                                "(`streamlit run app.py` with the arguments that follow)",
                                epilog="settings: " + "; ".join(f"{name}: {meaning}"
                                                                for name, meaning in settings.table()))
    serve.set_defaults(streamlit_args=[])  # what follows `serve` (e.g. --server.port 8501), see main()
    return parser


def main(argv: list[str] | None = None) -> int:
    in_main_thread = threading.current_thread() is threading.main_thread()  # main() from a thread: no handler
    previous = signal.signal(signal.SIGTERM, _raise_interrupted) if in_main_thread else None
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if args.command == "serve":
            args.streamlit_args = extra  # streamlit's own options, passed on as they are
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return {"run": cmd_run, "sweep": cmd_sweep, "list": cmd_list, "export": cmd_export,
                "catalogue": cmd_catalogue, "data": cmd_data, "serve": cmd_serve}[args.command](args)
    except (UsageError, ConfigError, StoreError, TableError) as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as error:  # a signal before a run began (e.g. during torch's import)
        print("interrupted", file=sys.stderr)
        return 128 + error.signum if isinstance(error, Interrupted) else EXIT_INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupted(signum: int, frame: Any) -> None:
    """SIGTERM outside a training loop: unwind like Ctrl-C, so that whatever holds runs (a sweep's
    job manager) marks them before the process ends. A second one while that happens is ignored."""
    signal.signal(signum, signal.SIG_IGN)
    raise Interrupted(signum)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


# --- run -----------------------------------------------------------------------------------------

_FLAG_FIELDS = ("suite", "tasks", "arch", "method", "steps", "seed", "lr", "optimizer", "batch_size",
                "eval_every", "probe_every", "snapshot_every", "affinity_every", "device")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The file's values (if any), then every flag given on top; raises ConfigError/UsageError."""
    data: dict[str, Any] = {}
    if args.config:
        data = RunConfig.from_json(_read_config_file(Path(args.config))).model_dump()
    for name in _FLAG_FIELDS:
        value = getattr(args, name)
        if value is not None:
            data[name] = value
    if args.suite is not None and args.tasks is None and args.config:
        data.pop("tasks", None)  # the file's tasks belong to the file's suite
    for item in args.param:
        key, equals, value = item.partition("=")
        group, dot, knob = key.strip().partition(".")
        if not equals or not dot or group not in _GROUPS or not knob:
            raise UsageError(f"--param must look like group.knob=value with group one of "
                             f"{', '.join(_GROUPS)} (got {item!r})")
        data.setdefault(f"{group}_params", {})[knob] = value.strip()
    return RunConfig.parse(data)


def _read_config_file(path: Path) -> bytes:
    """The bytes of a config file, its size checked before it is read (a 1 GB file was read whole
    before it was refused); the read is bounded too, for a file that grows meanwhile."""
    try:
        if not path.is_file():
            raise UsageError(f"no config file at {path}")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise UsageError(f"{path} is {size:,} bytes; a config file is at most "
                             f"{MAX_CONFIG_BYTES // 1024} KiB")
        with path.open("rb") as file:
            return file.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def _check_run_flags(args: argparse.Namespace) -> None:
    """The flags that are not part of the config, checked before anything is stored."""
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise UsageError(f"--threads must be between 1 and {MAX_THREADS} (4 per core on this machine; "
                         f"got {args.threads})")
    if args.name is not None:
        try:
            check_name(args.name)
        except ValueError as error:
            raise UsageError(f"--name: {error}".rstrip(".")) from None


def _store_data_table(args: argparse.Namespace) -> str:
    """``--data FILE --targets ...``: the table checked, then stored beside the run store; returns
    its suite key. A TableError (or a flag that is wrong) leaves nothing stored."""
    if args.suite is not None:
        raise UsageError("--data and --suite both name the data: give one of them")
    if not args.targets:
        raise UsageError("--data needs --targets: the columns to predict, e.g. --targets species,sex")
    _check_run_flags(args)
    path = Path(args.data)
    try:
        if not path.is_file():
            raise UsageError(f"no data file at {path}")
        size = path.stat().st_size
        with path.open("rb") as file:  # read one byte past the limit: read_table says it is too large
            raw = file.read(min(size, LIMITS.max_bytes) + 1)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    kinds = {}
    for item in _columns(args.kinds):
        column, equals, kind = item.rpartition("=")
        if not equals or not column.strip():
            raise UsageError(f"--kinds must look like column=classification,column=regression (got {item!r})")
        kinds[column.strip()] = kind.strip()
    spec = TableSpec.for_bytes(raw, path.name, targets=_columns(args.targets), inputs=_columns(args.inputs),
                               kinds=kinds)
    table = prepare(read_table(raw, path.name), spec)
    key = store_table(raw, spec, tables_root(args.store))
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    tasks = ", ".join(f"{task.name} ({task.kind})" for task in table.tasks)
    print(f"table {key}: {table.rows_used:,} rows, {len(table.features)} input features; tasks {tasks}",
          file=sys.stderr)
    return key


def _columns(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def cmd_run(args: argparse.Namespace) -> int:
    add_search_root(tables_root(args.store))  # a config naming a table stored beside this store
    if args.data is not None:
        args.suite = _store_data_table(args)
    elif args.targets is not None or args.inputs is not None or args.kinds is not None:
        raise UsageError("--targets, --inputs and --kinds describe the table of --data FILE: give --data too")
    config = config_from_args(args)
    _check_run_flags(args)
    store = _open_store(args.store)
    _set_up_torch(config, args.threads)
    stop = threading.Event()
    ended_by: list[int] = []  # the signal that ended the run, if one did

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise Interrupted(signum)  # a second signal: do not wait for the step
        ended_by.append(signum)
        stop.set()

    # The run carries this process's pid from the start: if it is killed (SIGKILL cannot be
    # caught), readers see the pid gone and show the run as interrupted.
    run_id = store.create_run(config, status="queued", name=args.name, pid=os.getpid())
    outcome = _train_here(store, run_id, config, stop, on_signal)
    if outcome is None:
        return EXIT_INTERRUPTED
    if ended_by and outcome.status == "stopped":
        outcome = _mark_interrupted(store, run_id, outcome, ended_by[0])
    _report_run(store, run_id, outcome, as_json=args.json)
    if ended_by and outcome.status == "interrupted":
        return 128 + ended_by[0]
    return 1 if outcome.status == "failed" else 0


def _mark_interrupted(store: Store, run_id: int, outcome: Outcome, signum: int) -> Outcome:
    """A run ended by a signal is ``interrupted`` (not ``stopped``: nobody pressed Stop)."""
    message = (f"interrupted by {signal.Signals(signum).name} after step {outcome.steps}; "
               f"the {outcome.steps} steps before are kept")
    store.set_status(run_id, "interrupted", message=message)
    return dataclasses.replace(outcome, status="interrupted", message=message)


def _set_up_torch(config: RunConfig, threads: int | None) -> None:
    """Import torch (only once the input is known good: the import takes a second), check the
    device and set the thread count the run records."""
    # torch and the engine's modules that import it: here, after the input checks, not at the
    # CLI's start (`list` and `--help` answer at once)
    import torch

    from mtl_core.engine.devices import default_threads, resolve_device

    try:
        resolve_device(config.device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    torch.set_num_threads(threads or default_threads())


def _train_here(store: Store, run_id: int, config: RunConfig, stop: threading.Event,
                on_signal: Callable[[int, Any], None]) -> Outcome | None:
    """Train ``run_id`` in this process with a progress bar; None if a second Ctrl-C cut a step short."""
    from mtl_core.runs.worker import execute_run  # the trainer, so torch: only for `run`

    in_main_thread = threading.current_thread() is threading.main_thread()  # main() from a thread: no handler
    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)} \
        if in_main_thread else {}
    bar = ProgressBar(config.steps, sys.stderr)
    try:
        return execute_run(store, run_id, stop=stop, on_record=bar.update)
    except KeyboardInterrupt:  # the second signal: leave now, the steps written so far are kept
        bar.close()
        steps = store.last_step(run_id)
        store.finish_if_live(run_id, "interrupted", message=f"interrupted during step {steps + 1}; "
                                                             f"the {steps} steps before are kept")
        print(f"run {run_id} interrupted", file=sys.stderr)
        return None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        bar.close()


def _report_run(store: Store, run_id: int, outcome: Outcome, *, as_json: bool) -> None:
    if outcome.message:
        print(f"run {run_id} {outcome.status}: {outcome.message}", file=sys.stderr)
    if as_json:
        result = {"run_id": run_id, "status": outcome.status, "steps": outcome.steps,
                  "seconds": round(outcome.seconds, 3), "metrics": _finite(store.final_metrics(run_id))}
        print(json.dumps(result, allow_nan=False), flush=True)
    else:
        print(f"run {run_id}: {outcome.status} after {outcome.steps} steps "
              f"({outcome.seconds:.1f} s), store {store.path}", file=sys.stderr)


class ProgressBar:
    """A one-line bar on stderr: steps, speed and the latest losses; redrawn at most 10 times a
    second on a terminal, every 10 s (as a new line) elsewhere."""

    WIDTH = 24

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = 0.1 if self.tty else 10.0
        self.start = time.monotonic()
        self.last_draw = self.start
        self.text = ""

    def update(self, record: Any) -> None:
        now = time.monotonic()
        self.text = self._render(record, now)
        if now - self.last_draw >= self.interval or record.step == self.total:
            self.last_draw = now
            self._draw()

    def _render(self, record: Any, now: float) -> str:
        fraction = min(record.step / self.total, 1.0)
        filled = int(round(fraction * self.WIDTH))
        rate = record.step / max(record.time_s, 1e-9)  # training speed, set-up excluded
        losses = " ".join(f"{task} {value:.4g}" for task, value in record.loss.items())
        return (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {record.step}/{self.total} "
                f"{rate:,.0f} steps/s  loss {losses}")

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.text + "\x1b[K")
        else:
            self.stream.write(self.text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.text:
            self.stream.write("\n")
            self.stream.flush()
        self.text = ""


# --- sweep ----------------------------------------------------------------------------------------

def _add_sweep_parser(commands: Any) -> None:
    sweep = commands.add_parser("sweep", help="train a grid (methods x archs x seeds) with worker "
                                "processes, plus the STL baselines, and print the results table")
    sweep.add_argument("--config", metavar="FILE", help="a config JSON for the shared settings")
    sweep.add_argument("--suite", help="task suite, e.g. multidigits")
    sweep.add_argument("--tasks", help="comma-separated tasks (default: the suite's)")
    sweep.add_argument("--methods", required=True, help="comma-separated methods, e.g. ew,pcgrad,mgda")
    sweep.add_argument("--archs", default="hps", help="comma-separated architectures (default: hps)")
    sweep.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    sweep.add_argument("--workers", type=int, help="worker processes at once (default: one per core; "
                       "each gets cores / workers torch threads)")
    sweep.add_argument("--no-baselines", action="store_true", dest="no_baselines",
                       help="do not train missing STL baselines (no delta-m for their runs)")
    sweep.add_argument("--steps", type=int, help="optimiser steps per run")
    sweep.add_argument("--lr", type=float, help="learning rate")
    sweep.add_argument("--optimizer", help="adam or sgd")
    sweep.add_argument("--batch-size", type=int, dest="batch_size")
    sweep.add_argument("--eval-every", type=int, dest="eval_every")
    sweep.add_argument("--probe-every", type=int, dest="probe_every")
    sweep.add_argument("--snapshot-every", type=int, dest="snapshot_every")
    sweep.add_argument("--affinity-every", type=int, dest="affinity_every")
    sweep.add_argument("--device", help="auto, cpu, cuda or mps")
    sweep.add_argument("--param", action="append", default=[], metavar="GROUP.KNOB=VALUE",
                       help="a knob of the suite, or of the first arch or method listed (repeatable)")
    sweep.add_argument("--json", action="store_true", help="print one JSON object of results on stdout")
    sweep.add_argument("--store", metavar="PATH", help="run store (default: $MTL_STORE or ./runs/mtl.db)")
    sweep.set_defaults(arch=None, method=None, seed=None)


def cmd_sweep(args: argparse.Namespace) -> int:
    # `list` and `export` answer without loading the sweep machinery (start-up time of the CLI)
    from mtl_core.runs import sweep as sweeps
    from mtl_core.runs.baselines import missing_baselines

    add_search_root(tables_root(args.store))  # a config naming a table stored beside this store
    configs = sweeps.make_grid(_sweep_base(args), args.methods, args.archs, args.seeds).configs()
    store = _open_store(args.store)
    baselines = [] if args.no_baselines else missing_baselines(store, configs)
    total = len(configs) + len(baselines)
    workers = args.workers if args.workers is not None else sweeps.default_workers(total)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {workers})")
    print(f"sweep: {len(configs)} runs + {len(baselines)} STL baselines on {workers} worker"
          f"{'s' * (workers != 1)}, store {store.path}", file=sys.stderr)
    started = time.monotonic()
    try:
        ids = sweeps.run_grid([*baselines, *configs], store_path=store.path, workers=workers,
                              on_progress=_SweepProgress(store))
    except KeyboardInterrupt as error:  # the job manager has marked the unfinished runs interrupted
        print("sweep interrupted; the finished runs are kept and the others are marked interrupted",
              file=sys.stderr)
        return 128 + error.signum if isinstance(error, Interrupted) else EXIT_INTERRUPTED
    seconds = time.monotonic() - started
    summaries = sweeps.run_summaries(store, ids[len(baselines):])
    summaries = sweeps.with_delta_m(summaries, sweeps.baseline_metrics(store, summaries))
    table = sweeps.results_table(summaries)
    if args.json:
        result = {"seconds": round(seconds, 3), "workers": workers, "run_ids": ids[len(baselines):],
                  "baseline_run_ids": ids[:len(baselines)],
                  "runs": [_finite(_plain(row)) for row in summaries.to_dict(orient="records")],
                  "table": [_finite(_plain(row)) for row in table.to_dict(orient="records")]}
        print(json.dumps(result, allow_nan=False, default=str), flush=True)
    else:
        print(sweeps.format_table(table, summaries))
        print(sweeps.BASELINE_NOTE)
        print(sweeps.NOISE_NOTE)
        print(f"{len(ids)} runs in {seconds:.1f} s", file=sys.stderr)
    return 1 if (summaries["status"] != "done").any() else 0


def _sweep_base(args: argparse.Namespace) -> RunConfig:
    """The grid's shared set-up: the flags, with the first method and architecture listed."""
    first_method = args.methods.split(",")[0].strip()
    first_arch = args.archs.split(",")[0].strip()
    return config_from_args(argparse.Namespace(**{
        **vars(args), "method": args.method or (first_method or None),
        "arch": args.arch or (first_arch or None)}))


class _SweepProgress:
    """Prints a line on stderr as each run of the grid ends."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: set[int] = set()

    def __call__(self, ids: list[int]) -> None:
        for run_id in ids:
            info = self.store.get_run(run_id)
            if info is not None and info.status not in ("queued", "running") and run_id not in self.seen:
                self.seen.add(run_id)
                print(f"[{len(self.seen)}/{len(ids)}] run {run_id} {info.config.method} · {info.config.arch} "
                      f"seed {info.config.seed}: {info.status} ({info.device})", file=sys.stderr)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A table row as JSON-ready values (tuples of tasks as lists, pandas' NA as None)."""
    import pandas as pd  # ~0.4 s: only `sweep --json` needs it

    return {key: (list(value) if isinstance(value, tuple) else None if value is pd.NA else value)
            for key, value in row.items()}


# --- list and export -------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    store = _open_store(args.store, create=False)
    runs = store.list_runs()
    if args.json:
        table = runs.assign(created_at=runs["created_at"].map(_iso), finished_at=runs["finished_at"].map(_iso))
        rows = [_finite(row) for row in table.to_dict(orient="records")]
        print(json.dumps(rows, allow_nan=False, default=str))
        return 0
    if runs.empty:
        print(f"no runs in {store.path}")
        return 0
    rows = [[str(run["id"]), str(run["name"] or ""), str(run["status"]), str(run["suite"]),
             str(run["method"]), str(run["arch"]), f"{run['steps_done']}/{run['steps']}", _final_summary(run)]
            for run in runs.to_dict(orient="records")]
    print("\n".join(fit_table(_LIST_HEADER, rows)))
    return 0


_LIST_HEADER = ("id", "name", "status", "suite", "method", "arch", "steps", "final metrics")
# The most each column may take before the table is squeezed; the last column gets what is left.
_LIST_CAPS = (6, 22, 11, 16, 14, 12, 13)
# Squeezed in this order, down to these widths, when a table is still wider than WIDTH.
_LIST_SQUEEZE = ((1, 12), (3, 8), (4, 8), (5, 6))
_LAST_MIN = 16
_ABBREVIATIONS = {"accuracy": "acc"}


def fit_table(header: Sequence[str], rows: list[list[str]], width: int = WIDTH) -> list[str]:
    """``rows`` as aligned text no wider than ``width``: each column as wide as its widest cell up
    to its cap, a long cell cut with "…", the last column given what is left."""
    widths = [min(cap, max(len(text) for text in [name, *(row[i] for row in rows)]))
              for i, (name, cap) in enumerate(zip(header, _LIST_CAPS, strict=False))]
    gaps = 2 * (len(header) - 1)
    for column, least in _LIST_SQUEEZE:
        excess = sum(widths) + gaps + _LAST_MIN - width
        if excess > 0:
            widths[column] = max(least, widths[column] - excess)
    last = max(len(row[-1]) for row in [list(header), *rows])
    widths.append(min(last, width - sum(widths) - gaps))
    return ["  ".join(_cut(cell, w).ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
            for cells in [list(header), *rows]]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _final_summary(run: dict[str, Any]) -> str:
    """Each task's final validation metric, as "left acc 0.912, right acc 0.887" ("-" if none yet)."""
    parts = []
    for task in [t.strip() for t in str(run.get("tasks") or "").split(",") if t.strip()]:
        metric = SUITES[run["suite"]].task(task).metric if run["suite"] in SUITES else None
        columns = [f"{task} {metric}"] if metric else [c for c in run if c.startswith(f"{task} ") and c != f"{task} loss"]
        for column in columns:
            value = run.get(column)
            if isinstance(value, float) and math.isfinite(value):
                name = column.split(" ", 1)[1]
                parts.append(f"{task} {_ABBREVIATIONS.get(name, name)} {value:.3g}")
                break
    return ", ".join(parts) or "-"


# --- catalogue -------------------------------------------------------------------------------------

def cmd_catalogue(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(catalogue_data(), allow_nan=False))
    else:
        print("\n".join(catalogue_lines()))
    return 0


def catalogue_data() -> dict[str, list[dict[str, Any]]]:
    """Every registered suite (with its tasks), architecture and method, with its knobs: the
    registries' metadata as plain JSON values."""
    def entry(item: Entry, **more: Any) -> dict[str, Any]:
        paper = None if item.paper is None else {**dataclasses.asdict(item.paper), "url": item.paper.url}
        return {"key": item.key, "name": item.name, "summary": item.summary, **more,
                "knobs": [dataclasses.asdict(knob) | {"choices": list(knob.choices)} for knob in item.knobs],
                "paper": paper}

    return {
        "suites": [entry(suite, input_kind=suite.input_kind, default_tasks=list(suite.default_tasks),
                         tasks=[dataclasses.asdict(task) for task in suite.tasks]) for suite in SUITES],
        "architectures": [entry(arch, category=arch.category) for arch in ARCHITECTURES],
        "methods": [entry(method, kind=method.kind, category=method.category, cost=method.cost,
                          needs_jacobian=method.needs_jacobian) for method in METHODS],
    }


def catalogue_lines(width: int = WIDTH) -> list[str]:
    """The catalogue as text no wider than ``width``: one block per entry, its knobs beneath."""
    lines = [f"TASK SUITES ({len(SUITES)})   run --suite KEY --tasks A,B --param suite.KNOB=VALUE", ""]
    for suite in SUITES:
        lines += _entry_head(suite, f"{suite.input_kind} inputs", width)
        lines.append("    tasks:")
        for task in suite.tasks:
            better = "higher is better" if task.higher_is_better else "lower is better"
            default = ", default" if task.name in suite.default_tasks else ""
            lines.append(_cut(f"      {task.name:<8} {task.kind:<15} {task.metric} ({better}{default})", width))
        lines += _knob_lines(suite.knobs, width) + [""]
    lines += [f"ARCHITECTURES ({len(ARCHITECTURES)})   run --arch KEY --param arch.KNOB=VALUE", ""]
    for arch in ARCHITECTURES:
        lines += _entry_head(arch, arch.category, width) + _knob_lines(arch.knobs, width) + [""]
    lines += [f"METHODS ({len(METHODS)})   run --method KEY --param method.KNOB=VALUE", ""]
    for method in METHODS:
        lines += _entry_head(method, f"{method.category}{', needs the Jacobian' * method.needs_jacobian}", width)
        lines += _knob_lines(method.knobs, width) + [""]
    return lines[:-1]


def _entry_head(entry: Entry, kind: str, width: int) -> list[str]:
    return [_cut(f"  {entry.key}  {entry.name} · {kind}", width),
            *textwrap.wrap(entry.summary, width, initial_indent="    ", subsequent_indent="    ")]


def _knob_lines(knobs: Sequence[Knob], width: int) -> list[str]:
    if not knobs:
        return ["    knobs: none"]
    lines = ["    knobs:"]
    for knob in knobs:
        default = "(empty)" if knob.default == "" else knob.default
        lines.append(_cut(f"      {knob.name:<16} default {default!s:<8} {knob.allowed()}", width))
    return lines



def cmd_export(args: argparse.Namespace) -> int:
    store = _open_store(args.store, create=False)
    missing = [run_id for run_id in args.runs if store.get_run(run_id) is None]
    if missing:
        raise UsageError(f"no run {', '.join(map(str, missing))} in {store.path}")
    if args.csv:
        text = store.export_csv(args.runs)
    else:
        if len(args.runs) != 1:
            raise UsageError("export --config takes one run id")
        info = store.get_run(args.runs[0])
        assert info is not None
        text = info.config.to_json() + "\n"
    if args.out:
        try:
            Path(args.out).write_text(text)
        except OSError as error:
            raise UsageError(f"cannot write {args.out}: {error.strerror}") from None
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# --- helpers ---------------------------------------------------------------------------------------

def _open_store(path: str | None, *, create: bool = True) -> Store:
    """The run store; with ``create=False`` (a command that only reads) a missing one is an error
    rather than a new empty database and its folders."""
    try:
        return Store(path, create=create)
    except StoreError as error:
        raise UsageError(str(error).rstrip(".")) from None
    except (OSError, sqlite3.Error) as error:  # an unwritable folder, a file that is not a store
        raise UsageError(f"cannot open the run store {path or '(default)'}: {error}") from None


# --- data ------------------------------------------------------------------------------------------

def _add_data_parser(commands: Any) -> None:
    data = commands.add_parser("data", help="download MNIST or Fashion-MNIST once, or show where they are kept")
    actions = data.add_subparsers(dest="action", required=True, metavar="{download,where}")
    fetch = actions.add_parser("download", help="fetch a data set's four files into the cache folder, "
                               "checking each against its published MD5 (files already there are kept)")
    fetch.add_argument("name", choices=list(downloads.DATASETS), help="the data set")
    actions.add_parser("where", help="print the cache folder ($MTL_DATA) and which data sets are complete")


def cmd_data(args: argparse.Namespace) -> int:
    if args.action == "where":
        print(f"cache folder: {downloads.cache_dir()} (set {downloads.ENV_VAR} to move it)")
        for name, data in downloads.DATASETS.items():
            print(f"  {name:<8} {_data_state(name)}  {data.title}, {downloads.dataset_dir(name)}")
        return 0
    name = args.name
    if downloads.is_complete(name):
        print(f"{downloads.DATASETS[name].title} is already in {downloads.dataset_dir(name)}", file=sys.stderr)
        return 0
    bar = _ByteBar(sys.stderr)
    try:
        folder = downloads.download(name, progress=bar.update)
    except downloads.DataUnavailable as error:
        bar.close()
        raise UsageError(_one_line(error)) from None
    bar.close()
    print(f"{downloads.DATASETS[name].title} downloaded and checked: {folder}", file=sys.stderr)
    return 0


def _data_state(name: str) -> str:
    missing = downloads.missing_files(name)
    if missing:
        return f"missing {len(missing)} of {len(downloads.DATASETS[name].files)} files"
    return "complete" if downloads.is_complete(name) else "corrupt (download it again)"


class _ByteBar:
    """Bytes, megabytes and percent on one line of stderr: redrawn at most 10 times a second on a
    terminal, every 10% (as a new line) elsewhere."""

    WIDTH = 24

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.tty = stream, stream.isatty()
        self.last_draw, self.last_tenth, self.drawn = 0.0, -1, False

    def update(self, done: int, total: int) -> None:
        fraction = min(done / total, 1.0) if total else 1.0
        now, tenth = time.monotonic(), int(fraction * 10)
        if self.tty and (now - self.last_draw >= 0.1 or done == total):
            self.stream.write("\r" + self._text(done, total, fraction) + "\x1b[K")
        elif not self.tty and (tenth != self.last_tenth or done == total):
            self.stream.write(self._text(done, total, fraction) + "\n")
        else:
            return
        self.last_draw, self.last_tenth, self.drawn = now, tenth, True
        self.stream.flush()

    def _text(self, done: int, total: int, fraction: float) -> str:
        filled = int(round(fraction * self.WIDTH))
        return (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done / 1e6:.1f} / {total / 1e6:.1f} MB "
                f"({done:,} bytes) {fraction:.0%}")

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = False


# --- serve ------------------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    """Check every MTL_* setting, then replace this process with ``streamlit run app.py`` (the
    server then owns the pid and its signals, as if started directly)."""
    found = settings.problems()
    if found:
        extra = f" ({len(found) - 1} more setting{'s' * (len(found) > 2)} to fix)" if len(found) > 1 else ""
        raise UsageError(found[0].rstrip(".") + extra)
    app = Path(__file__).resolve().parent.parent / "app.py"
    if not app.is_file():
        raise UsageError(f"no app at {app}: serve runs from a checkout of MTL Playground")
    argv = [sys.executable, "-m", "streamlit", "run", str(app), *args.streamlit_args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(app.parent)  # its .streamlit/config.toml (upload size, file watcher) is read from here
    os.execv(sys.executable, argv)
    return 0  # not reached: execv does not return


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write null (at any depth: rows hold lists and dicts)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _finite(value.item())
    return value


def _iso(value: Any) -> str | None:
    return None if value is None or value != value else value.isoformat(timespec="seconds")


if __name__ == "__main__":
    sys.exit(main())
