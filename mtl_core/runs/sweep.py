"""Grids of runs on one set-up (methods x architectures x seeds), run side by side, and the table
that compares them: final metrics mean +/- std over seeds, delta-m % against the STL baselines,
mean rank, time per step.

The app queues a grid through its job manager; the CLI (``python -m mtl_core sweep``) runs one
here with :func:`run_grid`, through the same manager and worker processes, so a seed gives the same
numbers on both (at the same torch thread count, which each run records as its device).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import ConfigError, RunConfig
from mtl_core.engine.metrics import delta_m, mean_rank, pm
from mtl_core.methods import METHODS
from mtl_core.registry import Registry
from mtl_core.runs.baselines import BASELINE_KEY_TEXT, baseline_key, find_baselines, is_baseline
from mtl_core.runs.jobs import JobManager
from mtl_core.runs.store import LIVE, Store
from mtl_core.suites import SUITES

MAX_CELLS = 120  # runs in one grid: beyond this a CPU sweep takes hours; split it
GRID_KEYS = ("grid.methods", "grid.archs", "grid.seeds")  # URL keys (RunConfig ignores them)


@dataclass(frozen=True)
class Grid:
    """Every combination of ``methods`` x ``archs`` x ``seeds`` on the set-up ``base`` (its suite,
    tasks and training settings). A method's or architecture's knobs are taken from ``base`` when
    it is ``base``'s own method or architecture, else they keep their paper defaults."""

    base: RunConfig
    methods: tuple[str, ...]
    archs: tuple[str, ...]
    seeds: tuple[int, ...]

    def configs(self) -> list[RunConfig]:
        """The grid's runs, seed by seed (so that every method has a first result early)."""
        configs = []
        for seed in self.seeds:
            for arch in self.archs:
                for method in self.methods:
                    data = self.base.model_dump()
                    data.update(seed=seed, arch=arch, method=method,
                                arch_params=self.base.arch_params if arch == self.base.arch else {},
                                method_params=self.base.method_params if method == self.base.method else {})
                    configs.append(RunConfig.parse(data))
        return configs

    def to_query(self) -> dict[str, str]:
        return self.base.to_query() | {"grid.methods": ",".join(self.methods),
                                       "grid.archs": ",".join(self.archs),
                                       "grid.seeds": ",".join(map(str, self.seeds))}

    @classmethod
    def from_query(cls, query: Mapping[str, str | list[str]]) -> Grid:
        def text(key: str, default: str) -> str:
            value = query.get(key, default)
            if isinstance(value, list):  # a key repeated in the URL: the last one wins
                return value[-1] if value else default
            return value

        base = RunConfig.from_query({k: v for k, v in query.items() if k not in GRID_KEYS})
        return make_grid(base, text("grid.methods", base.method), text("grid.archs", base.arch),
                         text("grid.seeds", str(base.seed)))


def make_grid(base: RunConfig, methods: str | Sequence[str], archs: str | Sequence[str],
              seeds: str | Sequence[int]) -> Grid:
    """A validated grid from lists or comma-separated text; raises ConfigError (one sentence per
    problem) for unknown names, bad seeds or too many runs."""
    problems: list[str] = []
    method_keys = _names(methods, METHODS, "methods", problems)
    arch_keys = _names(archs, ARCHITECTURES, "archs", problems)
    seed_values = _seeds(seeds, problems)
    cells = len(method_keys) * len(arch_keys) * len(seed_values)
    if not problems and cells > MAX_CELLS:
        problems.append(f"the grid has {cells} runs; at most {MAX_CELLS} at once (fewer seeds or methods)")
    if problems:
        raise ConfigError(problems)
    grid = Grid(base, tuple(method_keys), tuple(arch_keys), tuple(seed_values))
    grid.configs()  # every combination must validate (e.g. a method's per-task knob)
    return grid


def _names(value: str | Sequence[str], registry: Registry, what: str, problems: list[str]) -> list[str]:
    names = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
    names = list(dict.fromkeys(name for name in names if name))
    if not names:
        problems.append(f"{what}: give at least one (one of {', '.join(registry.keys())})")
    unknown = [name for name in names if name not in registry]
    if unknown:
        problems.append(f"{what}: {', '.join(unknown)} unknown (choose from {', '.join(registry.keys())})")
    return [name for name in names if name in registry]


def _seeds(value: str | Sequence[int], problems: list[str]) -> list[int]:
    parts = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
    seeds: list[int] = []
    for part in parts:
        if part == "":
            continue
        try:
            seed = int(part)
        except (TypeError, ValueError):
            problems.append(f"seeds: {part!r} is not a whole number")
            continue
        if not 0 <= seed <= 2**31 - 1:
            problems.append(f"seeds: {seed} is outside 0 .. {2**31 - 1}")
            continue
        seeds.append(seed)
    seeds = list(dict.fromkeys(seeds))
    if not seeds and not problems:
        problems.append("seeds: give at least one, e.g. 0,1,2")
    return seeds


