"""Registries: the one list of suites, architectures and methods, with what a person needs to see.

Pages, the CLI, the catalogue and the tests all read these. Entries are plain metadata and name
their implementation as ``"module:attribute"``, resolved on first use, so that listing what exists
(and validating a configuration) never imports torch: a page that only shows choices stays fast.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

KnobValue = float | int | bool | str


@dataclass(frozen=True, kw_only=True)
class Knob:
    """One hyper-parameter a person can set, with its range and a sentence of help."""

    name: str
    label: str
    default: KnobValue
    help: str
    # "floats": a comma-separated list of numbers ("1, 0.5"), each within [low, high]; "" is the
    # empty list. A method's floats knob holds one number per task (RunConfig checks the count).
    kind: Literal["float", "int", "bool", "choice", "floats"] = "float"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    log: bool = False  # a slider should move on a log scale (learning rates, temperatures)

    def validate(self, value: Any) -> KnobValue:
        """Coerce ``value`` (possibly a string from a URL) to this knob's type, or raise ValueError."""
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"true", "1", "yes", "false", "0", "no"}:
                return value.lower() in {"true", "1", "yes"}
            raise ValueError(f"{self.name} must be true or false (got {value!r})")
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(self.choices)} (got {value!r})")
            return str(value)
        if self.kind == "floats":
            return self._validate_floats(value)
        number = _to_number(self.name, value, integer=self.kind == "int")
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise ValueError(f"{self.name} must be between {self.low:g} and {self.high:g} (got {number:g})")
        return number

    def allowed(self) -> str:
        """The values this knob takes, in words: "0 to 7", "a / b / c", "on / off" (the catalogue
        page and the CLI's ``catalogue`` show it)."""
        if self.kind == "bool":
            return "on / off"
        if self.kind == "choice":
            return " / ".join(self.choices)
        bounds = f"{self.low:g} to {self.high:g}" if self.low is not None and self.high is not None else "any number"
        kind = {"int": "whole number, ", "floats": "one per task, each "}.get(self.kind, "")
        return f"{kind}{bounds}{', log scale' * self.log}"

    def _validate_floats(self, value: Any) -> str:
        """A list of numbers, as text ("1, 0.5") or a sequence, to its canonical text: the same
        list always reads the same, so configs compare equal and URLs round-trip."""
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",")]
            if parts == [""]:
                parts = []
        elif isinstance(value, list | tuple):
            parts = list(value)
        else:
            raise ValueError(f"{self.name} must be a comma-separated list of numbers (got {value!r})")
        numbers = []
        for part in parts:
            if part == "":
                raise ValueError(f"{self.name} has an empty entry: write numbers separated by commas "
                                 f"(got {value!r})")
            try:
                numbers.append(_to_number(self.name, part, integer=False))
            except ValueError:
                raise ValueError(f"{self.name} must be a comma-separated list of finite numbers "
                                 f"(got {part!r} in {value!r})") from None
        for number in numbers:
            if self.low is not None and number < self.low:
                raise ValueError(f"{self.name}: every number must be at least {self.low:g} (got {number:g})")
            if self.high is not None and number > self.high:
                raise ValueError(f"{self.name}: every number must be at most {self.high:g} (got {number:g})")
        return ", ".join(_short_float(number) for number in numbers)


def parse_floats(text: str) -> tuple[float, ...]:
    """The numbers of a validated "floats" knob value ("" is the empty tuple)."""
    return tuple(float(part) for part in text.split(",")) if text.strip() else ()


def _short_float(number: float) -> str:
    text = repr(float(number))
    return text.removesuffix(".0")


def _to_number(name: str, value: Any, *, integer: bool) -> float | int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number (got {value!r})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number (got {value!r})") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number (got {value!r})")
    if integer:
        if number != int(number):
            raise ValueError(f"{name} must be a whole number (got {value!r})")
        return int(number)
    return number


@dataclass(frozen=True, kw_only=True)
class Paper:
    authors: str
    title: str
    venue: str
    year: int
    arxiv: str | None = None

    @property
    def url(self) -> str | None:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else None

    def cite(self) -> str:
        return f"{self.authors}, “{self.title}”, {self.venue} {self.year}"


