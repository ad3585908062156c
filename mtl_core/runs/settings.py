"""The server's settings: every ``MTL_*`` environment variable the app reads, checked at start.

A mistyped setting (``MTL_MAX_RUNS=abc``) used to surface as a traceback on the first page that
read it, minutes into a lesson. :func:`problems` checks them all at once and returns one sentence
per bad value; ``python -m mtl_core serve`` refuses to start on any, and the app shows the first
on every page when the server was started directly with ``streamlit run``.

:data:`SETTINGS` is the one registry: a module that reads a new variable adds a row here (name,
what it means, a check), and both the start-up check and the README's table follow.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mtl_core.runs.limits import SessionLimits

# A check takes the variable's text (stripped, never empty: unset or empty means "the default")
# and returns what is wrong with it, as the end of a sentence, or None when it is fine.
Check = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Setting:
    name: str
    meaning: str  # what it sets, and its default, as the README's table says it
    check: Check


def whole_number(low: int, high: int | None = None) -> Check:
    """A whole number in [low, high] (no upper bound when ``high`` is None)."""
    def check(text: str) -> str | None:
        if not (text.isascii() and text.isdigit()):
            return f"must be a whole number (got {text!r})"
        value = int(text)
        if value < low or (high is not None and value > high):
            bound = f"between {low:,} and {high:,}" if high is not None else f"at least {low:,}"
            return f"must be {bound} (got {value:,})"
        return None
    return check


def seconds(*, least: float = 0.0) -> Check:
    """A finite number of seconds of at least ``least``."""
    def check(text: str) -> str | None:
        try:
            value = float(text)
        except ValueError:
            return f"must be a number of seconds (got {text!r})"
        if not math.isfinite(value) or value < least:
            return f"must be a finite number of seconds of at least {least:g} (got {text!r})"
        return None
    return check


def secret_text(least: int) -> Check:
    """A secret of at least ``least`` characters (a short one can be guessed)."""
    def check(text: str) -> str | None:
        if len(text) < least:
            return f"must be at least {least} characters long (got {len(text)})"
        return None
    return check


def store_file(text: str) -> str | None:
    """A path for the run store's SQLite file: not a folder."""
    if Path(text).expanduser().is_dir():
        return f"must name a file (the run store's database), not the folder {text!r}"
    return None


def data_folder(text: str) -> str | None:
    """A path for the downloaded data sets' folder: not a file."""
    if Path(text).expanduser().is_file():
        return f"must name a folder (where downloaded data sets are kept), not the file {text!r}"
    return None


def read_by(parse: Callable[[Mapping[str, str]], object], name: str) -> Check:
    """The check of a module that reads ``name`` itself (``parse(environ)`` raises ValueError
    "$NAME must be ..."): the start-up check and the reader then never disagree."""
    def check(text: str) -> str | None:
        try:
            parse({name: text})
        except ValueError as error:
            return str(error).removeprefix(f"${name} ").rstrip(".")
        return None
    return check


def _cores() -> int:
    return os.cpu_count() or 1


# torch's pool beyond a few threads per core only adds contention (and 100,000 threads crashed
# OpenMP): the same bound as the CLI's --threads.
MAX_THREADS_PER_CORE = 4

SETTINGS: tuple[Setting, ...] = (
    Setting("MTL_STORE", "the run store's SQLite file (default ./runs/mtl.db)", store_file),
    Setting("MTL_STORE_LOCK_WAIT_S", "seconds a write waits for a locked store before it fails",
            seconds()),
    Setting("MTL_MAX_RUNS", "runs trained at once by the server's worker processes (default 1)",
            whole_number(1, 1024)),
    Setting("MTL_MAX_QUEUED", "runs that may wait at once, all people together", whole_number(1)),
    Setting("MTL_MAX_QUEUED_PER_SESSION", "runs one person may have queued or running (default 12)",
            read_by(SessionLimits.from_env, "MTL_MAX_QUEUED_PER_SESSION")),
    Setting("MTL_MAX_STEPS", "steps one run started from the app may train (default 200,000)",
            read_by(SessionLimits.from_env, "MTL_MAX_STEPS")),
    Setting("MTL_TORCH_THREADS", "torch CPU threads per run (default: all cores but one)",
            whole_number(1, MAX_THREADS_PER_CORE * _cores())),
    Setting("MTL_MAX_RUN_MEMORY", "the memory one run may be estimated to need, e.g. 2GiB or 512MiB "
            "(default a quarter of the machine's)", read_by(SessionLimits.from_env, "MTL_MAX_RUN_MEMORY")),
    Setting("MTL_MAX_RUN_SECONDS", "the time one run may be estimated to take, in whole seconds",
            read_by(SessionLimits.from_env, "MTL_MAX_RUN_SECONDS")),
    # mtl_core.lab reads it (max_seconds); runs may not import lab, so the same rule is written here.
    Setting("MTL_MAX_LAB_SECONDS", "the time one Gradient lab comparison may take, in seconds (default 20)",
            seconds(least=0.001)),
    Setting("MTL_SECRET", "the key that signs each browser's identity (default: a file beside the store)",
            secret_text(16)),
    Setting("MTL_LECTURER_KEY", "the key that lets a lecturer manage every run (default: none)",
            secret_text(8)),
    Setting("MTL_DATA", "the folder for downloaded data sets, MNIST and Fashion-MNIST (default "
            "$XDG_CACHE_HOME/mtl-playground, else ~/.cache/mtl-playground)", data_folder),
)


def problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """One sentence for each ``MTL_*`` setting whose value is wrong (empty: all is well).
    An unset or empty variable means its default and is always fine."""
    environ = os.environ if environ is None else environ
    found = []
    for setting in SETTINGS:
        text = environ.get(setting.name, "").strip()
        if text:
            problem = setting.check(text)
            if problem is not None:
                found.append(f"The setting {setting.name} {problem}: fix it or unset it, "
                             "then start the server again.")
    return found


def table() -> list[tuple[str, str]]:
    """(name, meaning) of every setting, for the README and ``serve --help``."""
    return [(setting.name, setting.meaning) for setting in SETTINGS]
