"""StepRecord: what the trainer reports after a step, the unit the store and the charts consume."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# Matrices the trainer records about the tasks' gradients; every other stored matrix is a
# sharing snapshot of the architecture.
GRADIENT_MATRICES = frozenset({"cosine", "affinity"})


@dataclass
class StepRecord:
    """One training step. Optional parts are present only on probe / eval / snapshot steps.

    Per-task dicts are keyed by task name in the run's task order; ``cosine`` is the T x T matrix of
    cosines between task gradients on the shared parameters, rows and columns in that same order.
    """

    step: int  # 1-based: the number of optimiser steps taken
    time_s: float  # seconds since training started (after set-up)
    loss: dict[str, float]
    weight: dict[str, float]
    grad_norm: dict[str, float] | None = None
    cosine: list[list[float]] | None = None
    update_norm: float | None = None  # norm of the shared parameters' update direction
    cos_update: dict[str, float] | None = None  # cos(update, g_t)
    layer_cosine: dict[str, dict[str, float]] | None = None  # layer -> pair -> cosine, mtl_core.engine.conflict
    affinity: list[list[float]] | None = None  # lookahead affinity Z[i][j] (TAG), mtl_core.engine.lookahead
    val: dict[str, dict[str, float]] | None = None  # task -> {"loss": .., "<metric>": ..}
    snapshot: dict[str, pd.DataFrame] | None = None
    message: str | None = None  # set on the step where the method's message (a fallback) changed
