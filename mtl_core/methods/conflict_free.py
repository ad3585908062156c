"""ConFIG (Liu, Chu & Thuerey, ICLR 2025): the direction at equal angle to every task gradient,
scaled by their projections on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import FLOAT32_EPS, GramAggregator, torch
from mtl_core.registry import JACOBIAN_COST, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor


class ConFIG(GramAggregator):
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

    def weights(self, gram: Tensor, eps: float) -> Tensor:
        return config_weights(gram, eps)


ENTRY = MethodInfo(
    key="config",
    name="ConFIG",
    kind="aggregation",
    category="conflict-free",
    summary="Step along the direction at the same angle to every task gradient, as far as their projections on it add up to.",
    formula=(r"U = \Big[\tfrac{g_i}{\lVert g_i \rVert}\Big]_{i=1}^{T},\qquad \hat d = \frac{U^{+}\mathbf{1}}"
             r"{\lVert U^{+}\mathbf{1} \rVert},\qquad d = \Big(\sum_{i=1}^{T} g_i^\top \hat d\Big)\, \hat d"),
    cost=JACOBIAN_COST,
    factory="mtl_core.methods.conflict_free:ConFIG",
    paper=Paper(authors="Liu, Chu & Thuerey",
                title="ConFIG: Towards Conflict-free Training of Physics Informed Neural Networks",
                venue="ICLR", year=2025, arxiv="2408.11104"),
    extra={
        "known_for": "A conflict-free direction at the same angle to every task gradient, "
                     "developed for physics-informed neural networks, whose residual and "
                     "boundary losses conflict strongly; its paper also reports it on a "
                     "multi-task benchmark (CelebA).",
        "struggles_with": "It normalises the gradients, so their magnitudes play no part in "
                          "the direction, it needs the whole Jacobian, and its pseudo-inverse"
                          " can be ill-conditioned with many tasks.",
        "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "config", "steps": 300},
                   "why": "The left and right digits share one trunk and their gradients "
                          "often conflict: watch the cosines and how ConFIG combines them."},
    },
)


def config_weights(gram: Tensor, eps: float = FLOAT32_EPS) -> Tensor:
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
