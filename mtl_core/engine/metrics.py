"""How a multi-task result is scored against others: delta-m %, the Pareto front, the hypervolume,
and whether a difference between two methods is distinguishable from seed noise.

Pure functions of numbers (no torch, no store), so that the Compare page, the CLI's ``sweep`` and
the tests compute the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def delta_m(metrics: Mapping[str, float], stl: Mapping[str, float],
            higher_is_better: Mapping[str, bool]) -> float:
    """Delta-m % (Maninis et al., "Attentive Single-Tasking of Multiple Tasks", CVPR 2019):

        delta_m = 100 / T * sum_t (-1)^{l_t} (M_t - M_t^STL) / M_t^STL,  l_t = 1 where lower is better.

    The mean relative gain of a multi-task model over its single-task baselines, in per cent, with
    LibMTL's sign: **positive is better** (Nash-MTL's papers report the negative of this). Tasks
    are those of ``stl``; each needs a finite, non-zero baseline value.
    """
    if not stl:
        raise ValueError("delta_m needs at least one task with a single-task baseline")
    total = 0.0
    for task, baseline in stl.items():
        if task not in metrics:
            raise ValueError(f"delta_m: no value for task {task!r}")
        if task not in higher_is_better:
            raise ValueError(f"delta_m: is higher better for task {task!r}? (not given)")
        if not math.isfinite(baseline) or baseline == 0:
            raise ValueError(f"delta_m: the baseline of task {task!r} must be finite and non-zero "
                             f"(got {baseline})")
        sign = 1.0 if higher_is_better[task] else -1.0
        total += sign * (float(metrics[task]) - baseline) / abs(baseline)
    return 100.0 * total / len(stl)


def _as_maximised(points: Sequence[Sequence[float]] | np.ndarray,
                  higher_is_better: Sequence[bool]) -> np.ndarray:
    """Points with every lower-is-better coordinate negated, so that larger is better everywhere."""
    array = np.asarray(points, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"points must be a 2-D array (runs x objectives), got shape {array.shape}")
    if array.shape[1] != len(higher_is_better):
        raise ValueError(f"{array.shape[1]} objectives but {len(higher_is_better)} directions")
    signs = np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)
    return array * signs


def non_dominated(points: Sequence[Sequence[float]] | np.ndarray,
                  higher_is_better: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the Pareto-optimal points: those no other point dominates (at least as good
    on every objective and strictly better on one). Rows with a NaN are never on the front;
    duplicates of a front point are all on it."""
    values = _as_maximised(points, higher_is_better)
    valid = np.isfinite(values).all(axis=1)
    mask = np.zeros(len(values), dtype=bool)
    for i in np.flatnonzero(valid):
        others = values[valid]
        dominated = ((others >= values[i]).all(axis=1) & (others > values[i]).any(axis=1)).any()
        mask[i] = not dominated
    return mask


def reference_point(points: Sequence[Sequence[float]] | np.ndarray, higher_is_better: Sequence[bool],
                    *, margin: float = 0.1) -> np.ndarray:
    """The hypervolume's reference point when none is given: per objective, the worst value among
    the points, moved a further ``margin`` of the value range (or of the value itself, when all
    are equal) towards worse, so every point, the extreme ones included, adds volume (the "nadir
    times 1.1" habit of multi-objective benchmarks)."""
    values = _as_maximised(points, higher_is_better)
    values = values[np.isfinite(values).all(axis=1)]
    if len(values) == 0:
        raise ValueError("no finite points to place a reference point under")
    worst, best = values.min(axis=0), values.max(axis=0)
    spread = np.where(best > worst, best - worst, np.maximum(np.abs(worst), 1e-12))
    reference = worst - margin * spread
    return reference * np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)


def hypervolume(points: Sequence[Sequence[float]] | np.ndarray, reference: Sequence[float],
                higher_is_better: Sequence[bool]) -> float:
    """The volume of objective space that the points dominate and that dominates ``reference``
    (Zitzler & Thiele 1998, "the size of the space covered"): larger is better, and it grows only
    when the front advances. Exact, by slicing along one objective (fine for the tens of runs a
    comparison holds). Points that do not beat the reference on every objective add nothing."""
    values = _as_maximised(points, higher_is_better)
    ref = _as_maximised([list(reference)], higher_is_better)[0]
    if not np.isfinite(ref).all():
        raise ValueError(f"the reference point must be finite (got {list(reference)})")
    values = values[np.isfinite(values).all(axis=1)]
    values = values[(values > ref).all(axis=1)]
    return float(_volume(values, ref))


def _volume(values: np.ndarray, ref: np.ndarray) -> float:
    if len(values) == 0:
        return 0.0
    if values.shape[1] == 1:
        return float(values[:, 0].max() - ref[0])
    # Sweep the last objective from the best value down: between two consecutive levels, the
    # dominated region is the (k-1)-dimensional volume of the points at or above the upper level.
    order = np.argsort(-values[:, -1], kind="stable")
    ordered = values[order]
    total = 0.0
    for i, point in enumerate(ordered):
        lower = ordered[i + 1, -1] if i + 1 < len(ordered) else ref[-1]
        height = point[-1] - lower
        if height > 0:
            total += height * _volume(ordered[: i + 1, :-1], ref[:-1])
    return total


