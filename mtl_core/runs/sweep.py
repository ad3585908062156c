"""Grids of runs on one set-up (methods x architectures x seeds), run side by side, and the table
that compares them: final metrics mean +/- std over seeds, delta-m % against the STL baselines,
mean rank, time per step, and for every difference to the reference method (equal weighting)
whether it is distinguishable from seed noise, with a rank that marks the ties.

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
from mtl_core.engine.metrics import (
    BETTER,
    CONFIDENCE,
    REFERENCE_NOTE,
    WITHIN_NOISE,
    WORSE,
    NoiseTest,
    delta_m,
    mean_rank,
    noise_ranks,
    noise_test,
    pm,
    verdict_text,
)
from mtl_core.methods import METHODS
from mtl_core.registry import Registry
from mtl_core.runs.baselines import BASELINE_KEY_TEXT, baseline_key, find_baselines, is_baseline
from mtl_core.runs.jobs import JobManager
from mtl_core.runs.store import LIVE, Store
from mtl_core.suites import SUITES

MAX_CELLS = 120  # runs in one grid: beyond this a CPU sweep takes hours; split it
DEFAULT_SEEDS = (0, 1, 2)  # the fewest that give a noise verdict with any power (2 seeds: t = 12.7)
REFERENCE_METHOD = "ew"  # the yardstick every method's difference is tested against, when compared
STL_ARCH = "stl"
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


def live_runs(store: Store, run_ids: Iterable[int]) -> list[int]:
    """Those of ``run_ids`` still queued or running (a grid is training while there are any)."""
    return [int(run_id) for run_id in run_ids
            if (info := store.get_run(int(run_id))) is not None and info.status in LIVE]


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
        try:
            suite = SUITES[config.suite]
        except ValueError:  # an old run's suite may be gone (a person's table, deleted)
            suite = None
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
    and holds one set-up.

    Each row is also tested against the reference row (:func:`reference_rows`) with
    :func:`mtl_core.engine.metrics.noise_test` (a paired t-interval across seeds, 95 %): per task,
    ``{task} diff``, ``{task} low``, ``{task} high`` (the row minus the reference, in the metric's
    units) and ``{task} verdict`` (better, worse, within noise); for delta-m the same as
    ``delta_m diff/low/high`` and ``verdict``, the row's headline, with ``test`` (how it was
    tested), ``note`` (why not, or "the reference"), ``reference`` and ``reference_arch``. Without
    delta-m (no STL baselines) ``verdict`` is "within noise" with a note: nothing to test.
    ``rank`` ranks the rows by delta-m where every row has it (else by the tasks' verdicts) with
    ties marked "=2": rows that no test separates share a rank (:func:`noise_ranks`). The rows are
    sorted by rank, then delta-m, then mean rank."""
    done = summaries[summaries["status"] == "done"]
    columns = ["method", "arch", "runs", "seeds"]
    if done.empty:
        return pd.DataFrame(columns=columns)
    tasks = list(done["tasks"].iloc[0])
    suite = SUITES[done["suite"].iloc[0]]
    rows, per_seed = [], []
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
        measures = [*tasks, *(["delta_m"] if "delta_m" in group else [])]
        # Re-runs of one seed are averaged: the tests pair seeds, not runs.
        per_seed.append({m: group.groupby("seed")[m].mean().dropna().to_dict() for m in measures})
    table = pd.DataFrame(rows)
    means = table[[f"{task} mean" for task in tasks]].to_numpy(dtype=float)
    better = {task: suite.task(task).higher_is_better for task in tasks}
    table["mean_rank"] = mean_rank(means, list(better.values()))
    table = _with_noise_tests(table, per_seed, better)
    order = pd.DataFrame({"rank": table["rank"].str.lstrip("=").astype(int),
                          "delta_m": -table["delta_m mean"].fillna(-math.inf), "mean_rank": table["mean_rank"]})
    keep = order.sort_values(["rank", "delta_m", "mean_rank"], kind="stable").index
    return table.loc[keep].reset_index(drop=True)


def reference_rows(table: pd.DataFrame) -> list[int]:
    """For each row of a results table, the row it is tested against: equal weighting
    (:data:`REFERENCE_METHOD`) when the grid has it, else the grid's first method, on the row's own
    architecture (the method alone differs); the STL baselines, and an architecture without the
    reference method, against it on the first architecture that has it."""
    methods = table["method"].tolist()
    archs = table["arch"].tolist()
    shared = [i for i, arch in enumerate(archs) if arch != STL_ARCH] or list(range(len(table)))
    reference = REFERENCE_METHOD if any(methods[i] == REFERENCE_METHOD for i in shared) else methods[shared[0]]
    candidates = [i for i in shared if methods[i] == reference]
    out = []
    for arch in archs:
        same = [i for i in candidates if archs[i] == arch]
        out.append(same[0] if same else candidates[0])
    return out


