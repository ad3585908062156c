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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mtl_core.config import RunConfig

MAX_ACTIVE_ENV = "MTL_MAX_QUEUED_PER_SESSION"
MAX_STEPS_ENV = "MTL_MAX_STEPS"
DEFAULT_MAX_ACTIVE = 12
DEFAULT_MAX_STEPS = 200_000
_CONFIG_MAX_STEPS = 1_000_000  # RunConfig's own bound: a cap above it would mean nothing


class LimitError(ValueError):
    """A submission goes over a per-session cap; the message is one sentence that says what the
    cap is and what to do."""


@dataclass(frozen=True)
class SessionLimits:
    max_active: int = DEFAULT_MAX_ACTIVE  # runs queued or running per session
    max_steps: int = DEFAULT_MAX_STEPS  # steps per run

    def __post_init__(self) -> None:
        if self.max_active < 1:
            raise ValueError(f"max_active must be at least 1 (got {self.max_active})")
        if not 1 <= self.max_steps <= _CONFIG_MAX_STEPS:
            raise ValueError(f"max_steps must be in [1, {_CONFIG_MAX_STEPS:,}] (got {self.max_steps})")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SessionLimits:
        """The caps set by ``$MTL_MAX_QUEUED_PER_SESSION`` and ``$MTL_MAX_STEPS``; a value that is
        not a whole number in range raises ValueError naming the variable (a server's set-up
        mistake, loud at start rather than a silent default)."""
        environ = os.environ if environ is None else environ
        return cls(max_active=_env_int(environ, MAX_ACTIVE_ENV, DEFAULT_MAX_ACTIVE, 1, 10_000),
                   max_steps=_env_int(environ, MAX_STEPS_ENV, DEFAULT_MAX_STEPS, 1, _CONFIG_MAX_STEPS))

    def check(self, configs: list[RunConfig], active: int) -> None:
        """Raise LimitError if a session with ``active`` runs queued or running may not add
        ``configs`` (all of them: a grid is queued whole or not at all)."""
        too_long = max((config.steps for config in configs), default=0)
        if too_long > self.max_steps:
            raise LimitError(f"A run here may train at most {self.max_steps:,} steps (this one asks "
                             f"for {too_long:,}): lower Steps, or run it from a terminal with "
                             "`python -m mtl_core run`.")
        if active + len(configs) > self.max_active:
            room = max(self.max_active - active, 0)
            asked = f"{len(configs)} more run{'s' * (len(configs) != 1)}"
            raise LimitError(f"You have {active} run{'s' * (active != 1)} queued or running and may "
                             f"have at most {self.max_active} at once, so {asked} cannot start"
                             f"{f' (room for {room})' if len(configs) > 1 and room else ''}: "
                             "wait for one to finish or stop one.")


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
