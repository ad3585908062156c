"""IMTL-G (Liu et al., ICLR 2021): the combination of the task gradients with equal projections onto
every task."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import GramAggregator, np, torch
from mtl_core.registry import FEATURES_COST, JACOBIAN_COST, Knob, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor

GRADIENTS = ("features", "parameters")
_MAX_CONDITION = 1e12  # beyond this the closed form's linear system is treated as singular


def imtl_g_weights(gram: np.ndarray) -> np.ndarray | None:
    """The paper's closed form, on the Gram matrix; None where it is undefined (singular).

    With ``D`` the rows ``g_1 - g_t`` and ``U`` the rows ``u_1 - u_t`` (``u_t = g_t / |g_t|``),
    t = 2..T, the weights of tasks 2..T are ``alpha = g_1 U^T (D U^T)^{-1}`` and task 1 gets
    ``1 - sum(alpha)``. Every inner product is one of the Gram matrix's: with
    ``N_ij = <g_i, u_j> = G_ij / |g_j|``, ``(g_1 U^T)_j = N_11 - N_1j`` and
    ``(D U^T)_ij = N_11 - N_1j - N_i1 + N_ij``.
    """
    gram = np.asarray(gram, dtype=np.float64)
    n = gram.shape[0]
    if n == 1:
        return np.ones(1)
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    if not np.all(norms > 1e-12 * max(float(norms.max()), 1e-300)):
        return None  # a zero gradient has no direction to project onto
    scaled = gram / float(norms.max()) ** 2  # units of the largest squared norm
    n_ij = scaled / (norms / norms.max())[None, :]
    g1_u = n_ij[0, 0] - n_ij[0, 1:]
    d_u = n_ij[0, 0] - n_ij[0, 1:][None, :] - n_ij[1:, 0][:, None] + n_ij[1:, 1:]
    if not np.all(np.isfinite(d_u)) or np.linalg.cond(d_u) > _MAX_CONDITION:
        return None
    alpha = np.linalg.solve(d_u.T, g1_u)  # alpha (D U^T) = g_1 U^T, as a row vector
    return np.concatenate([[1.0 - alpha.sum()], alpha])


class IMTLG(GramAggregator):
    """IMTL-G, the gradient half of Impartial Multi-Task Learning (Liu, Li, Kuang, Xue, Chen,
    Yang, Liao & Zhang, "Towards Impartial Multi-task Learning", ICLR 2021).

    The update ``g = sum_t alpha_t g_t`` with ``sum_t alpha_t = 1`` has the same projection onto
    every task's unit gradient, ``<g, u_t>`` equal for all t: no task is favoured, whatever the
    scale of its loss. The paper gives ``alpha`` in closed form (:func:`imtl_g_weights`, computed
    here on the T x T Gram matrix); weights may be negative. Where the closed form is singular
    (two tasks' gradients parallel, or a zero gradient), the update falls back to the mean and
    says so.

    ``gradients``: the paper's Algorithm 1 computes the task gradients w.r.t. the shared feature
    ``z`` (``"features"``, default: the trainer then backpropagates ``alpha @ losses`` once);
    ``"parameters"`` uses the gradients on the shared parameters (as in the Nash-MTL and LibMTL
    re-implementations). The loss half of IMTL (IMTL-L) is a separate loss weighting.
    """

    def __init__(self, n_tasks: int, *, gradients: str = "features") -> None:
        super().__init__(n_tasks)
        if gradients not in GRADIENTS:
            raise ValueError(f"gradients must be one of {', '.join(GRADIENTS)} (got {gradients!r})")
        self.gradients = gradients
        self.space = gradients

    def fallback(self) -> tuple[float, str]:
        return 1.0 / self.n_tasks, "IMTL-G: the task gradients are not finite; fell back to their mean"

    def weights(self, gram: Tensor, eps: float) -> Tensor:
        alpha = imtl_g_weights(gram.numpy())
        if alpha is None:
            alpha = np.full(self.n_tasks, 1.0 / self.n_tasks)
            self.message = ("IMTL-G: the closed form is singular (parallel or zero task gradients); "
                            "fell back to the mean gradient")
        return torch.as_tensor(alpha)


ENTRY = MethodInfo(
    key="imtl_g",
    name="IMTL-G",
    kind="aggregation",
    category="gradient balancing",
    summary="Weigh the task gradients (weights summing to 1) so that the update has the same "
            "projection onto every task's gradient direction: no task is favoured.",
    formula=(r"\alpha_{2:T} = g_1 U^{\top} \big(D U^{\top}\big)^{-1},\ \ "
             r"\alpha_1 = 1 - \textstyle\sum_{t \ge 2} \alpha_t,\ \ "
             r"D = \begin{bmatrix} g_1 - g_t \end{bmatrix}_{t \ge 2},\ "
             r"U = \begin{bmatrix} u_1 - u_t \end{bmatrix}_{t \ge 2},\ u_t = \frac{g_t}{\lVert g_t \rVert};"
             r"\qquad d = \sum_{t=1}^{T} \alpha_t\, g_t"),
    cost=f"features (default): {FEATURES_COST}; parameters: {JACOBIAN_COST}",
    factory="mtl_core.methods.imtl_g:IMTLG",
    knobs=(
        Knob(name="gradients", label="Gradients on", kind="choice", default="features",
             choices=("features", "parameters"),
             help="features: the task gradients w.r.t. the shared representation (the paper's "
                  "Algorithm 1); parameters: w.r.t. the shared parameters."),
    ),
    paper=Paper(authors="Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang",
                title="Towards Impartial Multi-task Learning", venue="ICLR", year=2021, arxiv=None),
    extra={
        "simplified": "Only the gradient half of IMTL; its loss half is the loss weighting "
                      "IMTL-L.",
        "known_for": "Choosing the update whose projections on every task's unit gradient are"
                     " equal: a closed-form, hyper-parameter-free way to treat the tasks "
                     "impartially.",
        "struggles_with": "It equalises projections rather than removing conflict, needs the "
                          "whole Jacobian, and its linear system can be ill-conditioned when "
                          "task gradients are nearly parallel.",
        "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "imtl_g", "steps": 300},
                   "why": "The left and right digits share one trunk and their gradients "
                          "often conflict: watch the cosines and how IMTL-G combines them."},
    },
)
