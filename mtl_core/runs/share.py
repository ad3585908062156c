"""Sharing a set-up: a config file read defensively, and the exact command line that re-runs it.

An uploaded file is data from anyone: it is size-checked, parsed with ``json.loads`` only (never
pickle, eval or YAML tags), and validated by RunConfig; every failure is one ConfigError sentence.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

from mtl_core.config import MAX_CONFIG_DEPTH, ConfigError, RunConfig, json_nesting

MAX_UPLOAD_BYTES = 64 * 1024  # a config is ~1 KiB; anything this large is not one


def config_from_upload(data: bytes | str) -> RunConfig:
    """A RunConfig from the bytes of an uploaded file; raises ConfigError with one sentence."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ConfigError([f"the file is {len(data) // 1024} KiB; a configuration is at most "
                           f"{MAX_UPLOAD_BYTES // 1024} KiB"])
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ConfigError(["the file is not text (UTF-8): upload a config JSON file"]) from None
    if json_nesting(text) > MAX_CONFIG_DEPTH:
        raise ConfigError([f"the file nests more than {MAX_CONFIG_DEPTH} levels deep; a configuration "
                           "is a flat JSON object"])
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ConfigError([f"the file is not valid JSON ({error})"]) from None
    return RunConfig.parse(value)


_FLAGS = {"suite": "--suite", "tasks": "--tasks", "arch": "--arch", "method": "--method",
          "steps": "--steps", "seed": "--seed", "lr": "--lr", "optimizer": "--optimizer",
          "batch_size": "--batch-size", "eval_every": "--eval-every", "probe_every": "--probe-every",
          "snapshot_every": "--snapshot-every", "affinity_every": "--affinity-every", "device": "--device"}
_GROUPS = {"suite_params": "suite", "arch_params": "arch", "method_params": "method"}


def config_args(config: RunConfig, *, skip: Sequence[str] = ()) -> list[str]:
    """Every setting of ``config`` as ``python -m mtl_core`` flags (all of them, not only those
    that differ from today's defaults, so the line means the same after a default changes)."""
    query = config.to_query()  # the exact text of every value, as the URL carries it
    args: list[str] = []
    for field, flag in _FLAGS.items():
        if field not in skip:
            args += [flag, query[field]]
    for field, group in _GROUPS.items():
        for knob in getattr(config, field):
            args += ["--param", f"{group}.{knob}={query[f'{group}.{knob}']}"]
    return args


def cli_line(config: RunConfig) -> str:
    """The command that trains ``config`` again from a terminal (same seed, same numbers at the
    same torch thread count)."""
    return shlex.join(["python", "-m", "mtl_core", "run", *config_args(config)])


def sweep_line(base: RunConfig, methods: Sequence[str], archs: Sequence[str], seeds: Sequence[int]) -> str:
    """The command that runs a grid on ``base``'s set-up from a terminal."""
    # A method's or architecture's knobs belong to it alone: the grid gives the others their defaults.
    # The CLI gives --param method.* / arch.* to the first method / architecture listed: put the
    # base's own first, so its knobs reach it.
    methods = sorted(methods, key=lambda key: key != base.method)
    archs = sorted(archs, key=lambda key: key != base.arch)
    args = config_args(base, skip=("arch", "method", "seed"))
    kept = [a for i, a in enumerate(args) if not _foreign_param(args, i, base, methods, archs)]
    return shlex.join(["python", "-m", "mtl_core", "sweep", *kept, "--methods", ",".join(methods),
                       "--archs", ",".join(archs), "--seeds", ",".join(map(str, seeds))])


def _foreign_param(args: list[str], i: int, base: RunConfig, methods: Sequence[str],
                   archs: Sequence[str]) -> bool:
    """Whether args[i] is (the flag or value of) a knob of a method/arch that the grid does not use."""
    value = args[i] if args[i] != "--param" else args[i + 1]
    if args[i] != "--param" and (i == 0 or args[i - 1] != "--param"):
        return False
    group = value.partition(".")[0]
    return (group == "method" and base.method not in methods) or (group == "arch" and base.arch not in archs)
