"""MGDA (Sener & Koltun, NeurIPS 2018): the min-norm point of the convex hull of the task gradients."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from mtl_core.methods.base import GramAggregator, TwoTaskRule, torch
from mtl_core.methods.min_norm import min_norm_two, min_norm_weights
from mtl_core.registry import FEATURES_COST, JACOBIAN_COST, Knob, MethodInfo, Paper

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

VARIANTS = ("ub", "exact")
NORMALIZATIONS = ("none", "l2")
_GAP_WARNING = 1e-6  # report an inexact solve beyond this relative duality gap


class MGDA(GramAggregator):
    """Multiple-gradient descent (Sener & Koltun, "Multi-Task Learning as Multi-Objective
    Optimization", NeurIPS 2018, arXiv:1810.04650).

    The update is the point of minimum norm in the convex hull of the task gradients,
    ``u = sum_t w_t g_t`` with ``w`` on the simplex minimising ``|u|``. Unless it is zero (a
    Pareto-stationary point), it has ``<u, g_t> >= |u|^2 > 0`` for every task: no task's loss
    increases to first order. The weights come from the T x T Gram matrix by the paper's
    solver (:mod:`mtl_core.methods.min_norm`: closed form for two tasks, Frank-Wolfe for more,
    finished exactly). The weights sum to 1, as in the paper: the update is on the scale of one
    task's gradient, not of their sum.

    ``variant``: ``"ub"`` (default) is MGDA-UB, the paper's proposal and what its experiments
    use: the weights are computed from the gradients w.r.t. the shared representation (an upper
    bound of the parameter-space problem, one backward pass through the encoder instead of T),
    and the trainer then backpropagates ``w @ losses`` once; ``"exact"`` solves on the gradients
    w.r.t. the shared parameters (T backward passes). ``normalization``: the official code may
    divide each gradient by a normaliser before solving and then apply the weights to the raw
    losses (the paper itself does not include it); ``"l2"`` divides by the gradient's norm,
    ``"none"`` (default) does not. The code's ``"loss"`` and ``"loss+"`` need the losses, which an
    aggregator is not given.
    """

    def __init__(self, n_tasks: int, *, variant: str = "ub", normalization: str = "none") -> None:
        super().__init__(n_tasks)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)} (got {variant!r})")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)} (got {normalization!r})")
        self.variant = variant
        self.normalization = normalization
        self.space = "features" if variant == "ub" else "parameters"

    def fallback(self) -> tuple[float, str]:
        return 1.0 / self.n_tasks, "MGDA: the task gradients are not finite; fell back to their mean"

    def weights(self, gram: Tensor, eps: float) -> Tensor:
        if self.normalization == "l2":
            norms = gram.diagonal().sqrt()
            norms = torch.where(norms > 0, norms, torch.ones_like(norms))  # a zero gradient stays zero
            gram = gram / (norms[:, None] * norms[None, :])
        solution = min_norm_weights(gram.numpy())
        if not solution.exact and solution.gap > _GAP_WARNING:
            self.message = (f"MGDA: the min-norm solver stopped after {solution.iterations} Frank-Wolfe "
                            f"steps with relative duality gap {solution.gap:.1e} (an approximate min-norm point)")
        return torch.as_tensor(solution.weights)

    def _two_task_rule(self) -> TwoTaskRule:
        """Algorithm 1 on the (normalised) Gram entries: see :func:`mgda_two_rule`."""
        return TwoTaskRule(mgda_two_rule, (1.0 if self.normalization == "l2" else 0.0,))


ENTRY = MethodInfo(
    key="mgda",
    name="MGDA",
    kind="aggregation",
    category="multi-objective",
    summary="Step along the shortest vector in the convex hull of the task gradients: the "
            "direction that descends every task at once, or stops at a Pareto-stationary point.",
    formula=(r"w^\star = \arg\min_{w \in \Delta^{T}} \Big\lVert \sum_{t=1}^{T} w_t\, g_t \Big\rVert^2,"
             r"\qquad d = \sum_{t=1}^{T} w^\star_t\, g_t"),
    cost=f"MGDA-UB (default): {FEATURES_COST}; exact: {JACOBIAN_COST}",
    factory="mtl_core.methods.mgda:MGDA",
    knobs=(
        Knob(name="variant", label="Variant", kind="choice", default="ub", choices=("ub", "exact"),
             help="ub: solve on the gradients w.r.t. the shared representation (MGDA-UB, the "
                  "paper's proposal, one backward pass through the encoder); exact: on the "
                  "gradients w.r.t. the shared parameters (T backward passes)."),
        Knob(name="normalization", label="Gradient normalisation", kind="choice", default="none",
             choices=("none", "l2"),
             help="Divide each gradient by its norm before solving (the official code's 'l2'; the "
                  "weights then apply to the raw losses), or not (the paper)."),
    ),
    paper=Paper(authors="Sener & Koltun", title="Multi-Task Learning as Multi-Objective Optimization",
                venue="NeurIPS", year=2018, arxiv="1810.04650"),
    extra={
        "simplified": "The official code's 'loss' and 'loss+' normalisations divide by the "
                      "task losses, which a gradient aggregator is not given; only 'none' and"
                      " 'l2' are offered.",
        "known_for": "A guarantee: when it can, its step decreases every task's loss to first"
                     " order, and it stops only at a Pareto-stationary point; MGDA-UB made it"
                     " cheap enough for deep networks.",
        "struggles_with": "The min-norm combination leans toward the task with the smallest "
                          "gradient, so tasks with large gradients can learn slowly; in later "
                          "benchmark tables (e.g. Nash-MTL's) it beats equal weighting on some "
                          "benchmarks and falls well behind on others.",
        "try_it": {"config": {"suite": "multimnist", "tasks": ["left", "right"], "method": "mgda", "steps": 300},
                   "why": "The paper's own benchmark, MultiMNIST: two real digits overlap on one canvas, "
                          "share one trunk, and their gradients often conflict: watch the cosines and "
                          "how MGDA combines them."},
    },
)


def mgda_two_rule(g11: float, g12: float, g22: float, params: np.ndarray) -> tuple[float, float, bool]:
    """MGDA's weights for two tasks (a :class:`~mtl_core.methods.base.TwoTaskRule`): Algorithm 1
    (:func:`~mtl_core.methods.min_norm.min_norm_two`) on the Gram entries, divided first by
    the gradients' norms when ``params[0]`` is 1 (the ``l2`` normalisation)."""
    if not math.isfinite(g11 + g12 + g22):
        return 0.0, 0.0, False
    if params[0] > 0.0:
        norm1 = math.sqrt(g11) if g11 > 0.0 else 1.0  # a zero gradient stays zero
        norm2 = math.sqrt(g22) if g22 > 0.0 else 1.0
        g11, g12, g22 = g11 / (norm1 * norm1), g12 / (norm1 * norm2), g22 / (norm2 * norm2)
    if not max(g11, g22) > 0.0:  # both gradients zero: every combination is the min-norm point
        return 0.5, 0.5, True
    gamma = min_norm_two(g11, g12, g22)
    return gamma, 1.0 - gamma, True
