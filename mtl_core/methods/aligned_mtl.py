"""Aligned-MTL (Senushkin et al., CVPR 2023): make the gradient system well conditioned by
equalising its principal components."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import FLOAT32_EPS, GramAggregator, torch
from mtl_core.registry import FEATURES_COST, JACOBIAN_COST, Knob, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor

SCALE_MODES = ("min", "median", "rmse")


class AlignedMTL(GramAggregator):
    """Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin, "Independent Component Alignment for
    Multi-Task Learning", CVPR 2023, arXiv:2305.19000).

    The gradient system J (T x P) is replaced by the closest one (Procrustes) whose singular
    values are all equal, i.e. whose condition number is 1: with the eigen-decomposition of the
    Gram matrix G = J J^T = V diag(lambda) V^T, the aligned system is B J with

        B = sigma V diag(lambda)^{-1/2} V^T,    sigma = sqrt(lambda_min)  (the paper's scale),

    so (B J)(B J)^T = sigma^2 V V^T: its non-zero singular values all equal sigma. The update is
    the sum of the aligned gradients (the paper's task pre-weights all 1), ``weights = B 1``.
    Eigenvalues below lambda_max * T * eps (of the Jacobian's dtype) count as zero, as in the
    official code: dependent gradients are aligned within the space they span.
    ``scale_mode`` picks sigma as in the official code: "min" (the paper's; the smallest singular
    value), "median" or "rmse" (root mean square of the singular values).

    T x T work on the CPU in float64: an eigen-decomposition of a handful of tasks costs more to
    launch on a GPU than to compute, and float64 resolves the small eigenvalues the scale uses.
    """

    def __init__(self, n_tasks: int, *, scale_mode: str = "min") -> None:
        super().__init__(n_tasks)
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {', '.join(SCALE_MODES)} (got {scale_mode!r})")
        self.scale_mode = scale_mode

    def weights(self, gram: Tensor, eps: float) -> Tensor:
        return aligned_mtl_weights(gram, self.scale_mode, eps).sum(dim=1)


# Aligned-MTL and its UB variant share their paper and their one knob.
_ALIGNED_PAPER = Paper(authors="Senushkin, Patakin, Kuznetsov & Konushin",
                       title="Independent Component Alignment for Multi-Task Learning", venue="CVPR", year=2023,
                       arxiv="2305.19000")
_ALIGNED_SCALE = Knob(name="scale_mode", label="Scale", kind="choice", default="min", choices=("min", "median", "rmse"),
                      help="The common singular value of the aligned gradients: the smallest (the paper's), the median "
                           "or the root mean square of the original ones.")


ENTRY = MethodInfo(
    key="aligned_mtl",
    name="Aligned-MTL",
    kind="aggregation",
    category="gradient alignment",
    summary="Replace the task gradients by the nearest set whose principal components are all equally strong (condition number 1), then add them up.",
    formula=(r"J J^\top = V \Lambda V^\top,\qquad B = \sqrt{\lambda_{\min}}\; V \Lambda^{-1/2} V^\top,"
             r"\qquad d = \mathbf{1}^\top B J"),
    cost=JACOBIAN_COST,
    factory="mtl_core.methods.aligned_mtl:AlignedMTL",
    knobs=(_ALIGNED_SCALE,),
    paper=_ALIGNED_PAPER,
    extra={
        "known_for": "Making the tasks' gradient system well conditioned (all principal "
                     "components equally strong) so no task or direction dominates; unlike "
                     "most methods it provably converges to an optimum with task weights set "
                     "in advance.",
        "struggles_with": "It needs an eigendecomposition of the T x T Gram matrix every step"
                          " and scales the update to the weakest component, so a small, noisy"
                          " direction can set the step size.",
        "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "aligned_mtl", "steps": 300},
                   "why": "The left and right digits share one trunk and their gradients "
                          "often conflict: watch the cosines and how Aligned-MTL combines "
                          "them."},
    },
)


class AlignedMTLUB(AlignedMTL):
    """Aligned-MTL-UB (Senushkin et al., CVPR 2023, arXiv:2305.19000): the same alignment computed
    on the gradients with respect to the shared representation (the paper's cheaper upper-bound
    variant, as MGDA-UB); the trainer then backpropagates ``weights @ losses`` once."""

    space = "features"


UB_ENTRY = MethodInfo(
    key="aligned_mtl_ub",
    name="Aligned-MTL-UB",
    kind="aggregation",
    category="gradient alignment",
    summary="Aligned-MTL's weights computed from the gradients on the shared representation, then one backward pass of the weighted losses.",
    formula=(r"Z Z^\top = V \Lambda V^\top \ (Z = \partial \mathcal{L} / \partial \text{features}),\qquad "
             r"w = \sqrt{\lambda_{\min}}\; V \Lambda^{-1/2} V^\top \mathbf{1},\qquad "
             r"\mathcal{L} = \sum_t w_t \mathcal{L}_t"),
    cost=FEATURES_COST,
    factory="mtl_core.methods.aligned_mtl:AlignedMTLUB",
    knobs=(_ALIGNED_SCALE,),
    paper=_ALIGNED_PAPER,
    extra={
        "known_for": "Most of Aligned-MTL's effect at a fraction of its cost: the alignment "
                     "is computed on the shared representation, as MGDA-UB does for MGDA.",
        "struggles_with": "It needs one shared representation that every task reads (not soft"
                          " sharing or mixtures of experts), and that representation's "
                          "gradients only approximate the parameters'.",
        "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "aligned_mtl_ub", "steps": 300},
                   "why": "The left and right digits share one trunk and their gradients "
                          "often conflict: watch the cosines and how Aligned-MTL-UB combines "
                          "them."},
    },
)


def aligned_mtl_weights(gram: Tensor, scale_mode: str = "min", eps: float = FLOAT32_EPS) -> Tensor:
    """B (T x T, symmetric) such that the aligned gradient system is B @ J."""
    gram = (gram + gram.T) / 2
    eigenvalues, basis = torch.linalg.eigh(gram)
    largest = eigenvalues.max()
    if not largest > 0:  # every gradient is zero: nothing to align, nothing to move along
        return torch.zeros_like(gram)
    keep = eigenvalues > largest * gram.shape[0] * eps
    eigenvalues, basis = eigenvalues[keep], basis[:, keep]
    if scale_mode == "min":
        scale = eigenvalues.min().sqrt()
    elif scale_mode == "median":
        scale = eigenvalues.median().sqrt()  # the lower median for an even count, as torch.median
    else:
        scale = eigenvalues.mean().sqrt()
    return (basis * (scale / eigenvalues.sqrt())) @ basis.T