def grid_of_runs(store: Store, run_ids: Iterable[int]) -> Grid | None:
    """The grid that stored runs form: the first multi-task run's set-up, and the methods,
    architectures and seeds the runs use (STL baselines aside); None when there is no such run."""
    configs = [info.config for info in map(store.get_run, run_ids)
               if info is not None and isinstance(info.config, RunConfig) and not is_baseline(info.config)]
    if not configs:
        return None
    try:
        return make_grid(configs[0], [c.method for c in configs], [c.arch for c in configs],
                         sorted({c.seed for c in configs}))
    except ConfigError:  # e.g. too many to be one grid: the page keeps its own set-up
        return None


# --- running a grid (the CLI; the app queues through its own job manager) ------------------------

def default_workers(runs: int) -> int:
    """Worker processes for a sweep: one per core (at most one per run). With more than one, the
    job manager gives each worker cores // workers torch threads, so they do not fight over cores."""
    return max(1, min(runs, os.cpu_count() or 1))


def run_grid(configs: Sequence[RunConfig], *, store_path: str | os.PathLike[str] | None, workers: int,
             on_progress: Callable[[list[int]], None] | None = None, poll_s: float = 0.25,
             names: Sequence[str] | None = None) -> list[int]:
    """Queue every config with a job manager of ``workers`` worker processes and wait for them all;
    returns the run ids in ``configs``' order. ``on_progress(ids)`` is called every ``poll_s``.
    Interrupted (Ctrl-C), the manager shuts down and the unfinished runs are marked interrupted."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    manager = JobManager(store_path, max_concurrent=workers, warm=True)
    try:
        ids = [manager.submit(config, name=names[i] if names else None) for i, config in enumerate(configs)]
        while True:
            live = [run_id for run_id in ids if manager.store.get_run(run_id).status in LIVE]
            if on_progress is not None:
                on_progress(ids)
            if not live:
                return ids
            time.sleep(poll_s)
    finally:
        manager.shutdown()


# --- what each run achieved ------------------------------------------------------------------------

def run_summaries(store: Store, run_ids: Iterable[int]) -> pd.DataFrame:
    """One row per stored run: its set-up, status, final value of each task's own metric (columns
    named after the tasks), time per training step in ms and its device. Unknown ids are skipped."""
    rows = []
    for run_id in run_ids:
        info = store.get_run(int(run_id))
        if info is None:
            continue
        config = info.config
        suite = next((entry for entry in SUITES if entry.key == config.suite), None)  # an old run's suite may be gone
        final = store.final_metrics(info.id)
        times = store.scalars(info.id, split="train", metric="time_s",
                              since_step=max(info.steps_done - 1, 0))
        last = times.iloc[-1] if len(times) else None
        row = {"run_id": info.id, "name": info.name, "status": info.status, "suite": config.suite,
               "tasks": tuple(config.tasks), "method": config.method, "arch": config.arch,
               "seed": config.seed, "steps": config.steps, "steps_done": info.steps_done,
               "device": info.device, "baseline": bool(is_baseline(config)),
               "baseline_key": _safe_key(config),
               "ms_per_step": (1000 * last["value"] / last["step"]) if last is not None and last["step"] else math.nan}
        for task in config.tasks:
            metric = suite.task(task).metric if suite is not None else "loss"
            row[task] = final.get(task, {}).get(metric, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def validation_curves(store: Store, summaries: pd.DataFrame) -> pd.DataFrame:
    """run_id, step, task, value: each task's own validation metric over the steps, for every run
    of ``summaries``."""
    parts = []
    for run_id, suite_key, tasks in zip(summaries["run_id"], summaries["suite"], summaries["tasks"], strict=True):
        own = {task: SUITES[suite_key].task(task).metric for task in tasks}
        val = store.scalars(int(run_id), split="val")
        keep = val["metric"] == val["task"].map(own)
        parts.append(val[keep].assign(run_id=int(run_id))[["run_id", "step", "task", "value"]])
    columns = ["run_id", "step", "task", "value"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def _safe_key(config: RunConfig) -> str | None:
    try:
        return baseline_key(config)
    except (KeyError, TypeError, ValueError):
        return None


def setups(summaries: pd.DataFrame) -> pd.Series:
    """Each run's set-up label ("suite: task, task"): runs compare only within one set-up."""
    return summaries["suite"] + ": " + summaries["tasks"].map(", ".join)


def baseline_metrics(store: Store, summaries: pd.DataFrame) -> dict[str, tuple[int, dict[str, float]]]:
    """For each baseline key among the runs: the finished STL baseline run (id) and its final
    metrics per task, found in the store (whether or not it is among the runs)."""
    configs = [store.get_run(int(run_id)).config for run_id in summaries["run_id"]]
    found = find_baselines(store, configs)
    result = {}
    for key, info in found.items():
        row = run_summaries(store, [info.id]).iloc[0]
        result[key] = (info.id, {task: float(row[task]) for task in info.config.tasks})
    return result


