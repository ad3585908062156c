"""RunConfig: everything that defines a run, validated, with exact JSON and URL round trips.

Validation speaks to a person: ``RunConfig.parse`` raises :class:`ConfigError` whose lines read
like "lr: must be greater than 0 (got -1)". No torch here: pages validate without importing it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mtl_core.architectures import ARCHITECTURES
from mtl_core.methods import METHODS
from mtl_core.registry import KnobValue, parse_floats
from mtl_core.suites import SUITES

# Parameter groups in a URL query are flattened as "<group>.<knob>", e.g. "method.alpha=1.5".
_PARAM_GROUPS = {"suite_params": "suite", "arch_params": "arch", "method_params": "method"}
MAX_CONFIG_BYTES = 64 * 1024  # a config is ~1 KiB; a file this large is not one
MAX_CONFIG_DEPTH = 8  # a config nests two levels; deeper input is refused before json.loads recurses
# The numeric settings: a JSON file or a mapping must give them as numbers, and the whole-number
# ones as integers (pydantic's lax mode would read true as 1 and 3.0 as 3); only a URL query,
# which is all text, may spell them as strings (``from_query`` says so).
_INT_FIELDS = ("batch_size", "steps", "eval_every", "probe_every", "snapshot_every", "affinity_every", "seed")
_FLOAT_FIELDS = ("lr",)
_FROM_TEXT = "from_text"  # validation context key: the values are a URL's text


class ConfigError(ValueError):
    """A configuration a person gave us is not valid; ``problems`` holds one sentence each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class RunConfig(BaseModel):
    """One training run. Frozen: change it with ``model_copy(update=...)`` and re-validate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    suite: str = Field("multidigits", description="Task suite (data and tasks).")
    suite_params: dict[str, KnobValue] = Field(default_factory=dict)
    tasks: tuple[str, ...] = Field((), description="Tasks to learn together; empty means the suite's defaults.")
    arch: str = Field("hps", description="Sharing architecture.")
    arch_params: dict[str, KnobValue] = Field(default_factory=dict)
    method: str = Field("ew", description="How the tasks are balanced.")
    method_params: dict[str, KnobValue] = Field(default_factory=dict)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(3e-3, gt=0, le=10, description="Learning rate.")
    batch_size: int = Field(128, ge=1, le=8192)
    steps: int = Field(400, ge=1, le=1_000_000)
    eval_every: int = Field(25, ge=1, le=1_000_000, description="Validation metrics every N steps.")
    probe_every: int = Field(10, ge=0, le=1_000_000,
                             description="Gradient diagnostics every N steps (0: never).")
    snapshot_every: int = Field(50, ge=0, le=1_000_000,
                                description="Sharing snapshot every N steps (0: never).")
    affinity_every: int = Field(0, ge=0, le=1_000_000,
                                description="Lookahead task affinity (TAG) every N steps (0: never).")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"

    @field_validator(*_INT_FIELDS, *_FLOAT_FIELDS, mode="before")
    @classmethod
    def _strict_number(cls, value: Any, info: ValidationInfo) -> Any:
        whole = info.field_name in _INT_FIELDS
        kind = "a whole number" if whole else "a number"
        if isinstance(value, bool):
            raise ValueError(f"must be {kind}, not true or false")
        if isinstance(value, str) and not (info.context or {}).get(_FROM_TEXT):
            raise ValueError(f"must be {kind}, not text")
        if whole and isinstance(value, float):
            raise ValueError("must be a whole number, written without a decimal point")
        return value

    @field_validator("tasks", mode="before")
    @classmethod
    def _split_tasks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check_against_registries(self) -> RunConfig:
        suite = SUITES[self.suite]
        tasks = self.tasks or suite.default_tasks
        unknown = [task for task in tasks if task not in suite.task_names]
        if unknown:
            raise ValueError(f"tasks: {', '.join(unknown)} not in {suite.name} "
                             f"(its tasks: {', '.join(suite.task_names)})")
        if len(set(tasks)) != len(tasks):
            raise ValueError("tasks: each task may be chosen once")
        # Normalise to the suite's order, so the same set of tasks is the same config.
        tasks = tuple(name for name in suite.task_names if name in tasks)
        method = METHODS[self.method]
        updates = {
            "tasks": tasks,
            "suite_params": _params(suite, self.suite_params, "suite_params"),
            "arch_params": _params(ARCHITECTURES[self.arch], self.arch_params, "arch_params"),
            "method_params": _params(method, self.method_params, "method_params"),
        }
        _check_per_task_lists(method, updates["method_params"], tasks)
        for name, value in updates.items():
            object.__setattr__(self, name, value)  # frozen model: normalise once, at construction
        return self

    # --- construction with readable errors ---------------------------------------------------

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, from_text: bool = False) -> RunConfig:
        """Validate a mapping; raise ConfigError with one readable sentence per problem.

        Numbers must be numbers (not booleans, and whole numbers not floats) unless ``from_text``:
        the values are the text of a URL query, where "400" is how a number is written.
        """
        if not isinstance(data, Mapping):
            raise ConfigError([f"a configuration must be a JSON object (got {type(data).__name__})"])
        try:
            return cls.model_validate(dict(data), context={_FROM_TEXT: from_text})
        except ValidationError as error:
            raise ConfigError(_readable(error)) from None

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunConfig:
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError([f"the configuration file is larger than {MAX_CONFIG_BYTES // 1024} KiB"])
        try:
            text = text.decode("utf-8") if isinstance(text, bytes) else text
        except UnicodeDecodeError:
            raise ConfigError(["the configuration is not text (UTF-8): give a config JSON file"]) from None
        if json_nesting(text) > MAX_CONFIG_DEPTH:
            raise ConfigError([f"the configuration nests more than {MAX_CONFIG_DEPTH} levels deep; "
                               "a configuration is a flat JSON object"])
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise ConfigError([f"not valid JSON ({error})"]) from None
        return cls.parse(data)

    def to_query(self) -> dict[str, str]:
        """Flat string pairs for a URL; ``from_query(to_query())`` gives back an equal config."""
        query: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if name in _PARAM_GROUPS:
                for knob, knob_value in value.items():
                    query[f"{_PARAM_GROUPS[name]}.{knob}"] = _to_text(knob_value)
            elif name == "tasks":
                query[name] = ",".join(value)
            else:
                query[name] = _to_text(value)
        return query

    @classmethod
    def from_query(cls, query: Mapping[str, str | list[str]]) -> RunConfig:
        """Parse URL pairs; keys that are not ours (``run``, ``page``, ...) are left alone."""
        fields = set(cls.model_fields) - set(_PARAM_GROUPS)
        data: dict[str, Any] = {}
        groups = {prefix: field for field, prefix in _PARAM_GROUPS.items()}
        for key, value in query.items():
            if isinstance(value, list):  # a key repeated in the URL: the last one wins
                if not value:
                    continue
                value = value[-1]
            text = value
            prefix, dot, knob = key.partition(".")
            if dot and prefix in groups:
                data.setdefault(groups[prefix], {})[knob] = text
            elif key in fields:
                data[key] = text
        return cls.parse(data, from_text=True)


def json_nesting(text: str) -> int:
    """The deepest bracket nesting outside strings: how deep json.loads would recurse, found
    without recursing (a file of 100,000 "[" raised RecursionError)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _params(entry: Any, params: Mapping[str, Any], field: str) -> dict[str, KnobValue]:
    try:
        return entry.validate_params(params)
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None