def mean_rank(table: np.ndarray, higher_is_better: Sequence[bool]) -> np.ndarray:
    """Mean rank of each row (a method) over the columns (tasks): 1 is best on a task, ties share
    the mean of their ranks (as in the MR column of LibMTL-style tables). A NaN in a column ranks
    last there."""
    values = _as_maximised(table, higher_is_better)
    ranks = np.zeros_like(values)
    for column in range(values.shape[1]):
        scores = np.where(np.isfinite(values[:, column]), values[:, column], -np.inf)
        for row, score in enumerate(scores):
            better = (scores > score).sum()
            ties = (scores == score).sum()
            ranks[row, column] = better + (ties + 1) / 2
    return ranks.mean(axis=1)


def pm(mean: float, std: float, *, digits: int = 4) -> str:
    """"0.9120 ± 0.0040"; the mean alone for one seed; "-" for none."""
    if mean is None or not np.isfinite(mean):
        return "-"
    if std is None or not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


# --- seed noise -----------------------------------------------------------------------------------

BETTER, WORSE, WITHIN_NOISE = "better", "worse", "within noise"
VERDICTS = (BETTER, WORSE, WITHIN_NOISE)
CONFIDENCE = 0.95
ONE_SEED_NOTE = "one seed: no test"
UNPAIRED_NOTE = "the seeds differ: unpaired (Welch)"
CONSTANT_NOTE = "the same difference on every seed: unpaired (Welch)"
REFERENCE_NOTE = "the reference"  # the note of the row every other row is tested against

# Two-sided 95 % quantiles of Student's t (the 0.975 quantile) by degrees of freedom, with
# fractional ones below 5 for Welch's df; between entries, log t is interpolated linearly in 1/df
# (within 0.5 % of the exact value everywhere, tests/test_noise.py). A table, not scipy: the core needs numpy only.
_T_975 = {1: 12.7062, 1.25: 8.0280, 1.5: 6.0167, 1.75: 4.9488, 2: 4.3027, 2.5: 3.5747, 3: 3.1824,
          3.5: 2.9401, 4: 2.7764, 4.5: 2.6589, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.3060,
          9: 2.2622, 10: 2.2281, 11: 2.2010, 12: 2.1788, 13: 2.1604, 14: 2.1448, 15: 2.1314,
          16: 2.1199, 17: 2.1098, 18: 2.1009, 19: 2.0930, 20: 2.0860, 21: 2.0796, 22: 2.0739,
          23: 2.0687, 24: 2.0639, 25: 2.0595, 26: 2.0555, 27: 2.0518, 28: 2.0484, 29: 2.0452,
          30: 2.0423, 40: 2.0211, 60: 2.0003, 120: 1.9799, math.inf: 1.9600}