def with_delta_m(summaries: pd.DataFrame, baselines: Mapping[str, tuple[int, dict[str, float]]]) -> pd.DataFrame:
    """Add each run's delta-m % (LibMTL sign: positive is better) against the STL baseline of its
    key, and that baseline's run id; NaN where there is no finished baseline."""
    out = summaries.copy()
    values, used = [], []
    for _, row in out.iterrows():
        suite = SUITES[row["suite"]]
        entry = baselines.get(row["baseline_key"])
        if entry is None:
            values.append(math.nan)
            used.append(pd.NA)
            continue
        baseline_id, stl = entry
        metrics = {task: row[task] for task in row["tasks"]}
        better = {task: suite.task(task).higher_is_better for task in row["tasks"]}
        try:
            value = delta_m(metrics, {t: stl[t] for t in row["tasks"]}, better)
        except (KeyError, ValueError):
            value = math.nan
        values.append(value)
        used.append(baseline_id)
    out["delta_m"] = values
    out["baseline_run"] = pd.array(used, dtype="Int64")
    return out


def results_table(summaries: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, architecture) over its finished runs (the seeds): per task the final
    metric's mean and std, delta-m % mean and std, the mean rank over tasks (1 is best), time per
    step, the seeds and the STL baseline runs used. ``summaries`` comes from :func:`with_delta_m`
    and holds one set-up; the rows are sorted by mean rank."""
    done = summaries[summaries["status"] == "done"]
    columns = ["method", "arch", "runs", "seeds"]
    if done.empty:
        return pd.DataFrame(columns=columns)
    tasks = list(done["tasks"].iloc[0])
    suite = SUITES[done["suite"].iloc[0]]
    rows = []
    for (arch, method), group in done.groupby(["arch", "method"], sort=False):
        row = {"method": method, "arch": arch, "runs": ",".join(map(str, group["run_id"])),
               "seeds": ",".join(map(str, sorted(group["seed"])))}
        for task in tasks:
            row[f"{task} mean"] = group[task].mean()
            row[f"{task} std"] = _std(group[task])
        row["delta_m mean"] = group["delta_m"].mean() if "delta_m" in group else math.nan
        row["delta_m std"] = _std(group["delta_m"]) if "delta_m" in group else math.nan
        row["ms_per_step"] = group["ms_per_step"].mean()
        baseline_runs = group["baseline_run"].dropna() if "baseline_run" in group else []
        row["baseline_runs"] = ",".join(map(str, sorted(set(int(b) for b in baseline_runs))))
        rows.append(row)
    table = pd.DataFrame(rows)
    means = table[[f"{task} mean" for task in tasks]].to_numpy(dtype=float)
    table["mean_rank"] = mean_rank(means, [suite.task(task).higher_is_better for task in tasks])
    return table.sort_values("mean_rank", kind="stable").reset_index(drop=True)


def _std(values: pd.Series) -> float:
    """Sample standard deviation over seeds (ddof 1); 0 for a single seed is not a spread: NaN."""
    values = values.dropna()
    return float(values.std(ddof=1)) if len(values) > 1 else math.nan


def format_table(table: pd.DataFrame, summaries: pd.DataFrame) -> str:
    """The results table as text for a terminal: mean +/- std per task, delta-m, rank, ms/step."""
    if table.empty:
        return "no finished runs to compare"
    tasks = list(summaries["tasks"].iloc[0])
    suite = SUITES[summaries["suite"].iloc[0]]
    shown = pd.DataFrame({
        "method": table["method"], "arch": table["arch"], "seeds": table["seeds"],
        **{f"{task} {suite.task(task).metric}{' ↑' if suite.task(task).higher_is_better else ' ↓'}":
           [pm(m, s) for m, s in zip(table[f"{task} mean"], table[f"{task} std"], strict=True)]
           for task in tasks},
        "Δm % (+ better)": [pm(m, s, digits=2) for m, s in zip(table["delta_m mean"], table["delta_m std"], strict=True)],
        "mean rank": table["mean_rank"].map(lambda v: f"{v:.2f}"),
        "ms/step": table["ms_per_step"].map(lambda v: f"{v:.1f}"),
        "STL runs": table["baseline_runs"].replace("", "-"),
    })
    return shown.to_string(index=False)




BASELINE_NOTE = (f"Δm % is the mean relative gain over the single-task (STL) baselines, in per cent; "
                 f"positive is better (LibMTL's sign; Nash-MTL's papers flip it). A baseline is the "
                 f"'stl' architecture with equal weighting, matched on: {BASELINE_KEY_TEXT}.")
