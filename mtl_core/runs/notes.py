"""Automatic notes on a run: the events a teacher would point at, each with its step and one line.

Pure functions over the frames of a :class:`~mtl_core.runs.view.RunView` (and the run's status):

- **a gradient vanishes** (:func:`vanishing_notes`): a task's gradient on the shared parameters
  falls below :data:`VANISH_FRACTION` of its own early size and stays there;
- **one task dominates** (:func:`dominance_notes`): one task's term ``w_t g_t`` of the shared
  update is :data:`DOMINANCE_RATIO` times the next largest for :data:`DOMINANCE_PROBES` probes in a
  row;
- **frequent conflict** (:func:`conflict_notes`): a pair's gradients conflict (cosine < 0) on more
  than :data:`CONFLICT_SHARE` of the probes, and on average;
- **divergence** (:func:`divergence_note`): the run ended ``diverged``.

:func:`run_notes` gathers them, in step order; :func:`run_summary` is the end-of-run table (final
metric per task, against the single-task baseline when the store holds one, with delta-m).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mtl_core.config import RunConfig
from mtl_core.engine.conflict import PAIR_SEPARATOR
from mtl_core.engine.metrics import delta_m
from mtl_core.registry import SuiteInfo
from mtl_core.runs.baselines import baseline_key, find_baselines, is_baseline
from mtl_core.runs.store import RunInfo, Store
from mtl_core.runs.view import RunView
from mtl_core.suites import SUITES

# A gradient a thousand times smaller than it was early on adds under 0.1 % to a shared update it
# once moved: the task has stopped training the shared layers. A live gradient's norm swings by a
# factor 100-150 between minibatches (ink on digit_attributes: 2 to 300 in one run), so 1e-3 does
# not fire on noise; the digit task that dies under equal weighting falls to ~1e-8.
VANISH_FRACTION = 1e-3
# A task's early size: the largest of its first probes' norms (one probe can catch an odd batch).
EARLY_PROBES = 3
# Below the fraction on this many probes in a row: one probe's small norm is not an event.
VANISH_PROBES = 2

# With T tasks summed, a term ten times the next largest sets over 90 % of the update's direction:
# the others barely steer the shared layers. Held for five probes in a row (the norms swing by 10x
# between single probes), so a passing spike is not called domination.
DOMINANCE_RATIO = 10.0
DOMINANCE_PROBES = 5

# More than half the probes with a negative cosine, and a negative mean: the pair pulls the shared
# layers apart more often than not. Unrelated tasks have cosines around 0, half of them negative
# by chance; the mean keeps those out. Not judged before a handful of probes.
CONFLICT_SHARE = 0.5
CONFLICT_MIN_PROBES = 5


@dataclass(frozen=True)
class Note:
    """One event of a run: ``kind`` (vanishing, dominance, conflict, divergence), the ``step`` it
    happened, the ``tasks`` it is about, a short ``title`` and a one-line ``text`` explaining it."""

    kind: str
    step: int
    title: str
    text: str
    tasks: tuple[str, ...] = field(default_factory=tuple)


def _wide(frame: pd.DataFrame) -> pd.DataFrame:
    """step, task, value -> steps x tasks (the last value of a repeated step), tasks in the order
    they were recorded (``pivot`` on unique rows: cheaper than ``pivot_table`` on a long run)."""
    unique = frame.drop_duplicates(["step", "task"], keep="last")
    table = unique.pivot(index="step", columns="task", values="value").sort_index()
    return table[list(frame["task"].unique())]  # unique() keeps the order of appearance


def _norm_table(grad_norms: pd.DataFrame) -> pd.DataFrame:
    """steps x tasks, finite norms only (NaN elsewhere)."""
    if grad_norms.empty:
        return pd.DataFrame()
    table = _wide(grad_norms)
    return table.where(np.isfinite(table))


def _first_run(flags: Sequence[bool], length: int) -> int | None:
    """Index of the first of ``length`` True values in a row, or None."""
    count = 0
    for index, flag in enumerate(flags):
        count = count + 1 if flag else 0
        if count == length:
            return index - length + 1
    return None


def vanishing_notes(grad_norms: pd.DataFrame) -> list[Note]:
    """A note per task whose gradient norm on the shared parameters fell below ``VANISH_FRACTION``
    of its early size (the largest of its first ``EARLY_PROBES`` probes) on ``VANISH_PROBES``
    probes in a row; its step is the first of them. ``grad_norms``: step, task, value."""
    table = _norm_table(grad_norms)
    notes = []
    for task in table.columns:
        norms = table[task].dropna()
        if len(norms) < EARLY_PROBES + VANISH_PROBES:
            continue
        early = float(norms.iloc[:EARLY_PROBES].max())
        if early <= 0:
            continue  # no gradient from the start: nothing vanished, there was none
        later = norms.iloc[EARLY_PROBES:]
        small = (later < VANISH_FRACTION * early).tolist()
        start = _first_run(small, VANISH_PROBES)
        if start is None:
            continue
        step = int(later.index[start])
        back = next((int(s) for s, flag in zip(later.index[start:], small[start:], strict=True) if not flag), None)
        after = (f" It came back at step {back:,}." if back is not None else
                 " From then on its cosines with the other tasks, and with itself on the heatmap's "
                 "diagonal (+0.00), say nothing: a vanished gradient has no direction.")
        notes.append(Note(
            "vanishing", step, f"{task}'s gradient vanished",
            f"At step {step:,} the gradient of {task}'s loss on the shared layers fell to "
            f"{float(later.iloc[start]):.2g}, under {VANISH_FRACTION:g} of its early size "
            f"({early:.2g}): {task} no longer trains the shared layers (typically its units died or "
            f"saturated, often after another task's much larger gradient reshaped the shared "
            f"features).{after}", (task,)))
    return notes


def dominance_notes(grad_norms: pd.DataFrame, weights: pd.DataFrame | None = None) -> list[Note]:
    """A note per task whose term of the shared update, ``|w_t| * ||g_t||`` (``||g_t||`` alone
    where the method records no finite weight), was ``DOMINANCE_RATIO`` times the next largest on
    ``DOMINANCE_PROBES`` probes in a row; its step is the first of them. ``grad_norms`` and
    ``weights``: step, task, value."""
    table = _norm_table(grad_norms)
    if table.shape[1] < 2:
        return []
    terms = table
    if weights is not None and not weights.empty:
        on_probes = weights[weights["step"].isin(table.index)]  # weights come every step, norms on probes
        weight = _wide(on_probes).reindex(index=table.index, columns=table.columns).abs()
        terms = table * weight.where(np.isfinite(weight), 1.0).fillna(1.0)
    terms = terms.dropna()
    if terms.empty:
        return []
    ordered = np.sort(terms.to_numpy(), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ordered[:, -2] > 0, ordered[:, -1] / ordered[:, -2], np.inf)
    top = terms.idxmax(axis=1)
    notes = []
    for task in terms.columns:
        dominating = ((top == task).to_numpy() & (ratio >= DOMINANCE_RATIO)).tolist()
        start = _first_run(dominating, DOMINANCE_PROBES)
        if start is None:
            continue
        step = int(terms.index[start])
        others = [t for t in terms.columns if t != task]
        held = np.asarray(dominating)
        largest = float(np.max(ratio[held]))
        notes.append(Note(
            "dominance", step, f"{task}'s loss dominates",
            f"From step {step:,}, {task}'s gradient on the shared layers was at least "
            f"{DOMINANCE_RATIO:g}x {' and '.join(others) if len(others) < 3 else 'every other task'}'s "
            f"on {int(held.sum())} of {len(terms)} probes"
            f"{f' (up to {largest:,.0f}x)' if math.isfinite(largest) else ''}: the update follows "
            f"{task}, and the other tasks barely move the shared layers. A loss weighting (GradNorm, "
            "IMTL-L) or a gradient method (Nash-MTL, IMTL-G) balances them.", (task,)))
    return notes


def conflict_notes(pairs: pd.DataFrame) -> list[Note]:
    """A note per task pair whose gradients conflicted (cosine < 0) on more than ``CONFLICT_SHARE``
    of its probes, with a negative mean cosine, over at least ``CONFLICT_MIN_PROBES`` probes. Its
    step is the probe from which the share so far stayed above ``CONFLICT_SHARE``. ``pairs``:
    step, pair, value (:meth:`RunView.cosine_pairs`)."""
    notes = []
    for pair, rows in pairs.groupby("pair", sort=False):
        values = rows.sort_values("step", kind="stable")
        negative = (values["value"] < 0).to_numpy()
        probes = len(values)
        if probes < CONFLICT_MIN_PROBES or negative.mean() <= CONFLICT_SHARE or values["value"].mean() >= 0:
            continue
        share_so_far = np.cumsum(negative) / np.arange(1, probes + 1)
        above = share_so_far > CONFLICT_SHARE
        above[:CONFLICT_MIN_PROBES - 1] = False
        below = np.flatnonzero(~above)
        start = int(below[-1]) + 1 if len(below) else 0
        step = int(values["step"].iloc[start])
        first, second = str(pair).split(PAIR_SEPARATOR, 1)
        notes.append(Note(
            "conflict", step, f"{first} and {second} conflict often",
            f"Their gradients pointed against each other (cosine below 0) on {int(negative.sum())} of "
            f"{probes} probes ({negative.mean():.0%}, mean cosine {values['value'].mean():+.2f}), more "
            f"than half of them from step {step:,} on: a step that helps one hurts the other. Gradient "
            f"methods (PCGrad, CAGrad, MGDA) act on exactly this.", (first, second)))
    return notes


def divergence_note(status: str, message: str | None, last_step: int) -> Note | None:
    """The note of a run that ended ``diverged`` (its step: the one after the last recorded, whose
    loss was not finite), else None."""
    if status != "diverged":
        return None
    step = last_step + 1
    said = (message or f"a loss became non-finite at step {step:,}").strip().rstrip(".")
    return Note("divergence", step, "The run diverged",
                f"{said[:1].upper()}{said[1:]}. A loss that becomes NaN or infinite usually means steps "
                "too large for this set-up: try a smaller learning rate, or a method that bounds the "
                "update (e.g. MGDA, Aligned-MTL).")


def run_notes(view: RunView, tasks: Sequence[str], *, status: str = "running",
              message: str | None = None) -> list[Note]:
    """Every note of the run so far, in step order (then in the order the kinds are listed)."""
    notes = [*vanishing_notes(view.grad_norms), *dominance_notes(view.grad_norms, view.weights)]
    if len(tasks) > 1:
        notes += conflict_notes(view.cosine_pairs(tasks))
    diverged = divergence_note(status, message, view.step)
    if diverged is not None:
        notes.append(diverged)
    return sorted(notes, key=lambda note: note.step)


# --- the end of a run --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSummary:
    """What a run achieved: ``table`` (task, metric, higher_is_better, final, baseline, change —
    ``change`` is the relative gain over the baseline in per cent, positive is better), its
    ``delta_m`` (per cent, LibMTL's sign: positive is better; None without a finished baseline)
    and the ``baseline_id`` it was measured against."""

    table: pd.DataFrame
    delta_m: float | None
    baseline_id: int | None
    is_baseline: bool


def summary_table(final: Mapping[str, Mapping[str, float]], suite: SuiteInfo, tasks: Sequence[str],
                  baseline: Mapping[str, Mapping[str, float]] | None = None) -> tuple[pd.DataFrame, float | None]:
    """The final value of each task's own metric (``final``: {task: {metric: value}}, as
    :meth:`RunView.final_metrics` gives), against ``baseline`` (the same, of the STL run) when
    given; and delta-m over the tasks (None without a baseline or with a missing or zero value)."""
    rows = []
    for task in tasks:
        info = suite.task(task)
        value = final.get(task, {}).get(info.metric, math.nan)
        reference = (baseline or {}).get(task, {}).get(info.metric, math.nan)
        sign = 1.0 if info.higher_is_better else -1.0
        change = (100.0 * sign * (value - reference) / abs(reference)
                  if math.isfinite(reference) and reference != 0 else math.nan)
        rows.append({"task": task, "metric": info.metric, "higher_is_better": info.higher_is_better,
                     "final": value, "baseline": reference, "change": change})
    table = pd.DataFrame(rows, columns=["task", "metric", "higher_is_better", "final", "baseline", "change"])
    value = None
    if baseline is not None:
        try:
            value = delta_m({t: v for t, v in zip(table["task"], table["final"], strict=True)},
                            {t: v for t, v in zip(table["task"], table["baseline"], strict=True)},
                            {t: suite.task(t).higher_is_better for t in tasks})
        except ValueError:  # a task without a finite, non-zero baseline value
            value = None
        if value is not None and not math.isfinite(value):
            value = None
    return table, value


def run_summary(store: Store, info: RunInfo, view: RunView) -> RunSummary:
    """The end-of-run summary of a stored run: its final metrics from ``view`` and, when the store
    holds a finished single-task baseline of the same set-up (:func:`find_baselines`), that
    baseline's and delta-m."""
    config: RunConfig = info.config
    suite = SUITES[config.suite]
    baseline_run = None if is_baseline(config) else find_baselines(store, [config]).get(baseline_key(config))
    baseline = store.final_metrics(baseline_run.id) if baseline_run is not None else None
    table, value = summary_table(view.final_metrics(), suite, config.tasks, baseline)
    return RunSummary(table, value, baseline_run.id if baseline_run is not None else None, is_baseline(config))
