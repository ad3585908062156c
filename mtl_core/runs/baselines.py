"""Single-task (STL) baselines for delta-m: trained on demand, once, and found again in the store.

A baseline is a run of architecture ``stl`` (an independent network per task) with equal
weighting; with nothing shared, the summed loss trains each network on its own task alone. One
baseline serves every multi-task run with the same **suite, suite knobs, tasks, seed, steps,
optimizer, learning rate and batch size** (``BASELINE_KEY``): the settings that change an STL
network's final metrics. The architecture, the method and their knobs do not apply to it;
``eval_every`` does not change the final evaluation (the trainer always evaluates the last step),
and the probes and snapshots only observe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from mtl_core.config import RunConfig
from mtl_core.runs.store import RunInfo, Store

BASELINE_ARCH = "stl"
BASELINE_METHOD = "ew"
BASELINE_KEY = ("suite", "suite_params", "tasks", "seed", "steps", "optimizer", "lr", "batch_size")
BASELINE_KEY_TEXT = "suite, suite knobs, tasks, seed, steps, optimizer, learning rate, batch size"


def baseline_config(config: RunConfig) -> RunConfig:
    """The STL baseline that a run with ``config`` is measured against."""
    data = config.model_dump()
    data.update(arch=BASELINE_ARCH, arch_params={}, method=BASELINE_METHOD, method_params={},
                probe_every=0, snapshot_every=0)
    return RunConfig.parse(data)


def baseline_key(config: RunConfig) -> str:
    """The settings a baseline must share with a run, as one comparable string."""
    data = config.model_dump(mode="json")
    return json.dumps({name: data[name] for name in BASELINE_KEY}, sort_keys=True)


def is_baseline(config: RunConfig) -> bool:
    return config.arch == BASELINE_ARCH and config.method == BASELINE_METHOD


def find_baselines(store: Store, configs: Iterable[RunConfig], *,
                   statuses: Iterable[str] = ("done",)) -> dict[str, RunInfo]:
    """For each distinct baseline key of ``configs``, the newest stored baseline run with one of
    ``statuses`` (default: finished); keys without one are absent."""
    wanted = {baseline_key(config) for config in configs}
    found: dict[str, RunInfo] = {}
    for info in store.run_infos(statuses):  # oldest first: the newest wins
        config = info.config
        if isinstance(config, RunConfig) and is_baseline(config):
            try:
                key = baseline_key(config)
            except (KeyError, TypeError, ValueError):  # saved by a version with other settings
                continue
            if key in wanted:
                found[key] = info
    return found


def missing_baselines(store: Store, configs: Iterable[RunConfig]) -> list[RunConfig]:
    """The baseline configs that ``configs`` need and the store has neither finished nor queued
    nor running: what to train so that every run gets a delta-m. One per key, in first-seen order."""
    configs = list(configs)
    have = find_baselines(store, configs, statuses=("done", "queued", "running"))
    needed: dict[str, RunConfig] = {}
    for config in configs:
        key = baseline_key(config)
        if key not in have and key not in needed:
            needed[key] = baseline_config(config)
    return list(needed.values())