def _check_per_task_lists(entry: Any, params: Mapping[str, KnobValue], tasks: tuple[str, ...]) -> None:
    """A method's list knob (static weights) holds one number per task, in the tasks' order;
    empty means the method's default for every task."""
    for knob in entry.knobs:
        if knob.kind != "floats":
            continue
        count = len(parse_floats(str(params[knob.name])))
        if count and count != len(tasks):
            raise ValueError(f"method_params: {knob.name} lists {count} number{'s' * (count != 1)} for "
                             f"{len(tasks)} task{'s' * (len(tasks) != 1)} ({', '.join(tasks)}): give one "
                             f"per task, in that order, or leave it empty")


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _readable(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not a setting (check the spelling)"
        elif item["type"] in {"literal_error", "enum"}:
            message = message.replace("Input should be", "must be")
        else:
            message = message.replace("Input should be", "must be")
            if "input" in item and not isinstance(item["input"], dict | list):
                message += f" (got {_short(item['input'])})"
        problems.append(_clip(f"{where}: {message}" if where else message))
    return problems


def _clip(problem: str, limit: int = 300) -> str:
    """A sentence that echoes a huge input (10 KB of unicode in a link) is cut to stay readable."""
    return problem if len(problem) <= limit else problem[:limit - 1] + "…"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
