"""Pairwise transfer (Standley et al., "Which Tasks Should Be Learned Together in Multi-task
Learning?", ICML 2020, arXiv:1905.07553): train every pair of tasks together and each task alone
(the STL baseline), and compare task j's validation metric in pair {i, j} with its STL value:

    gain[i, j] = 100 * s_j * (M_j^{i,j} - M_j^{STL}) / |M_j^{STL}|   (s_j = -1 where lower is better)

in percent, positive when learning j beside i helps j (delta-m's sign convention, for one task).

The study plans its runs and reads their results from the store; it trains nothing itself: whoever
runs it passes a ``train(config) -> run id`` (the app's job manager, or the worker's in-process
:func:`mtl_core.runs.worker.train_here`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mtl_core.config import RunConfig
from mtl_core.runs.baselines import baseline_config, baseline_key, find_baselines, is_baseline
from mtl_core.suites import SUITES

if TYPE_CHECKING:
    from mtl_core.runs.store import Store


def _variant(base: RunConfig, **update) -> RunConfig:
    data = base.model_dump()
    data.update(affinity_every=0, probe_every=0, snapshot_every=0, method="ew", method_params={})
    data.update(update)
    return RunConfig.parse(data)


def stl_config(base: RunConfig) -> RunConfig:
    """The single-task baselines of every task of ``base``: one STL run (independent networks,
    each trained on its own loss: the same as T single-task runs), same data, steps and optimiser.
    It is the delta-m baseline of ``mtl_core.runs.baselines``, so the two share their runs."""
    return baseline_config(base.model_copy(update={"affinity_every": 0}))


def pair_configs(base: RunConfig) -> dict[tuple[str, str], RunConfig]:
    """One run per pair of ``base``'s tasks: its architecture, equal weighting (Standley et al.
    sum the losses), same data, steps and optimiser; no probes (nothing here needs them)."""
    return {(a, b): _variant(base, tasks=(a, b)) for a, b in combinations(base.tasks, 2)}


def transfer_plan(base: RunConfig) -> list[RunConfig]:
    """Every run the transfer matrix needs: the STL baselines first, then the pairs."""
    return [stl_config(base), *pair_configs(base).values()]


def find_run(store: Store, config: RunConfig, *, statuses: Sequence[str] = ("done",)) -> int | None:
    """The newest run of exactly this configuration with one of ``statuses``, or None; for an
    STL baseline, any baseline run with the same settings (``mtl_core.runs.baselines``)."""
    if is_baseline(config):
        found = find_baselines(store, [config], statuses=statuses).get(baseline_key(config))
        return found.id if found is not None else None
    runs = store.runs_with_config(config, statuses)
    return runs[0] if runs else None


def transfer_progress(store: Store, base: RunConfig) -> tuple[int, int]:
    """(runs of the plan done, runs in the plan)."""
    plan = transfer_plan(base)
    return sum(find_run(store, config) is not None for config in plan), len(plan)


def missing_transfer_runs(store: Store, base: RunConfig) -> list[RunConfig]:
    """The plan's runs not done yet and not queued or running either."""
    return [config for config in transfer_plan(base)
            if find_run(store, config, statuses=("done", "queued", "running")) is None]


def transfer_gains(store: Store, base: RunConfig) -> pd.DataFrame:
    """The gain matrix (percent, see the module docstring) from the finished runs of the plan;
    NaN where a run is missing, and on the diagonal."""
    tasks = list(base.tasks)
    suite = SUITES[base.suite]
    gains = pd.DataFrame(np.nan, index=tasks, columns=tasks)
    stl_run = find_run(store, stl_config(base))
    if stl_run is None:
        return gains
    alone = store.final_metrics(stl_run)
    for (a, b), config in pair_configs(base).items():
        run_id = find_run(store, config)
        if run_id is None:
            continue
        together = store.final_metrics(run_id)
        for source, target in ((a, b), (b, a)):
            info = suite.task(target)
            gains.at[source, target] = relative_gain(together.get(target, {}).get(info.metric, math.nan),
                                                     alone.get(target, {}).get(info.metric, math.nan),
                                                     higher_is_better=info.higher_is_better)
    return gains


def relative_gain(value: float, baseline: float, *, higher_is_better: bool) -> float:
    """100 * s * (value - baseline) / |baseline|: positive when ``value`` is better."""
    if not (math.isfinite(value) and math.isfinite(baseline)) or baseline == 0:
        return math.nan
    sign = 1.0 if higher_is_better else -1.0
    return 100.0 * sign * (value - baseline) / abs(baseline)


def train_transfer_study(store: Store, base: RunConfig, *, train: Callable[[RunConfig], int]) -> list[int]:
    """Train the runs of the plan that are missing, one ``train(config) -> run id`` call each, in
    the plan's order; returns their run ids. Runs already done, queued or running are reused.
    ``train``: e.g. the app's ``JobManager.submit`` (the runs train in the background), or
    :func:`mtl_core.runs.worker.train_here` bound to the store (each trains here, to its end)."""
    return [train(config) for config in missing_transfer_runs(store, base)]
