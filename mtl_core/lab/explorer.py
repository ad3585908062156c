"""The gradient explorer: hand-set task gradients, and what every gradient method makes of them.

Each method's update comes from its registered aggregator (:func:`make_aggregator`, the trainer's
code), called once on the hand-set Jacobian from a fresh state. Equal weighting is the plain sum
(DESIGN's scale convention). "Decreases every loss to first order" means the descent step
``-lr u`` has ``<u, g_t> > 0`` for every task t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mtl_core.methods import METHODS, aggregators, make_aggregator

ANGLE_RANGE = (0.0, 180.0)  # degrees between g1 and g2
RATIO_RANGE = (0.1, 10.0)  # |g2| / |g1|
_FIRST_ORDER_TOL = 1e-9  # relative: an inner product this close to 0 is "no change", not a decrease


def two_gradients(angle_deg: float, ratio: float) -> np.ndarray:
    """g1 = (1, 0) and g2 of length ``ratio`` at ``angle_deg`` from it: a [2 tasks, 2] Jacobian."""
    if not ANGLE_RANGE[0] <= angle_deg <= ANGLE_RANGE[1]:
        raise ValueError(f"the angle must be between 0 and 180 degrees (got {angle_deg:g})")
    if not RATIO_RANGE[0] <= ratio <= RATIO_RANGE[1]:
        raise ValueError(f"the length ratio must be between 0.1 and 10 (got {ratio:g})")
    theta = math.radians(angle_deg)
    return np.array([[1.0, 0.0], [ratio * math.cos(theta), ratio * math.sin(theta)]])


def gradient_methods() -> list[str]:
    """Every registered gradient-aggregation method, in the registry's order."""
    return list(aggregators())


def method_updates(jacobian: np.ndarray, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per method (``ew`` first): ``method, name, u1..uP, length, cos_g1..cos_gT,
    decreases_all, message``. A method that fails on this input keeps its row with NaN numbers
    and the error in ``message`` (so one method cannot blank the table)."""
    jacobian = np.asarray(jacobian, dtype=np.float64)
    n_tasks, n_params = jacobian.shape
    if not np.isfinite(jacobian).all():
        raise ValueError("every gradient component must be a finite number")
    rows = []
    for key in ["ew", *(m for m in (methods if methods is not None else gradient_methods()) if m != "ew")]:
        message = None
        try:
            if key == "ew":
                update = jacobian.sum(axis=0)
            else:
                out = make_aggregator(key, n_tasks)(torch.from_numpy(jacobian.copy()))
                update, message = out.update.numpy().astype(np.float64), out.message
        except Exception as error:  # a method's own failure on odd input is shown, not raised
            update, message = np.full(n_params, np.nan), f"{type(error).__name__}: {error}"
        rows.append({"method": key, "name": METHODS[key].name, **_describe(update, jacobian), "message": message})
    return pd.DataFrame(rows)


def _describe(update: np.ndarray, jacobian: np.ndarray) -> dict[str, object]:
    length = float(np.linalg.norm(update))
    dots = jacobian @ update
    norms = np.linalg.norm(jacobian, axis=1) * length
    with np.errstate(invalid="ignore", divide="ignore"):
        cosines = np.where(norms > 0, dots / norms, 0.0)
    scale = float(np.max(np.linalg.norm(jacobian, axis=1))) * max(length, 1e-300)
    decreases = bool(np.isfinite(dots).all() and (dots > _FIRST_ORDER_TOL * scale).all())
    row: dict[str, object] = {f"u{i + 1}": float(v) for i, v in enumerate(update)}
    row["length"] = length
    row.update({f"cos_g{t + 1}": float(c) for t, c in enumerate(cosines)})
    row["decreases_all"] = decreases
    return row
