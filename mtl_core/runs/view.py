"""What the pages draw of a stored run, selected from the store's long format.

The store keeps a run's numbers in long format, one per row (step, split, task, metric, value), and
its matrices as (step, name, value). A page should not need to know that layout: a :class:`RunView`
holds a run's records as read from the store and hands out one tidy frame per thing a page draws,
in the shapes the figure builders of :mod:`mtl_core.figures` take. Every frame is a new DataFrame
with a 0..n-1 index, in the store's order (by step), ``step`` as int64 and ``value`` as float64
(NaN where the run recorded NaN):

=====================  ==========================  ===================================================
frame                  columns                     what
=====================  ==========================  ===================================================
``losses``             step, task, value           training loss per task
``validation``         step, task, metric, value   every validation metric per task (its own and loss)
``weights``            step, task, value           the method's weight per task (NaN: no weights)
``grad_norms``         step, task, value           each task's gradient norm on the shared parameters
``update_alignment``   step, task, value           cos(update, g_t) per task
``update_norms``       step, value                 the norm of the shared parameters' update
``times``              step, value                 seconds since training began
``cosines``            step, value                 T x T cosine matrices (nested lists, tasks' order)
``layer_cosines``      step, layer, pair, value    per-layer cosine of each task pair
``snapshots``          step, name, value           the architecture's sharing snapshots (DataFrames)
=====================  ==========================  ===================================================

:meth:`RunView.cosine_pairs` gives the cosines as (step, pair, value), and :func:`conflict_frames`
the gradient-conflict statistics of several runs at once (the Train and Compare pages).

Reading: :meth:`RunView.read` reads a run (a long one as a bounded sample), or, given the view of the last poll, only
the steps after it (a live page polls twice a second, and a long run logs thousands of rows per
second). :meth:`RunView.read_probes` and :meth:`RunView.read_snapshots` read only what the
conflict diagnostics or the snapshots need, with the store's indexed queries; the other frames of
such a view are empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from mtl_core.engine import conflict
from mtl_core.engine.downsample import POINTS_PER_SERIES, decimate, sample_steps
from mtl_core.engine.records import GRADIENT_MATRICES
from mtl_core.runs.store import RunInfo, Store

TRAIN = "train"
VAL = "val"
COSINE = "cosine"
SCALAR_COLUMNS = ["step", "split", "task", "metric", "value"]
MATRIX_COLUMNS = ["step", "name", "value"]
CONFLICT_KEYS = ("pairs", "shares", "norms", "alignment", "layers")
SERIES = ["split", "task", "metric"]  # one curve of the long format
# A run of up to this many times ``points`` steps is read whole on first open and decimated here
# (spikes kept exactly); a longer one through the store's sampled read (index seeks only).
FULL_READ_POINTS = 10


def _empty_scalars() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype="int64"), "split": pd.Series(dtype=object),
                         "task": pd.Series(dtype=object), "metric": pd.Series(dtype=object),
                         "value": pd.Series(dtype="float64")})


def _empty_matrices() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype="int64"), "name": pd.Series(dtype=object),
                         "value": pd.Series(dtype=object)})


@dataclass(frozen=True, eq=False)
class RunView:
    """The records of one run as read from the store, and the frames a page draws from them.

    ``scalars`` and ``matrices`` are the store's frames (:meth:`Store.scalars`,
    :meth:`Store.matrices`); ``step`` is the last step of ``scalars`` (0 before the first).
    """

    run_id: int
    scalars: pd.DataFrame
    matrices: pd.DataFrame
    step: int = 0

    # --- reading --------------------------------------------------------------------------------

    @classmethod
    def read(cls, store: Store, run_id: int, *, previous: RunView | None = None,
             points: int = POINTS_PER_SERIES) -> RunView:
        """The run's records, bounded: with ``previous`` (the view of the same run read before),
        only the steps from its last one on are asked for and joined to what it holds; without,
        a short run is read whole and a long one as the store's sampled read (``points`` steps per
        series, index seeks only: a 200,000-step run opens as fast as a 1,000-step one).

        What a view holds never grows with the run: once a series passes ``2 * points`` rows it is
        decimated back to ``points`` (:func:`decimate`: per bucket of steps its first, min, max and
        last row, so spikes and the final value survive), and matrices keep ``points`` evenly
        spread steps per name, the latest always among them."""
        if previous is not None and previous.run_id != run_id:
            previous = None
        if previous is None:
            if store.last_step(run_id) > FULL_READ_POINTS * points:
                scalars = store.scalars_sampled(run_id, points=points)
                matrices = store.matrices_sampled(run_id, points=points)
            else:
                scalars, matrices = store.scalars(run_id), store.matrices(run_id)
        else:
            seen = previous.step
            # Ask again for the last step seen (the store returns steps after ``since_step``): cheap,
            # and safe should a step's rows ever be split between two of the worker's batches.
            since = max(seen - 1, 0)
            old = previous.scalars
            scalars = pd.concat([old[old["step"] < seen], store.scalars(run_id, since_step=since)],
                                ignore_index=True)
            old = previous.matrices
            matrices = pd.concat([old[old["step"] < seen], store.matrices(run_id, since_step=since)],
                                 ignore_index=True)
        scalars, matrices = _bounded_scalars(scalars, points), _bounded_matrices(matrices, points)
        return cls(int(run_id), scalars, matrices, int(scalars["step"].max()) if len(scalars) else 0)

    @classmethod
    def read_probes(cls, store: Store, run_id: int, *, points: int = POINTS_PER_SERIES) -> RunView:
        """Only what the gradient probes recorded: ``grad_norms``, ``update_alignment``,
        ``layer_cosines`` and ``cosines`` (the other frames are empty), at no more than ``points``
        probe steps per series (the store's sampled read: the conflict shares of a long run are
        estimated from those probes)."""
        parts = [store.scalars_sampled(run_id, points=points, split=TRAIN, metric="grad_norm"),
                 store.scalars_sampled(run_id, points=points, split=TRAIN, metric="cos_update"),
                 store.scalars_sampled(run_id, points=points, split=conflict.LAYER_SPLIT)]
        scalars = pd.concat([part for part in parts if len(part)] or [_empty_scalars()], ignore_index=True)
        return cls(int(run_id), scalars, store.matrices_sampled(run_id, points=points, name=COSINE),
                   int(scalars["step"].max()) if len(scalars) else 0)

    @classmethod
    def read_snapshots(cls, store: Store, run_id: int, *, points: int = POINTS_PER_SERIES) -> RunView:
        """Only the matrices (``snapshots``, ``cosines``), at no more than ``points`` steps per
        name; the scalar frames are empty."""
        return cls(int(run_id), _empty_scalars(), store.matrices_sampled(run_id, points=points))

    @property
    def held_rows(self) -> int:
        """How many rows this view holds (scalars and matrices): bounded, whatever the run's length."""
        return len(self.scalars) + len(self.matrices)

    # --- selecting ------------------------------------------------------------------------------

    def _select(self, split: str, metric: str | None, columns: list[str]) -> pd.DataFrame:
        rows = self.scalars["split"] == split
        if metric is not None:
            rows &= self.scalars["metric"] == metric
        return self.scalars.loc[rows, columns].reset_index(drop=True)

    @property
    def empty(self) -> bool:
        """Whether no scalar record was read (the run has not logged a step yet)."""
        return self.scalars.empty

    @property
    def started(self) -> bool:
        """Whether the run has recorded a training step."""
        return bool((self.scalars["split"] == TRAIN).any())

    @cached_property
    def losses(self) -> pd.DataFrame:
        """step, task, value: each task's training loss."""
        return self._select(TRAIN, "loss", ["step", "task", "value"])

    @cached_property
    def validation(self) -> pd.DataFrame:
        """step, task, metric, value: every validation number (each task's own metric and its loss)."""
        return self._select(VAL, None, ["step", "task", "metric", "value"])

    @cached_property
    def weights(self) -> pd.DataFrame:
        """step, task, value: the weight the method gave each task's loss (NaN for a method whose
        update is not a weighted sum of the task gradients)."""
        return self._select(TRAIN, "weight", ["step", "task", "value"])

    @cached_property
    def grad_norms(self) -> pd.DataFrame:
        """step, task, value: each task's gradient norm on the shared parameters (probe steps)."""
        return self._select(TRAIN, "grad_norm", ["step", "task", "value"])

    @cached_property
    def update_alignment(self) -> pd.DataFrame:
        """step, task, value: cos(update, g_t), how directly the update descends each task."""
        return self._select(TRAIN, "cos_update", ["step", "task", "value"])

    @cached_property
    def update_norms(self) -> pd.DataFrame:
        """step, value: the norm of the shared parameters' update direction."""
        return self._select(TRAIN, "update_norm", ["step", "value"])

    @cached_property
    def times(self) -> pd.DataFrame:
        """step, value: seconds since training began, at each step."""
        return self._select(TRAIN, "time_s", ["step", "value"])

    @cached_property
    def layer_cosines(self) -> pd.DataFrame:
        """step, layer, pair, value: the per-layer cosine of each task pair (probe steps)."""
        return conflict.layer_frame(self.scalars[self.scalars["split"] == conflict.LAYER_SPLIT])

    @cached_property
    def cosines(self) -> pd.DataFrame:
        """step, value: the T x T cosine matrix of the task gradients (nested lists, in the
        config's task order) at each probe."""
        return self.matrices.loc[self.matrices["name"] == COSINE, ["step", "value"]].reset_index(drop=True)

    @cached_property
    def snapshots(self) -> pd.DataFrame:
        """step, name, value: the architecture's sharing snapshots (each a DataFrame)."""
        rows = ~self.matrices["name"].isin(GRADIENT_MATRICES)
        return self.matrices.loc[rows, MATRIX_COLUMNS].reset_index(drop=True)

    @property
    def snapshot_steps(self) -> list[int]:
        """The steps with a sharing snapshot, in order."""
        return sorted({int(step) for step in self.snapshots["step"]})

    @property
    def matrix_step(self) -> int | None:
        """The last step with any matrix (cosines or snapshots); None before the first."""
        return int(self.matrices["step"].max()) if len(self.matrices) else None

    def latest_cosine(self) -> tuple[int, list[list[float]]] | None:
        """(step, matrix) of the latest gradient probe, or None before the first."""
        if self.cosines.empty:
            return None
        latest = self.cosines.sort_values("step", kind="stable").iloc[-1]
        return int(latest["step"]), latest["value"]

    def cosine_pairs(self, tasks: Sequence[str]) -> pd.DataFrame:
        """step, pair, value: each probe's cosine per pair of ``tasks`` (the config's order)."""
        return conflict.cosine_pairs(self.cosines, tasks)

    def final_metrics(self) -> dict[str, dict[str, float]]:
        """{task: {metric: value}}: the last validation value of each task and metric (NaN where
        the run recorded NaN), as :meth:`Store.final_metrics` gives it; empty before the first."""
        last = self.validation.drop_duplicates(["task", "metric"], keep="last")
        final: dict[str, dict[str, float]] = {}
        for task, metric, value in zip(last["task"], last["metric"], last["value"], strict=True):
            final.setdefault(task, {})[metric] = float(value)
        return final


