"""Stored runs with chosen final metrics (no training), for the sweep and Compare page tests."""

from __future__ import annotations

from collections.abc import Mapping

from mtl_core.config import RunConfig
from mtl_core.engine.records import StepRecord
from mtl_core.runs.baselines import baseline_config
from mtl_core.runs.store import Store
from mtl_core.suites import SUITES

# Two 10-class tasks (accuracy, higher is better); tiny so that a real run trains in seconds.
SETUP = {"suite": "multidigits", "suite_params": {"train_pairs": 500}, "steps": 20,
         "eval_every": 10, "probe_every": 5, "batch_size": 32, "device": "cpu"}


def stored_run(store: Store, config: RunConfig | Mapping, final: Mapping[str, float], *,
               ms_per_step: float = 10.0, status: str = "done") -> int:
    """A run as a worker leaves it: losses every step, each task's metric every ``eval_every``
    steps rising linearly to ``final`` at the last step, time_s = ``ms_per_step`` per step."""
    config = config if isinstance(config, RunConfig) else RunConfig.parse(dict(config))
    suite = SUITES[config.suite]
    run_id = store.create_run(config, status="running")
    records = []
    for step in range(1, config.steps + 1):
        val = None
        if step % config.eval_every == 0 or step == config.steps:
            val = {task: {"loss": 1 / step, suite.task(task).metric: final[task] * step / config.steps}
                   for task in config.tasks}
        records.append(StepRecord(step=step, time_s=step * ms_per_step / 1000,
                                  loss={t: 1 / step for t in config.tasks},
                                  weight={t: 1.0 for t in config.tasks}, val=val))
    store.append(run_id, records)
    store.set_status(run_id, status, device="cpu, 1 thread")
    return run_id


def three_seed_grid(store: Store, *, pcgrad_gain: float = 0.03, mgda_gain: float = 0.0) -> list[int]:
    """STL baselines and ew, pcgrad, mgda on three seeds: the seeds differ by 0.05, pcgrad gains
    ``pcgrad_gain`` +/- 0.003 on both tasks, mgda ``mgda_gain`` +/- 0.02 (noise, in opposite
    directions on the two tasks)."""
    ids = []
    for seed in (0, 1, 2):
        config = baseline_config(RunConfig.parse({**SETUP, "seed": seed}))
        ids.append(stored_run(store, config, {"left": 0.80 + 0.05 * seed, "right": 0.70 + 0.05 * seed}))
    noise = {0: 0.02, 1: -0.02, 2: 0.0}
    jitter = {0: 0.003, 1: -0.003, 2: 0.0}  # a gain equal on every seed would estimate no noise
    for method, gain in (("ew", 0.0), ("pcgrad", pcgrad_gain), ("mgda", mgda_gain)):
        for seed in (0, 1, 2):
            extra = {"mgda": noise[seed], "pcgrad": jitter[seed]}.get(method, 0.0)
            ids.append(stored_run(store, RunConfig.parse({**SETUP, "method": method, "seed": seed}),
                                  {"left": 0.82 + 0.05 * seed + gain + extra,
                                   "right": 0.71 + 0.05 * seed + gain - extra}))
    return ids
