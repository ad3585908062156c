"""Per-session caps: what one person may ask of a server that many people share.

A classroom is thirty people on one server whose job manager trains one run at a time (on a
CPU). Without a cap, one person's twenty queued runs hold everyone else's back for an hour, and
one run of a million steps holds the only slot for the whole lesson. So each session (the app
passes its session id as the run's *owner*) may have at most ``max_active`` runs queued or
running at once, and each of its runs at most ``max_steps`` steps. Runs without an owner (the
command line, a sweep started from a terminal) are not capped: the person who runs them owns
the machine.

Both come from the environment, so whoever serves the app sets them for their room:
``MTL_MAX_QUEUED_PER_SESSION`` (default 12: a default Compare grid, two methods x three seeds
plus their STL baselines, fits) and ``MTL_MAX_STEPS`` (default 200,000 steps: several minutes on
a CPU for the shipped suites, while RunConfig itself allows 1,000,000). A live page keeps the
records of the run it shows, so the step cap also bounds what one open tab holds in the server.

Within those caps one run can still take the machine (a huge mixture of experts at batch 8,192: 13
GiB, no step in minutes), so each run's cost is estimated from its config before it is queued
(:mod:`mtl_core.runs.budget`) and refused, in one sentence naming the setting to lower, over
``MTL_MAX_RUN_MEMORY`` (bytes, e.g. ``2GiB`` or ``512MiB``; default a quarter of the machine's
memory, at most 4 GiB: the server, its sessions' pages and up to ``MTL_MAX_RUNS`` workers share the
rest, and the shipped suites' honest runs need well under 1 GiB) or ``MTL_MAX_RUN_SECONDS``
(estimated steps x seconds per step; default 21,600: six hours. The estimate runs high on a busy
machine -- 3 hours for a 100,000-step default run that trains in about 45 minutes on a quiet 2-core
one -- so the cap leaves room for every run the step cap allows on the shipped suites' default
set-ups, and what it stops are runs of days.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.runs import budget

MAX_ACTIVE_ENV = "MTL_MAX_QUEUED_PER_SESSION"
MAX_STEPS_ENV = "MTL_MAX_STEPS"
DEFAULT_MAX_ACTIVE = 12
DEFAULT_MAX_STEPS = 200_000
_CONFIG_MAX_STEPS = 1_000_000  # RunConfig's own bound: a cap above it would mean nothing
MAX_RUN_MEMORY_ENV = "MTL_MAX_RUN_MEMORY"
MAX_RUN_SECONDS_ENV = "MTL_MAX_RUN_SECONDS"
DEFAULT_MAX_RUN_SECONDS = 6 * 3600
_MEMORY_CEILING = 4 * 2**30
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}
# The pages' labels of the training settings (pages/_widgets.py _LABELS; tests hold the two equal):
# a refusal names the setting as the person sees it on the form.
TRAINING_LABELS = {"batch_size": "Batch size", "steps": "Steps", "probe_every": "Probe gradients every",
                   "eval_every": "Evaluate every", "snapshot_every": "Snapshot sharing every"}


def machine_memory() -> int:
    """The machine's physical memory in bytes (4 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return _MEMORY_CEILING