def _with_noise_tests(table: pd.DataFrame, per_seed: list[dict[str, dict[int, float]]],
                      better: Mapping[str, bool]) -> pd.DataFrame:
    """The verdict columns and the rank of :func:`results_table`."""
    out = table.copy()
    references = reference_rows(table)
    out["reference"] = [table["method"].iloc[r] for r in references]
    out["reference_arch"] = [table["arch"].iloc[r] for r in references]
    columns: dict[str, list] = {}
    for row, ref in enumerate(references):
        for task, higher in better.items():
            test = noise_test(per_seed[row][task], per_seed[ref][task], higher_is_better=higher)
            for key, value in zip(("diff", "low", "high", "verdict"),
                                  (test.diff, test.low, test.high, test.verdict), strict=True):
                columns.setdefault(f"{task} {key}", []).append(value)
        headline = _delta_m_test(per_seed[row], per_seed[ref])
        note = REFERENCE_NOTE if row == ref else headline.note
        for key, value in (("delta_m diff", headline.diff), ("delta_m low", headline.low),
                           ("delta_m high", headline.high), ("verdict", headline.verdict),
                           ("test", _test_text(headline)), ("note", note)):
            columns.setdefault(key, []).append(value)
    for key, values in columns.items():
        out[key] = values
    out["rank"] = noise_ranks(_better_matrix(per_seed, better))
    return out


def _delta_m_test(row: Mapping[str, dict[int, float]], reference: Mapping[str, dict[int, float]]) -> NoiseTest:
    if row.get("delta_m") and reference.get("delta_m"):
        return noise_test(row["delta_m"], reference["delta_m"])
    return NoiseTest(WITHIN_NOISE, math.nan, math.nan, math.nan, 0, "none",
                     "no Δm (STL baselines missing): no test")


def _test_text(test: NoiseTest) -> str:
    """How a verdict was reached, for a reader: "paired t, 3 seeds, 95 %"."""
    if test.test == "none":
        return "none"
    return f"{test.test}, {test.seeds} seed{'s' * (test.seeds != 1)}, {CONFIDENCE:.0%}"


def _better_matrix(per_seed: list[dict[str, dict[int, float]]], better: Mapping[str, bool]) -> list[list[bool]]:
    """better[i][j]: row i is distinguishably better than row j, by delta-m where both rows have
    it, else better on at least one task and worse on none."""
    n = len(per_seed)
    matrix = [[False] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if per_seed[i].get("delta_m") and per_seed[j].get("delta_m"):
                matrix[i][j] = noise_test(per_seed[i]["delta_m"], per_seed[j]["delta_m"]).verdict == BETTER
                continue
            verdicts = {noise_test(per_seed[i][t], per_seed[j][t], higher_is_better=h).verdict
                        for t, h in better.items()}
            matrix[i][j] = BETTER in verdicts and WORSE not in verdicts
    return matrix


def _std(values: pd.Series) -> float:
    """Sample standard deviation over seeds (ddof 1); 0 for a single seed is not a spread: NaN."""
    values = values.dropna()
    return float(values.std(ddof=1)) if len(values) > 1 else math.nan


def format_table(table: pd.DataFrame, summaries: pd.DataFrame) -> str:
    """The results table as text for a terminal: rank (ties "=2"), mean +/- std per task with its
    verdict against the reference, delta-m with its verdict and 95 % interval, mean rank, ms/step."""
    if table.empty:
        return "no finished runs to compare"
    tasks = list(summaries["tasks"].iloc[0])
    suite = SUITES[summaries["suite"].iloc[0]]
    references = table["reference"] + "·" + table["reference_arch"]
    against = references.iloc[0] if references.nunique() == 1 else "ref."
    shown = pd.DataFrame({
        "rank": table["rank"], "method": table["method"], "arch": table["arch"], "seeds": table["seeds"],
        **{f"{task} {suite.task(task).metric}{' ↑' if suite.task(task).higher_is_better else ' ↓'}":
           [f"{pm(m, s)} {VERDICT_MARK[v]}" for m, s, v in
            zip(table[f"{task} mean"], table[f"{task} std"], table[f"{task} verdict"], strict=True)]
           for task in tasks},
        "Δm % (+ better)": [pm(m, s, digits=2) for m, s in zip(table["delta_m mean"], table["delta_m std"], strict=True)],
        f"Δm vs {against} ({CONFIDENCE:.0%} CI)": [
            verdict_text(v, d, lo, hi, note=n, digits=2) for v, d, lo, hi, n in
            zip(table["verdict"], table["delta_m diff"], table["delta_m low"], table["delta_m high"],
                table["note"], strict=True)],
        "mean rank": table["mean_rank"].map(lambda v: f"{v:.2f}"),
        "ms/step": table["ms_per_step"].map(lambda v: f"{v:.1f}"),
        "STL runs": table["baseline_runs"].replace("", "-"),
    })
    return shown.to_string(index=False)


VERDICT_MARK = {BETTER: "(better)", WORSE: "(worse)", WITHIN_NOISE: "(≈)"}


BASELINE_NOTE = (f"Δm % is the mean relative gain over the single-task (STL) baselines, in per cent; "
                 f"positive is better (the sign the LibMTL library uses; the Nash-MTL papers report the negative). A baseline is the "
                 f"'stl' architecture with equal weighting, matched on: {BASELINE_KEY_TEXT}.")
NOISE_NOTE = ("better / worse: the 95 % t-interval of the difference to the reference method (equal "
              "weighting when compared, same architecture), paired by seed, excludes 0; ≈ or within noise: "
              "it contains 0, seed noise explains the difference. Rows that no test separates share a "
              "rank (=2). One test per cell, uncorrected: about one in twenty reads better or worse by chance.")