@dataclass(frozen=True, kw_only=True)
class Entry:
    """What every registered thing has: a key, a display name, help, knobs and where it lives."""

    key: str
    name: str
    summary: str
    factory: str  # "module:attribute", imported on first use
    knobs: tuple[Knob, ...] = ()
    paper: Paper | None = None
    # e.g. {"simplified": "<one plain sentence on where the playground departs from the paper>"}
    extra: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        module, _, attribute = self.factory.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def knob(self, name: str) -> Knob:
        for knob in self.knobs:
            if knob.name == name:
                return knob
        raise KeyError(name)

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, KnobValue]:
        """All knobs with defaults filled in; unknown names and bad values raise ValueError."""
        known = {knob.name for knob in self.knobs}
        unknown = sorted(set(params) - known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise ValueError(f"{self.name} has no setting {', '.join(map(repr, unknown))} (settings: {allowed})")
        values = {knob.name: knob.validate(params.get(knob.name, knob.default)) for knob in self.knobs}
        # Knobs that constrain each other (a canvas that must hold both digits) say so in one
        # sentence: extra["check"](values) returns what is wrong, or None.
        check = self.extra.get("check")
        problem = check(values) if check is not None else None
        if problem:
            raise ValueError(problem)
        return values


@dataclass(frozen=True, kw_only=True)
class TaskInfo:
    """A task as the UI sees it, before any data is built."""

    name: str
    label: str
    kind: Literal["classification", "regression"]
    n_outputs: int
    metric: str  # e.g. "accuracy", "rmse"
    higher_is_better: bool
    help: str
    unit: str = ""
    classes: tuple[str, ...] = ()  # a classification task's class names, in index order (if not 0, 1, ...)


@dataclass(frozen=True, kw_only=True)
class SuiteInfo(Entry):
    tasks: tuple[TaskInfo, ...]
    default_tasks: tuple[str, ...]
    input_kind: Literal["vector", "image"]

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    def task(self, name: str) -> TaskInfo:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


@dataclass(frozen=True, kw_only=True)
class ArchInfo(Entry):
    category: str  # "hard sharing", "soft sharing", "baseline", ...


# The two per-step costs every gradient method states (its MethodInfo.cost names its default first).
JACOBIAN_COST = "T backward passes (Jacobian)"
FEATURES_COST = ("T backward passes through the task heads (gradients on the shared representation) "
                 "+ 1 backward pass")


@dataclass(frozen=True, kw_only=True)
class MethodInfo(Entry):
    kind: Literal["weighting", "aggregation"]
    category: str  # "loss weighting", "gradient modulation", "multi-objective", ...
    formula: str  # the update rule, LaTeX
    cost: str  # per step, in backward passes, e.g. "1 backward" or "T backward (Jacobian)"

    @property
    def needs_jacobian(self) -> bool:
        return self.kind == "aggregation"


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    """An ordered, keyed collection of entries; the order is the order a person sees.

    Besides the registered entries, keys with a given prefix may be *resolved* on demand (a
    person's own table, ``"table-<hash>"``, is a suite read from a stored spec): ``registry[key]``
    and ``key in registry`` find them, while iterating, ``keys()`` and ``len()`` list only the
    registered entries. See :meth:`add_resolver`.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, E] = {}
        self._resolvers: dict[str, str] = {}  # key prefix -> "module:attribute"
        self._resolved: dict[str, E] = {}  # found once, kept: what a resolver finds never changes

    def register(self, entry: E) -> E:
        if entry.key in self._entries:
            raise ValueError(f"{self.kind} {entry.key!r} is registered twice")
        if any(entry.key.startswith(prefix) for prefix in self._resolvers):
            raise ValueError(f"{self.kind} {entry.key!r} starts with a prefix that a resolver owns")
        self._entries[entry.key] = entry
        return entry

    def add_resolver(self, prefix: str, resolver: str) -> None:
        """Keys starting with ``prefix`` are looked up by ``resolver`` (``"module:attribute"``,
        imported on first use like a factory): a callable ``key -> entry`` that raises ValueError
        with one sentence for a person when there is no such entry. What it finds is kept for the
        life of the process, so a resolver must only find entries that never change."""
        if any(key.startswith(prefix) for key in self._entries):
            raise ValueError(f"{self.kind} keys starting with {prefix!r} are registered already")
        self._resolvers[prefix] = resolver

    def __getitem__(self, key: str) -> E:
        try:
            return self._entries[key]
        except (KeyError, TypeError):
            pass
        resolved = self._resolve(key)
        if resolved is not None:
            return resolved
        raise ValueError(f"unknown {self.kind} {key!r} (choose from {', '.join(self._entries)})")

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key in self._entries:
            return True
        try:
            return self._resolve(key) is not None
        except ValueError:
            return False

    def _resolve(self, key: object) -> E | None:
        """The entry a resolver finds for ``key``; None if no resolver owns the key's prefix."""
        if not isinstance(key, str):
            return None
        if key in self._resolved:
            return self._resolved[key]
        for prefix, resolver in self._resolvers.items():
            if key.startswith(prefix):
                module, _, attribute = resolver.partition(":")
                entry = getattr(importlib.import_module(module), attribute)(key)
                self._resolved[key] = entry
                return entry
        return None

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        return list(self._entries)
