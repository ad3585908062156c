"""MGDA: the min-norm point of the convex hull of the task gradients."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from mtl_core.aggregation import Aggregation, Aggregator, TwoTaskRule
from mtl_core.aggregation.min_norm import min_norm_two, min_norm_weights

VARIANTS = ("ub", "exact")
NORMALIZATIONS = ("none", "l2")
_GAP_WARNING = 1e-6  # report an inexact solve beyond this relative duality gap


class MGDA(Aggregator):
    """Multiple-gradient descent (Sener & Koltun, "Multi-Task Learning as Multi-Objective
    Optimization", NeurIPS 2018, arXiv:1810.04650).

    The update is the point of minimum norm in the convex hull of the task gradients,
    ``u = sum_t w_t g_t`` with ``w`` on the simplex minimising ``|u|``. Unless it is zero (a
    Pareto-stationary point), it has ``<u, g_t> >= |u|^2 > 0`` for every task: no task's loss
    increases to first order. The weights come from the T x T Gram matrix by the paper's
    solver (:mod:`mtl_core.aggregation.min_norm`: closed form for two tasks, Frank-Wolfe for more,
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

    def __call__(self, jacobian: Tensor, /) -> Aggregation:
        gram = (jacobian @ jacobian.T).to(device="cpu", dtype=torch.float64)
        if not torch.isfinite(gram).all():
            weights = torch.full((self.n_tasks,), 1.0 / self.n_tasks, dtype=jacobian.dtype, device=jacobian.device)
            return Aggregation(weights @ jacobian, weights,
                               "MGDA: the task gradients are not finite; fell back to their mean")
        if self.normalization == "l2":
            norms = gram.diagonal().sqrt()
            norms = torch.where(norms > 0, norms, torch.ones_like(norms))  # a zero gradient stays zero
            gram = gram / (norms[:, None] * norms[None, :])
        solution = min_norm_weights(gram.numpy())
        weights = torch.as_tensor(solution.weights, dtype=jacobian.dtype, device=jacobian.device)
        message = None
        if not solution.exact and solution.gap > _GAP_WARNING:
            message = (f"MGDA: the min-norm solver stopped after {solution.iterations} Frank-Wolfe steps "
                       f"with relative duality gap {solution.gap:.1e} (an approximate min-norm point)")
        return Aggregation(weights @ jacobian, weights, message)

    def _two_task_rule(self) -> TwoTaskRule:
        """Algorithm 1 on the (normalised) Gram entries: see :func:`mgda_two_rule`."""
        return TwoTaskRule(mgda_two_rule, (1.0 if self.normalization == "l2" else 0.0,))


def mgda_two_rule(g11: float, g12: float, g22: float, params: np.ndarray) -> tuple[float, float, bool]:
    """MGDA's weights for two tasks (a :class:`~mtl_core.aggregation.TwoTaskRule`): Algorithm 1
    (:func:`~mtl_core.aggregation.min_norm.min_norm_two`) on the Gram entries, divided first by
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
