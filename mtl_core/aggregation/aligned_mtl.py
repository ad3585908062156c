"""Aligned-MTL: make the gradient system well conditioned by equalising its principal components."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_core.aggregation import Aggregation, Aggregator

SCALE_MODES = ("min", "median", "rmse")


class AlignedMTL(Aggregator):
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

    def __call__(self, jacobian: Tensor, /) -> Aggregation:
        gram = (jacobian @ jacobian.T).to("cpu", torch.float64)
        weights = aligned_mtl_weights(gram, self.scale_mode, torch.finfo(jacobian.dtype).eps)
        weights = weights.sum(dim=1).to(jacobian.device, jacobian.dtype)
        return Aggregation(update=weights @ jacobian, weights=weights)


class AlignedMTLUB(AlignedMTL):
    """Aligned-MTL-UB (Senushkin et al., CVPR 2023, arXiv:2305.19000): the same alignment computed
    on the gradients with respect to the shared representation (the paper's cheaper upper-bound
    variant, as MGDA-UB); the trainer then backpropagates ``weights @ losses`` once."""

    space = "features"


def aligned_mtl_weights(gram: Tensor, scale_mode: str = "min", eps: float = torch.finfo(torch.float32).eps) -> Tensor:
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
