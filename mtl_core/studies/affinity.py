"""Task affinity read from stored runs: which tasks help which, measured during training, and how
far two measures agree.

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
  The trainer measures Z (:mod:`mtl_core.engine.lookahead`), reusing the task Jacobian of its
  gradient probes, so a measurement costs T extra forward passes; here the Z's of the steps where
  it was measured are averaged into a T x T matrix (rows i: the task that stepped; columns j: the
  task whose loss moved), as the paper averages over training.
- **Gradient-cosine affinity**: the mean over training of the probes' cosines cos(g_i, g_j) (free).

The third measure, pairwise transfer, is :mod:`mtl_core.studies.transfer`; the groupings any of
them suggests, :mod:`mtl_core.studies.grouping`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mtl_core.runs.store import Store

AFFINITY_MATRIX = "affinity"  # the store's matrix name for the lookahead affinity of a step
COSINE_MATRIX = "cosine"


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
