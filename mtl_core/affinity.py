"""Task relationships: which tasks help which, measured three ways, and the groupings they suggest.

- **Lookahead affinity** (TAG: Fifty et al., "Efficiently Identifying Task Groupings for Multi-Task
  Learning", NeurIPS 2021, arXiv:2109.04617). On a step t with batch X, take a step of the *shared*
  parameters along task i's gradient alone, and see how task j's loss on the same batch moves:

      Z_{i->j} = 1 - L_j(X, theta_s^{t+1|i}, theta_j) / L_j(X, theta_s^t, theta_j)

  positive when a step for i lowers j's loss. The paper writes the step with SGD,
  theta_s^{t+1|i} = theta_s^t - eta grad_{theta_s} L_i, and the authors' released code takes a plain
  gradient step too (it also divides Z by eta; we keep the paper's Z); we take exactly that step,
  with the run's learning rate eta, whatever the run's optimiser. Under Adam we do *not* take
  Adam's step: its carried momentum is the same for every i (it would only blur their
  differences), and without it a gradient that is large where Adam's second moment is small gets
  a step up to 1/sqrt(1 - beta2) = 32 times lr per coordinate (tried on digit_attributes: the
  lookahead on ink's gradient raised ink's own loss 4.7-fold on average). The SGD step is no cure
  for a task whose gradient is huge at an Adam learning rate either (same suite, 500 steps at lr
  3e-3: Z(ink->ink) averaged -6.5): read such a task's row with care.
  The Z's of the steps where it is measured are averaged into a T x T matrix (rows i: the task that
  stepped; columns j: the task whose loss moved), as the paper averages over training. The trainer
  reuses the task Jacobian of its gradient probes, so a measurement costs T extra forward passes.
- **Gradient-cosine affinity**: the mean over training of the probes' cosines cos(g_i, g_j) (free).
- **Pairwise transfer** (Standley et al., "Which Tasks Should Be Learned Together in Multi-task
  Learning?", ICML 2020, arXiv:1905.07553): train every pair of tasks together and each task alone
  (the STL baseline), and compare task j's validation metric in pair {i, j} with its STL value:

      gain[i, j] = 100 * s_j * (M_j^{i,j} - M_j^{STL}) / |M_j^{STL}|   (s_j = -1 where lower is better)

  in percent, positive when learning j beside i helps j (delta-m's sign convention, for one task).
- **Grouping**: every partition of the tasks into g groups (exhaustive: 203 partitions for 6 tasks),
  scored as in TAG's network selection: a task's score is the mean affinity it *receives* from the
  other tasks of its group, (1 / (|G| - 1)) sum_{i in G, i != j} A[i, j]; a task alone receives
  none and scores 0 (as good as single-task learning); a partition's score is the mean of its tasks'
  scores, and we report the partition with the highest score for each g = 1..T. The paper's own
  search may put a task in several groups (each task served by its best one); ours is a partition,
  so every task is trained exactly once.

Torch is imported only by the lookahead (the page that draws these matrices does not pay for it).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mtl_core.baselines import baseline_config, baseline_key, find_baselines, is_baseline
from mtl_core.config import ConfigError, RunConfig
from mtl_core.suites import SUITES

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from mtl_core.store import Store

AFFINITY_MATRIX = "affinity"  # the store's matrix name for the lookahead affinity of a step
COSINE_MATRIX = "cosine"
MAX_GROUPING_TASKS = 8  # Bell(8) = 4,140 partitions: exhaustive search stays instant
_EPS_LOSS = 1e-12


# --- lookahead affinity (TAG) -------------------------------------------------------------------

def lookahead_steps(optimizer: torch.optim.Optimizer, jacobian: Tensor) -> Tensor:
    """Row i: the change of the flat shared parameters a lookahead on task i makes, ``lr * g_i``
    (the paper's SGD step, with the learning rate of the optimiser's first parameter group)."""
    return float(optimizer.param_groups[0]["lr"]) * jacobian


def lookahead_affinity(losses_on_batch: Callable[[], Tensor], params: Sequence[Tensor],
                       losses: Tensor, steps: Tensor, *, rng_state: Tensor | None = None) -> Tensor:
    """``Z[i, j] = 1 - L_j(theta - steps[i]) / L_j(theta)`` on the same batch: ``[T, T]``.

    ``losses_on_batch()`` recomputes the task losses ``[T]`` on the step's batch with the
    parameters as they are; ``losses`` are those losses before any lookahead; ``steps`` come from
    :func:`lookahead_steps`. Only ``params`` (the shared ones) move, and they are restored exactly.
    ``rng_state``: the CPU generator's state when ``losses`` were computed, so that random layers
    (noisy gates) draw the same numbers in every lookahead; the generator is left as it was found.
    (On a GPU, random layers draw from the device's generator, which is not replayed.)
    """
    import torch

    params = list(params)
    before = losses.detach()
    originals = [p.detach().clone() for p in params]
    found = torch.get_rng_state()
    rng = found if rng_state is None else rng_state
    rows = []
    try:
        for step in steps:
            with torch.no_grad():
                offset = 0
                for param, original in zip(params, originals, strict=True):
                    size = param.numel()
                    param.copy_(original - step[offset: offset + size].view_as(param))
                    offset += size
            torch.set_rng_state(rng)
            with torch.inference_mode():  # no autograd bookkeeping at all: the cheapest forward
                after = losses_on_batch()
            rows.append(1.0 - after.clone() / before.clamp_min(_EPS_LOSS))
    finally:
        with torch.no_grad():
            for param, original in zip(params, originals, strict=True):
                param.copy_(original)
        torch.set_rng_state(found)
    return torch.stack(rows)


# --- matrices from the store --------------------------------------------------------------------

def mean_matrix(matrices: pd.DataFrame, name: str, tasks: Sequence[str]) -> pd.DataFrame | None:
    """The mean over steps of the run's ``name`` matrices (NaN entries skipped), as a tasks x tasks
    frame; None if the run recorded none. ``matrices`` is ``Store.matrices(run)``."""
    rows = matrices[matrices["name"] == name] if len(matrices) else matrices
    if rows.empty:
        return None
    stack = np.array([np.asarray(value, dtype=float) for value in rows["value"]])
    with np.errstate(all="ignore"):
        mean = np.nanmean(stack, axis=0) if np.isfinite(stack).any() else np.full(stack.shape[1:], np.nan)
    return pd.DataFrame(mean, index=list(tasks), columns=list(tasks))


def run_affinities(store: Store, run_id: int) -> dict[str, pd.DataFrame]:
    """The run's averaged lookahead affinity and gradient cosines, those it recorded."""
    info = store.get_run(run_id)
    if info is None:
        raise KeyError(f"run {run_id} is not in the store")
    matrices = store.matrices(run_id)
    found = {}
    for key, name in (("tag", AFFINITY_MATRIX), ("cosine", COSINE_MATRIX)):
        mean = mean_matrix(matrices, name, info.config.tasks)
        if mean is not None:
            found[key] = mean
    return found


def measured_steps(store: Store, run_id: int, name: str = AFFINITY_MATRIX) -> int:
    """How many steps recorded the ``name`` matrix."""
    return int((store.matrices(run_id, name=name)["name"] == name).sum())


# --- grouping -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grouping:
    """The best partition of the tasks into ``len(groups)`` groups under an affinity matrix."""

    groups: tuple[tuple[str, ...], ...]
    score: float  # mean over tasks of each task's score
    task_scores: dict[str, float]  # the mean affinity each task receives from its group

    @property
    def label(self) -> str:
        return " | ".join("{" + ", ".join(group) + "}" for group in self.groups)


def partitions(items: Sequence[str], n_groups: int | None = None) -> Iterator[tuple[tuple[str, ...], ...]]:
    """Every partition of ``items`` into non-empty groups (``n_groups`` of them, or any number),
    each once, groups and their members in ``items`` order."""
    items = list(items)

    def grow(index: int, groups: list[list[str]]) -> Iterator[tuple[tuple[str, ...], ...]]:
        if index == len(items):
            if n_groups is None or len(groups) == n_groups:
                yield tuple(tuple(group) for group in groups)
            return
        if n_groups is not None and len(groups) + (len(items) - index) < n_groups:
            return  # too few items left to open the groups still missing
        for group in groups:
            group.append(items[index])
            yield from grow(index + 1, groups)
            group.pop()
        if n_groups is None or len(groups) < n_groups:
            groups.append([items[index]])
            yield from grow(index + 1, groups)
            groups.pop()

    yield from grow(0, [])


def task_scores(affinity: pd.DataFrame, groups: Sequence[Sequence[str]]) -> dict[str, float]:
    """Each task's mean affinity received from the other tasks of its group (0 alone);
    NaN entries (pairs not measured) are left out of the mean."""
    scores = {}
    for group in groups:
        for target in group:
            received = [affinity.at[source, target] for source in group if source != target]
            received = [value for value in received if math.isfinite(value)]
            scores[target] = float(np.mean(received)) if received else 0.0
    return scores


def best_groupings(affinity: pd.DataFrame) -> list[Grouping]:
    """For g = 1..T, the partition into g groups with the highest score (see the module docstring);
    ``affinity`` is tasks x tasks, ``affinity.at[i, j]`` what task i does for task j."""
    tasks = list(affinity.index)
    if list(affinity.columns) != tasks:
        raise ValueError("the affinity matrix must have the same tasks, in the same order, as rows and columns")
    if len(tasks) > MAX_GROUPING_TASKS:
        raise ValueError(f"exhaustive grouping handles up to {MAX_GROUPING_TASKS} tasks (got {len(tasks)})")
    best: list[Grouping] = []
    for n_groups in range(1, len(tasks) + 1):
        top: Grouping | None = None
        for candidate in partitions(tasks, n_groups):
            scores = task_scores(affinity, candidate)
            score = float(np.mean([scores[task] for task in tasks]))
            if top is None or score > top.score + 1e-12:
                top = Grouping(candidate, score, scores)
        assert top is not None
        best.append(top)
    return best


def groupings_table(groupings: Sequence[Grouping]) -> pd.DataFrame:
    return pd.DataFrame({"groups": [len(g.groups) for g in groupings],
                         "grouping": [g.label for g in groupings],
                         "score": [g.score for g in groupings]})


# --- agreement between matrices -----------------------------------------------------------------

def pair_values(matrix: pd.DataFrame, *, symmetric: bool = True) -> pd.Series:
    """The off-diagonal entries: with ``symmetric``, one per unordered pair, (A[i,j] + A[j,i]) / 2;
    else one per ordered pair."""
    tasks = list(matrix.index)
    if symmetric:
        values = {f"{a}–{b}": (matrix.at[a, b] + matrix.at[b, a]) / 2 for a, b in combinations(tasks, 2)}
    else:
        values = {f"{a}→{b}": matrix.at[a, b] for a in tasks for b in tasks if a != b}
    return pd.Series(values, dtype=float)


def rank_agreement(matrices: dict[str, pd.DataFrame], *, symmetric: bool = True) -> pd.DataFrame:
    """Spearman rank correlation between every two matrices' off-diagonal entries (see
    :func:`pair_values`), over the pairs both measured: a ``names x names`` frame."""
    names = list(matrices)
    values = {name: pair_values(matrix, symmetric=symmetric) for name, matrix in matrices.items()}
    table = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        for b in names:
            both = pd.concat([values[a], values[b]], axis=1, keys=["a", "b"]).dropna()
            if len(both) >= 3:
                table.at[a, b] = both["a"].corr(both["b"], method="spearman")
    return table


# --- pairwise transfer (Standley et al.) --------------------------------------------------------

def _variant(base: RunConfig, **update) -> RunConfig:
    data = base.model_dump()
    data.update(affinity_every=0, probe_every=0, snapshot_every=0, method="ew", method_params={})
    data.update(update)
    return RunConfig.parse(data)


def stl_config(base: RunConfig) -> RunConfig:
    """The single-task baselines of every task of ``base``: one STL run (independent networks,
    each trained on its own loss: the same as T single-task runs), same data, steps and optimiser.
    It is the delta-m baseline of ``mtl_core.baselines``, so the two share their runs."""
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
    STL baseline, any baseline run with the same settings (``mtl_core.baselines``)."""
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


def train_transfer_study(store: Store, base: RunConfig,
                         submit: Callable[[RunConfig], int] | None = None) -> list[int]:
    """Start (``submit``: e.g. the app's ``JobManager.submit``) or train here, one after the other,
    the runs of the plan that are missing; returns their run ids. Runs already done are reused."""
    missing = missing_transfer_runs(store, base)
    if submit is not None:
        return [submit(config) for config in missing]
    from mtl_core.worker import execute_run  # imports torch: only when training here

    ids = []
    for config in missing:
        run_id = store.create_run(config, status="queued")
        execute_run(store, run_id, stop=threading.Event())
        ids.append(run_id)
    return ids


# --- checking a grouping ------------------------------------------------------------------------

def group_configs(base: RunConfig, grouping: Grouping | Sequence[Sequence[str]]) -> list[RunConfig]:
    """One run per group of the grouping, each with ``base``'s settings and the group's tasks."""
    groups = grouping.groups if isinstance(grouping, Grouping) else grouping
    configs = []
    for group in groups:
        data = base.model_dump() | {"tasks": tuple(group), "affinity_every": 0}
        try:
            configs.append(RunConfig.parse(data))
        except ConfigError:  # per-task knobs (static weights) do not fit a subset: equal weighting
            configs.append(RunConfig.parse(data | {"method": "ew", "method_params": {}}))
    return configs
