"""Gradient Vaccine: pull each pair of task gradients towards the cosine they usually have."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_core.aggregation import Aggregation, Aggregator
from mtl_core.aggregation.pcgrad import random_partner_orders


class GradVac(Aggregator):
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

    def __call__(self, jacobian: Tensor, /) -> Aggregation:
        if jacobian.shape[0] != self.n_tasks:
            raise ValueError(f"GradVac was built for {self.n_tasks} tasks, got a Jacobian of {jacobian.shape[0]}")
        # T x T work on the CPU in float64, where the targets live: tiny steps, device-independent.
        gram = (jacobian @ jacobian.T).to("cpu", torch.float64)
        orders = random_partner_orders(self.n_tasks, self._generator)
        coefficients = gradvac_coefficients(gram, orders, self.targets, self.beta)
        weights = coefficients.sum(dim=0).to(jacobian.device, jacobian.dtype)
        return Aggregation(update=weights @ jacobian, weights=weights)


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