def default_max_run_memory() -> int:
    """A quarter of the machine's memory, at most 4 GiB (see the module docstring)."""
    return min(machine_memory() // 4, _MEMORY_CEILING)


class LimitError(ValueError):
    """A submission goes over a per-session cap; the message is one sentence that says what the
    cap is and what to do."""


@dataclass(frozen=True)
class SessionLimits:
    max_active: int = DEFAULT_MAX_ACTIVE  # runs queued or running per session
    max_steps: int = DEFAULT_MAX_STEPS  # steps per run
    max_run_memory: int = field(default_factory=default_max_run_memory)  # bytes, estimated peak per run
    max_run_seconds: float = DEFAULT_MAX_RUN_SECONDS  # estimated seconds per run

    def __post_init__(self) -> None:
        if self.max_active < 1:
            raise ValueError(f"max_active must be at least 1 (got {self.max_active})")
        if not 1 <= self.max_steps <= _CONFIG_MAX_STEPS:
            raise ValueError(f"max_steps must be in [1, {_CONFIG_MAX_STEPS:,}] (got {self.max_steps})")
        if self.max_run_memory < 1 or not self.max_run_seconds > 0:
            raise ValueError("max_run_memory and max_run_seconds must be positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SessionLimits:
        """The caps set by ``$MTL_MAX_QUEUED_PER_SESSION``, ``$MTL_MAX_STEPS``,
        ``$MTL_MAX_RUN_MEMORY`` and ``$MTL_MAX_RUN_SECONDS``; a value that is not a number in range
        raises ValueError naming the variable (a server's set-up mistake, loud at start rather than
        a silent default)."""
        environ = os.environ if environ is None else environ
        return cls(max_active=_env_int(environ, MAX_ACTIVE_ENV, DEFAULT_MAX_ACTIVE, 1, 10_000),
                   max_steps=_env_int(environ, MAX_STEPS_ENV, DEFAULT_MAX_STEPS, 1, _CONFIG_MAX_STEPS),
                   max_run_memory=_env_bytes(environ, MAX_RUN_MEMORY_ENV, default_max_run_memory()),
                   max_run_seconds=_env_int(environ, MAX_RUN_SECONDS_ENV, DEFAULT_MAX_RUN_SECONDS,
                                            1, 365 * 24 * 3600))

    def check(self, configs: list[RunConfig], active: int) -> None:
        """Raise LimitError if a session with ``active`` runs queued or running may not add
        ``configs`` (all of them: a grid is queued whole or not at all)."""
        self.check_cost(configs)
        self.check_count(configs, active)

    def check_cost(self, configs: list[RunConfig]) -> None:
        """The caps on each run alone (its steps, its estimated memory and time): whoever submits it,
        whatever else is queued. The estimate may take seconds for a set-up not seen before, so a
        caller that holds a lock others need asks this first, outside it."""
        too_long = max((config.steps for config in configs), default=0)
        if too_long > self.max_steps:
            raise LimitError(f"A run here may train at most {self.max_steps:,} steps (this one asks "
                             f"for {too_long:,}): lower Steps, or run it from a terminal with "
                             "`python -m mtl_core run`.")
        self.check_budget(configs)

    def check_count(self, configs: list[RunConfig], active: int) -> None:
        """The cap on a session's runs queued or running at once."""
        if active + len(configs) > self.max_active:
            room = max(self.max_active - active, 0)
            asked = f"{len(configs)} more run{'s' * (len(configs) != 1)}"
            raise LimitError(f"You have {active} run{'s' * (active != 1)} queued or running and may "
                             f"have at most {self.max_active} at once, so {asked} cannot start"
                             f"{f' (room for {room})' if len(configs) > 1 and room else ''}: "
                             "wait for one to finish or stop one.")

    def check_budget(self, configs: list[RunConfig]) -> None:
        """Raise LimitError, naming the setting to lower and to what, if a run's estimated peak
        memory or total time goes over this server's budget (:mod:`mtl_core.runs.budget`)."""
        for config in configs:
            cost = budget.estimate(config)
            if cost.memory_bytes > self.max_run_memory:
                raise LimitError(f"This run would need about {_bytes(cost.memory_bytes)} of memory (the server "
                                 f"allows {_bytes(self.max_run_memory)} per run): "
                                 f"{_memory_advice(config, cost, self.max_run_memory)}.")
            seconds = cost.seconds(config.steps)
            if seconds > self.max_run_seconds:
                raise LimitError(f"This run would train for about {_duration(seconds)} (the server allows "
                                 f"{_duration(self.max_run_seconds)} per run): "
                                 f"{_time_advice(config, cost, self.max_run_seconds)}.")


def _memory_advice(config: RunConfig, cost: budget.Estimate, cap: int) -> str:
    """What to lower: the batch size, to the largest that fits, when the batch is what fills the
    memory; else (or as well) the architecture's largest size knob."""
    room = cap - (cost.memory_bytes - cost.batch_bytes)
    largest = int(config.batch_size * room / cost.batch_bytes) if cost.batch_bytes and room > 0 else 0
    size_knob = _largest_size_knob(config)
    batch = TRAINING_LABELS["batch_size"]
    if largest >= 1:
        advice = f"lower {batch} from {config.batch_size:,} to at most {_round_down(largest):,}"
        return f"{advice}, or {size_knob}" if size_knob else advice
    if size_knob:
        return f"lower {size_knob}, and {batch} ({config.batch_size:,})"
    return f"lower {batch} ({config.batch_size:,}) or pick fewer tasks"


def _time_advice(config: RunConfig, cost: budget.Estimate, cap: float) -> str:
    """What to lower: the steps, to as many as fit, and what makes each step slow."""
    fit = int(cap / cost.seconds_per_step)
    steps = TRAINING_LABELS["steps"]
    slower = f"{TRAINING_LABELS['batch_size']} ({config.batch_size:,})"
    size_knob = _largest_size_knob(config)
    if size_knob:
        slower = f"{slower} or {size_knob}"
    if fit >= 1:
        return f"lower {steps} from {config.steps:,} to at most {_round_down(fit):,}, or {slower}"
    return f"lower {slower}: one step alone would take about {_duration(cost.seconds_per_step)}"


def _largest_size_knob(config: RunConfig) -> str | None:
    """The architecture's whole-number knob set furthest above its default (as a ratio; the larger
    value on a tie: widths before counts), as "Label (value)"."""
    best, label = (1.0, 0), None
    for knob in ARCHITECTURES[config.arch].knobs:
        value = config.arch_params.get(knob.name)
        if knob.kind != "int" or not isinstance(value, int) or not isinstance(knob.default, int) or knob.default < 1:
            continue
        if (value / knob.default, value) > best:
            best, label = (value / knob.default, value), f"{knob.label} ({value:,})"
    return label


def _round_down(value: int) -> int:
    """Two significant figures, rounded down: a suggestion that still fits."""
    if value < 100:
        return max(value, 1)
    scale = 10 ** (len(str(value)) - 2)
    return value // scale * scale


def _bytes(size: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{int(size)} bytes"


def _duration(seconds: float) -> str:
    for unit, scale in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * scale:
            return f"{seconds / scale:,.0f} {unit}"
    return f"{seconds:,.0f} seconds" if seconds >= 2 else f"{seconds:.1f} seconds"


def _env_bytes(environ: Mapping[str, str], name: str, default: int) -> int:
    """A size like ``2GiB``, ``512MiB``, ``1.5G`` or a plain number of bytes."""
    text = environ.get(name, "").strip()
    if not text:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"${name} must be a size in bytes such as 2GiB or 512MiB (got {text!r})")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 2**20:
        raise ValueError(f"${name} must be at least 1MiB (got {text!r})")
    return value


def _env_int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"${name} must be a whole number (got {text!r})") from None
    if not low <= value <= high:
        raise ValueError(f"${name} must be in [{low:,}, {high:,}] (got {value:,})")
    return value