def _bounded_scalars(scalars: pd.DataFrame, points: int) -> pd.DataFrame:
    """The held scalars, each series decimated to ``points`` rows once one passes ``2 * points``
    (re-decimating at twice the budget, not at every poll, keeps a live page's poll cheap)."""
    if len(scalars) <= 2 * points:
        return scalars
    if scalars.groupby(SERIES, sort=False).size().max() <= 2 * points:
        return scalars
    kept = decimate(scalars, points, by=SERIES)
    return kept.sort_values("step", kind="stable").reset_index(drop=True)


def _bounded_matrices(matrices: pd.DataFrame, points: int) -> pd.DataFrame:
    """The held matrices, at most ``points`` evenly spread steps per name once one passes
    ``2 * points`` (a min or max of a matrix means nothing, so steps are sampled, the last kept)."""
    if len(matrices) <= 2 * points:
        return matrices
    keep = pd.Series(True, index=matrices.index)
    for _, rows in matrices.groupby("name", sort=False):
        if len(rows) > 2 * points:
            chosen = set(sample_steps(rows["step"], points))
            keep[rows.index] = rows["step"].isin(chosen)
    return matrices[keep].reset_index(drop=True)


# --- several runs ------------------------------------------------------------------------------------

def conflict_frames(store: Store, infos: Sequence[RunInfo],
                    label: Callable[[RunInfo], str] = lambda info: f"#{info.id} {info.name}",
                    ) -> dict[str, pd.DataFrame]:
    """The gradient-conflict statistics of the runs, each frame with a ``run`` column (``label``
    of the run), the runs' rows one after another:

    - ``pairs``: step, pair, value — each probe's cosine per task pair;
    - ``shares``: pair, probes, conflicts, share, mean_cosine — how often each pair conflicted;
    - ``norms``: step, task, norm, share, ratio — gradient norms and how one task dominates;
    - ``alignment``: task, value — the mean cos(update, g_t) of each task;
    - ``layers``: step, layer, pair, value — the per-layer cosines.
    """
    per_run = []
    for info in infos:
        view = RunView.read_probes(store, info.id)
        name = label(info)
        pairs = view.cosine_pairs(list(info.config.tasks))
        alignment = view.update_alignment.groupby("task", sort=False)["value"].mean().reset_index()
        per_run.append({
            "pairs": pairs.assign(run=name),
            "shares": conflict.conflict_share(pairs).assign(run=name),
            "norms": conflict.norm_ratios(view.grad_norms).assign(run=name),
            "alignment": alignment.assign(run=name),
            "layers": view.layer_cosines.assign(run=name),
        })
    if not per_run:
        return {key: pd.DataFrame() for key in CONFLICT_KEYS}
    return {key: pd.concat([frames[key] for frames in per_run], ignore_index=True) for key in CONFLICT_KEYS}
