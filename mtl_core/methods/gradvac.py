"""Gradient Vaccine (Wang et al., ICLR 2021): pull each pair of task gradients towards the cosine
they usually have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import GramAggregator, torch
from mtl_core.methods.pcgrad import random_partner_orders
from mtl_core.registry import JACOBIAN_COST, Knob, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor


class GradVac(GramAggregator):
    """Gradient Vaccine (Wang, Tsvetkov, Firat & Cao, "Gradient Vaccine: Investigating and Improving
    Multi-task Optimization in Massively Multilingual Models", ICLR 2021, arXiv:2010.05874).

    Each task pair (i, j) keeps a target cosine phi_hat_ij, an exponential moving average (rate
    ``beta``, paper 1e-2) of the cosines observed, starting at 0. For each task i, in a random
    order of the other tasks j, with phi = cos(g_i', g_j) of the gradient adjusted so far and
    the original g_j: when phi < phi_hat the paper's closed form adds the multiple of g_j that
    brings the cosine up to exactly phi_hat,

        g_i' += |g_i'| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2)) / (|g_j| sqrt(1 - phi_hat^2)) g_j,

    then phi_hat <- (1 - beta) phi_hat + beta phi (Algorithm 1). The update is the sum of the
    adjusted gradients. With all targets at 0 this is PCGrad: the first step equals PCGrad's.

    Like PCGrad it runs on the T x T Gram matrix (every g_i' is a combination of the task
    gradients), and ``weights`` are the exact implied ones. Stateful: ``reset()`` zeroes the
    targets and re-seeds the orders' generator with 0.

    Simplified: the paper keeps targets per layer (or finer parameter groups) of a large
    translation model; here one target per task pair covers all shared parameters (the paper's
    "whole model" granularity).
    """

    def __init__(self, n_tasks: int, *, beta: float = 1e-2) -> None:
        super().__init__(n_tasks)
        if not 0.0 < beta <= 1.0:
            raise ValueError(f"beta must be in (0, 1] (got {beta})")
        self.beta = float(beta)
        self.reset()

    def reset(self) -> None:
        self._generator = torch.Generator().manual_seed(0)
        self.targets = torch.zeros(self.n_tasks, self.n_tasks, dtype=torch.float64)

    def weights(self, gram: Tensor, eps: float) -> Tensor:
        if gram.shape[0] != self.n_tasks:
            raise ValueError(f"GradVac was built for {self.n_tasks} tasks, got a Jacobian of {gram.shape[0]}")
        # The targets live on the CPU in float64, as the Gram matrix: device-independent.
        orders = random_partner_orders(self.n_tasks, self._generator)
        return gradvac_coefficients(gram, orders, self.targets, self.beta).sum(dim=0)


ENTRY = MethodInfo(
    key="gradvac",
    name="Gradient Vaccine",
    kind="aggregation",
    category="gradient surgery",
    summary="Keep a running average of how aligned each pair of tasks usually is, and pull a pair's gradients back up to it when they align less.",
    formula=(r"\text{if } \phi_{ij} < \hat\phi_{ij}:\ g_i \leftarrow g_i + \frac{\lVert g_i \rVert \big("
             r"\hat\phi_{ij}\sqrt{1 - \phi_{ij}^2} - \phi_{ij}\sqrt{1 - \hat\phi_{ij}^2}\big)}"
             r"{\lVert g_j \rVert \sqrt{1 - \hat\phi_{ij}^2}}\, g_j, \qquad "
             r"\hat\phi_{ij} \leftarrow (1 - \beta)\,\hat\phi_{ij} + \beta\,\phi_{ij}, \qquad "
             r"d = \sum_{i=1}^{T} g_i"),
    cost=JACOBIAN_COST,
    factory="mtl_core.methods.gradvac:GradVac",
    knobs=(
        Knob(name="beta", label="EMA rate β", default=0.01, low=1e-4, high=1.0, log=True,
             help="How fast the target cosine of each task pair follows the cosines observed (the paper's 1e-2: a memory of about 100 steps)."),
    ),
    paper=Paper(authors="Wang, Tsvetkov, Firat & Cao",
                title="Gradient Vaccine: Investigating and Improving Multi-task Optimization in Massively Multilingual Models",
                venue="ICLR", year=2021, arxiv="2010.05874"),
    extra={
        "simplified": "The paper keeps a target cosine per layer of a large translation "
                      "model; here one target per task pair covers all shared parameters (its"
                      " whole-model variant).",
        "known_for": "Pulling task gradients toward a target similarity learnt from their "
                     "history, rather than only repairing negative cosines; built for "
                     "massively multilingual translation.",
        "struggles_with": "It adds a hyper-parameter (the rate of the moving target) and "
                          "state per task pair; with a fixed target of 0 it would be PCGrad.",
        "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "gradvac", "steps": 300},
                   "why": "The left and right digits share one trunk and their gradients "
                          "often conflict: watch the cosines and how Gradient Vaccine "
                          "combines them."},
    },
)


def gradvac_coefficients(gram: Tensor, orders: Tensor, targets: Tensor, beta: float) -> Tensor:
    """C with g_i' = sum_k C[i, k] g_k after the vaccine; updates ``targets`` in place (the EMA).

    Row i visits orders[i, 0], orders[i, 1], ...; all tasks take their s-th adjustment at once.
    A pair involving a zero gradient has no cosine: it is neither adjusted nor averaged.
    """
    n_tasks = gram.shape[0]
    coefficients = torch.eye(n_tasks, dtype=gram.dtype)
    rows = torch.arange(n_tasks)
    for step in range(orders.shape[1]):
        partner = orders[:, step]
        projected = coefficients @ gram
        dot = projected[rows, partner]  # g_i' . g_j
        norm_i = (projected * coefficients).sum(dim=1).clamp_min(0.0).sqrt()  # |g_i'|
        norm_j = gram[partner, partner].clamp_min(0.0).sqrt()
        defined = (norm_i > 0) & (norm_j > 0)
        cosine = torch.where(defined, dot / (norm_i * norm_j).clamp_min(torch.finfo(gram.dtype).tiny), 0.0)
        cosine = cosine.clamp(-1.0, 1.0)
        target = targets[rows, partner]
        sine, target_sine = (1 - cosine**2).sqrt(), (1 - target**2).clamp_min(0.0).sqrt()
        # A target of exactly +-1 cannot be reached by adding a multiple of g_j: leave it be.
        adjust = defined & (cosine < target) & (target_sine > 0)
        amount = norm_i * (target * sine - cosine * target_sine) / (norm_j * target_sine).clamp_min(
            torch.finfo(gram.dtype).tiny)
        coefficients[rows, partner] += torch.where(adjust, amount, 0.0)
        targets[rows, partner] = torch.where(defined, (1 - beta) * target + beta * cosine, target)
    return coefficients
