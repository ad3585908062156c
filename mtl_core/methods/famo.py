"""FAMO: Fast Adaptive Multitask Optimization (Liu et al., 2023)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import Weighting, torch
from mtl_core.registry import Knob, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor

# The paper's offset inside every logarithm (its code's 1e-8): log(L - L_min + eps).
_EPS = 1e-8


class FAMO(Weighting):
    """FAMO (Liu, Feng, Stone & Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS
    2023, arXiv:2306.03792; official code github.com/Cranial-XIX/FAMO).

    FAMO descends a weighted sum of *log*-losses, ``sum_t z_t log L_t / c`` with ``z =
    softmax(xi)`` over task logits ``xi`` and ``c = sum_t z_t / L_t``, whose gradient is ``sum_t
    w_t grad L_t`` with the implied weights ``w_t = z_t / (c L_t)`` (they sum to 1); those are
    the weights returned, so backpropagating ``w @ L`` is the paper's step. After the network's
    step, FAMO looks at the same batch again and moves the logits so that the log-losses fall
    at equal rates: with ``delta_t = log L_t(before) - log L_t(after)`` the logits' gradient is
    ``J_softmax^T delta``, applied with their own Adam (``lr``, paper 0.025) and weight decay
    ``gamma`` (paper 0.01), which keeps the logits from drifting far. A task whose loss fell
    least gains weight. Cost: one extra forward pass per step (the loss after the update).

    As in the paper's experiments the losses' lower bounds are 0. The logits live on the losses'
    device, created at the first step after ``reset()``.
    """

    def __init__(self, n_tasks: int, *, gamma: float = 0.01, lr: float = 0.025) -> None:
        super().__init__(n_tasks)
        if gamma < 0:
            raise ValueError(f"gamma must be non-negative (got {gamma})")
        if lr <= 0:
            raise ValueError(f"lr must be positive (got {lr})")
        self.gamma = float(gamma)
        self.lr = float(lr)
        self.reset()

    def reset(self) -> None:
        self.logits: Tensor | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._losses_before: Tensor | None = None
        self._message: str | None = None

    def task_distribution(self) -> Tensor:
        """``z = softmax(logits)``: the distribution over tasks the logits encode."""
        if self.logits is None:
            return torch.full((self.n_tasks,), 1.0 / self.n_tasks)
        return torch.softmax(self.logits.detach(), dim=0)

    def weights(self, losses: Tensor, step: int) -> Tensor:
        detached = losses.detach()
        if self.logits is None or self.logits.device != detached.device:
            self.logits = torch.zeros(self.n_tasks, device=detached.device, dtype=detached.dtype,
                                      requires_grad=True)
            self._optimizer = torch.optim.Adam([self.logits], lr=self.lr, weight_decay=self.gamma)
        self._losses_before = detached
        z = torch.softmax(self.logits.detach(), dim=0).to(detached.dtype)
        shifted = detached + _EPS
        c = (z / shifted).sum()
        return z / (c * shifted)

    def after_step(self, step: int) -> None:
        if self._losses_before is None or self.logits is None:
            return
        if self.hooks is None:
            self._message = "FAMO needs the loss after each step, and no trainer lent it: weights frozen"
            return
        losses_after = self.hooks.losses_now().detach().to(self._losses_before.dtype)
        self.update(self._losses_before, losses_after)

    def update(self, losses_before: Tensor, losses_after: Tensor) -> None:
        """One step of the logits from the losses of one batch before and after the network's step."""
        assert self.logits is not None and self._optimizer is not None
        delta = torch.log(losses_before + _EPS) - torch.log(losses_after + _EPS)
        if not torch.isfinite(delta).all():
            # A loss that blew up says nothing about rates; the trainer stops a diverged run.
            self._message = "FAMO skipped a logit update: a loss after the step was not finite"
            return
        z = torch.softmax(self.logits.detach(), dim=0)
        # The softmax Jacobian diag(z) - z z^T is symmetric: its transpose times delta.
        gradient = z * (delta - (z * delta).sum())
        self._optimizer.zero_grad(set_to_none=True)
        self.logits.grad = gradient.to(self.logits.dtype)
        self._optimizer.step()
        self._losses_before = None

    @property
    def message(self) -> str | None:
        return self._message


ENTRY = MethodInfo(
    key="famo",
    name="FAMO",
    kind="weighting",
    category="loss weighting",
    summary="Weigh the log-losses with a learnt task distribution, updated after every step so "
            "that all losses fall at the same rate, at the cost of one extra forward pass.",
    formula=r"z = \operatorname{softmax}(\xi),\quad \mathcal{L} = \frac{1}{c} \sum_t z_t \log \mathcal{L}_t,"
            r"\ c = \sum_t \frac{z_t}{\mathcal{L}_t} \text{ (held constant)};\quad \xi \leftarrow \xi - \beta\,"
            r"\operatorname{Adam}\bigl(J_{\mathrm{softmax}}^{\top}\,\delta + \gamma \xi\bigr),"
            r"\ \delta_t = \log \mathcal{L}_t^{\text{before}} - \log \mathcal{L}_t^{\text{after}}",
    cost="1 backward pass + 1 forward pass",
    factory="mtl_core.methods.famo:FAMO",
    knobs=(
        Knob(name="gamma", label="Logit decay γ", default=0.01, low=0.0, high=1.0,
             help="Weight decay on the task logits: keeps the weights from drifting far from "
                  "equal (paper: 0.01)."),
        Knob(name="lr", label="Logit learning rate β", default=0.025, low=1e-4, high=1.0, log=True,
             help="Step size of the Adam update of the task logits (paper: 0.025)."),
    ),
    paper=Paper(authors="Liu, Feng, Stone & Liu", title="FAMO: Fast Adaptive Multitask Optimization",
                venue="NeurIPS", year=2023, arxiv="2306.03792"),
    extra={
        "simplified": "The losses' lower bounds are taken as 0, as in the paper's "
                      "experiments; the paper's gradient clipping of the network is left out.",
        "known_for": "Results close to the Jacobian-based methods such as Nash-MTL on "
                     "standard benchmarks at the cost of a loss weighting (O(1) extra time "
                     "and memory per step).",
        "struggles_with": "It takes the logarithm of the losses, so they must stay positive, "
                          "and adds an extra forward pass and two hyper-parameters; its "
                          "weights follow the last step and are noisy with small batches.",
        "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "famo", "steps": 400},
                   "why": "FAMO balances the rates at which the log-losses fall, so ink's "
                          "100x larger loss does not dominate: compare the digit accuracy "
                          "with Equal weighting."},
    },
)