def t_quantile_975(df: float) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (``df`` >= 1, not
    necessarily whole: Welch's df is not): the half-width of a 95 % interval in standard errors."""
    if not df >= 1:
        raise ValueError(f"t quantile: degrees of freedom must be at least 1 (got {df})")
    if df in _T_975:
        return _T_975[df]
    levels = sorted(_T_975)
    upper = next(level for level in levels if level > df)
    lower = levels[levels.index(upper) - 1]
    # log t is nearly linear in 1/df (1/inf = 0), so interpolate that.
    x, x0, x1 = 1 / df, 1 / lower, 1 / upper
    log_t = math.log(_T_975[upper]) + math.log(_T_975[lower] / _T_975[upper]) * (x - x1) / (x0 - x1)
    return math.exp(log_t)


@dataclass(frozen=True)
class NoiseTest:
    """One method's difference to a reference method on one measure, and whether seed noise
    explains it. ``diff``, ``low`` and ``high`` are in the measure's units, the method minus the
    reference (for a lower-is-better metric a negative ``diff`` is the better one); ``seeds``: the
    seeds the test used (pairs, or the smaller group for Welch's); ``test``: "paired t",
    "Welch t" or "none"; ``note``: why there was no test, else ""."""

    verdict: str
    diff: float
    low: float
    high: float
    seeds: int
    test: str
    note: str = ""

    def describe(self, digits: int = 4) -> str:
        return verdict_text(self.verdict, self.diff, self.low, self.high, note=self.note, digits=digits)


def verdict_text(verdict: str, diff: float, low: float, high: float, *, note: str = "",
                 digits: int = 4) -> str:
    """A verdict as a reader sees it: "within noise: +0.0120 [-0.0310, +0.0550]" (the difference
    and its interval), "within noise (one seed: no test)", "reference"."""
    if note == REFERENCE_NOTE:
        return "reference"
    if low is None or not math.isfinite(low):
        return f"{verdict} ({note})" if note else verdict
    return f"{verdict}: {diff:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def noise_test(values: Mapping[int, float], reference: Mapping[int, float], *,
               higher_is_better: bool = True) -> NoiseTest:
    """Is a method's result (``values``, seed -> final value) distinguishable from a reference
    method's (``reference``, same measure) across seeds? A 95 % t-interval of the mean difference.

    Paired by seed when at least two seeds are shared: runs of one seed share the data order and
    the initialisation, so a lucky seed lifts both methods; the per-seed difference cancels that
    common part, which is most of the seed-to-seed spread, and a paired test sees a consistent
    gain that overlapping mean ± std bands would hide. Without two shared seeds (stored runs picked
    by hand) but with two or more seeds on each side: Welch's unpaired interval (unequal
    variances); also when the paired differences are all equal (no spread, no estimate of the
    noise: typical of accuracies on few examples, which move in steps). Otherwise there is
    nothing to estimate the noise from: ``within noise`` with the note "one seed: no test".

    A t-interval rather than a p-value: it says how large the difference is, in the metric's own
    units, next to the verdict; it assumes roughly normal differences, the usual choice at the
    3-10 seeds a comparison affords (a rank test cannot reach 95 % below 6 pairs). The verdict is
    ``better`` or ``worse`` when the interval excludes 0 (on the better or the worse side, by
    ``higher_is_better``), else ``within noise``. Each verdict is one test at 95 %, uncorrected
    for the many in a table: with no real difference anywhere, about one in twenty still reads
    better or worse. NaN values (a run without the measure) are left out.
    """
    ours, theirs = _finite_by_seed(values), _finite_by_seed(reference)
    shared = sorted(set(ours) & set(theirs))
    if len(shared) >= 2:
        diffs = np.array([ours[s] - theirs[s] for s in shared])
        n = len(diffs)
        mean, spread = float(diffs.mean()), float(diffs.std(ddof=1))
        scale = max(abs(v) for v in [*ours.values(), *theirs.values()])
        # Differences equal on every seed estimate no noise at all (an accuracy on a few hundred
        # examples moves in steps, so two seeds can differ by exactly one example twice): a
        # zero-width interval would call any such difference real. Use the unpaired spread then.
        if spread > 1e-9 * max(scale, 1e-12) or mean == 0:
            half = t_quantile_975(n - 1) * spread / math.sqrt(n)
            return _verdict(mean, half, n, "paired t", higher_is_better)
    if min(len(ours), len(theirs)) >= 2:
        a, b = np.array(list(ours.values())), np.array(list(theirs.values()))
        note = UNPAIRED_NOTE if len(shared) < 2 else CONSTANT_NOTE
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = math.sqrt(va + vb)
        mean = float(a.mean() - b.mean())
        half = 0.0
        if se > 0:
            df = se ** 4 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))  # Welch-Satterthwaite
            half = t_quantile_975(max(df, 1.0)) * se
        return _verdict(mean, half, min(len(a), len(b)), "Welch t", higher_is_better, note=note)
    mean = float(np.mean([ours[s] - theirs[s] for s in shared])) if shared else math.nan
    return NoiseTest(WITHIN_NOISE, mean, math.nan, math.nan, len(shared), "none", ONE_SEED_NOTE)


def _finite_by_seed(values: Mapping[int, float]) -> dict[int, float]:
    out = {}
    for seed, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):  # None, pandas' NA
            continue
        if math.isfinite(number):
            out[int(seed)] = number
    return out


def _verdict(mean: float, half: float, seeds: int, test: str, higher_is_better: bool, *,
             note: str = "") -> NoiseTest:
    low, high = mean - half, mean + half
    if low > 0:
        verdict = BETTER if higher_is_better else WORSE
    elif high < 0:
        verdict = WORSE if higher_is_better else BETTER
    else:
        verdict = WITHIN_NOISE
    return NoiseTest(verdict, mean, low, high, seeds, test, note)


def noise_ranks(better: np.ndarray) -> list[str]:
    """Ranks that admit ties: ``better[i, j]`` is True when row i is distinguishably better than
    row j (e.g. its :func:`noise_test` says ``better``). A row's rank is one plus the number of
    rows distinguishably better than it, so rows that no test separates share a rank, marked
    "=2" (the sports-table way); "3" alone where one row holds it. Within noise is not
    transitive (A ~ B and B ~ C while A beats C), so two rows of one rank need not be
    indistinguishable from each other: each rank counts only what is proven to beat it."""
    matrix = np.asarray(better, dtype=bool)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"better must be a square matrix (rows x rows), got shape {matrix.shape}")
    ranks = 1 + matrix.sum(axis=0)
    counts = {rank: int((ranks == rank).sum()) for rank in ranks}
    return [f"={rank}" if counts[rank] > 1 else str(rank) for rank in ranks]
