"""ConFIG: the direction at equal angle to every task gradient, scaled by their projections on it."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_core.aggregation import Aggregation, Aggregator


class ConFIG(Aggregator):
    """Conflict-Free Inverse Gradients (Liu, Chu & Thuerey, "ConFIG: Towards Conflict-free Training
    of Physics Informed Neural Networks", ICLR 2025, arXiv:2408.11104; official code: conflictfree).

    With U the matrix of unit task gradients (rows g_i / |g_i|), the direction d = U^+ 1 solves
    U d = 1: it has the same positive inner product with every unit gradient, hence the same
    positive cosine with every task gradient. The update keeps d's direction and takes as length
    the sum of the gradients' projections on it:

        update = (sum_i g_i . d_hat) d_hat,    d_hat = d / |d|.

    d lies in the span of the rows, so everything runs on the T x T Gram matrix: with
    D = diag(1 / |g_i|) and the cosine matrix C = D G D, d = J^T D C^+ 1, |d|^2 = 1^T C^+ 1, and
    ``weights`` are the exact ones with update == weights @ J. A zero gradient gets a zero unit
    row (the official code's ``nan_to_num``). The pseudo-inverse drops eigenvalues of C below
    T * eps (of the Jacobian's dtype) relative to the largest: directions that gradients computed
    in that precision cannot resolve. For two tasks the official code uses a closed form that
    gives this same direction. No knobs.

    T x T work on the CPU in float64 (a tiny pseudo-inverse; a GPU would only add launches).
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__(n_tasks)

    def __call__(self, jacobian: Tensor, /) -> Aggregation:
        gram = (jacobian @ jacobian.T).to("cpu", torch.float64)
        weights = config_weights(gram, torch.finfo(jacobian.dtype).eps).to(jacobian.device, jacobian.dtype)
        return Aggregation(update=weights @ jacobian, weights=weights)


def config_weights(gram: Tensor, eps: float = torch.finfo(torch.float32).eps) -> Tensor:
    """w with ConFIG's update = w @ J, from the Gram matrix G = J J^T."""
    gram = (gram + gram.T) / 2
    norms = gram.diagonal().clamp_min(0.0).sqrt()
    inverse_norms = torch.where(norms > 0, 1.0 / norms.clamp_min(torch.finfo(gram.dtype).tiny), 0.0)
    cosines = inverse_norms[:, None] * gram * inverse_norms[None, :]
    n_tasks = gram.shape[0]
    unit_weights = torch.linalg.pinv(cosines, hermitian=True, rtol=n_tasks * eps) @ torch.ones(
        n_tasks, dtype=gram.dtype)
    squared_length = unit_weights @ cosines @ unit_weights  # |d|^2
    if not squared_length > 0:  # every gradient is zero
        return torch.zeros(n_tasks, dtype=gram.dtype)
    direction = inverse_norms * unit_weights  # d = J^T direction
    length = (gram @ direction).sum() / squared_length.sqrt()  # sum_i g_i . d_hat
    return direction * (length / squared_length.sqrt())
