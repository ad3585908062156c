"""GradNorm (Chen et al., 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import Weighting, torch
from mtl_core.registry import Knob, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor


class GradNorm(Weighting):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient Normalization for
    Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018, arXiv:1711.02257).

    The task weights ``w_t`` (start 1, sum T) are learnt by their own loss, not by the weighted
    task loss. With ``G_t = ||grad_W w_t L_t||`` on the last shared layer W, their mean
    ``G_bar``, and the relative inverse training rate ``r_t = (L_t / L_t(0)) / mean_k (L_k /
    L_k(0))``, the GradNorm loss ``sum_t |G_t - G_bar r_t^alpha|`` (targets held constant)
    moves the weights so that tasks that train slower get larger gradients. ``alpha`` (paper
    default 1.5) sets how hard training rates are pulled together; alpha = 0 asks for equal
    gradient norms.

    The paper takes a gradient step on the weights, then renormalises them to sum to T. We write
    ``w = T softmax(xi)`` and learn the logits ``xi`` (as LibMTL does): the weights are positive
    and sum to T by construction, and the step the run's optimiser takes is the GradNorm
    gradient projected onto "sum to T". That projection matters with Adam, which scales each
    coordinate on its own: on raw weights, when every G_t is below its target, Adam raises all
    weights alike and the renormalisation undoes it, so GradNorm would stall.

    ``L_t(0)`` is the first step's loss after ``reset()``. The gradient norms come from the
    trainer's hook (one reverse pass per task through the head and W). Where the architecture
    shares nothing, there is no W: the weights stay equal and ``message`` says so.
    """

    def __init__(self, n_tasks: int, *, alpha: float = 1.5) -> None:
        super().__init__(n_tasks)
        if alpha < 0:
            raise ValueError(f"alpha must be non-negative (got {alpha})")
        self.alpha = float(alpha)
        self.logits = torch.nn.Parameter(torch.zeros(n_tasks))
        self._initial_losses: Tensor | None = None
        self._gradnorm_loss: Tensor | None = None
        self._message: str | None = None

    @property
    def task_weights(self) -> Tensor:
        """``T softmax(logits)``: positive, summing to T, all 1 at the start."""
        return self.n_tasks * torch.softmax(self.logits, dim=0)

    def weights(self, losses: Tensor, step: int) -> Tensor:
        detached = losses.detach()
        if self._initial_losses is None:
            self._initial_losses = detached.clamp_min(1e-12)
        norms = self.hooks.last_shared_grad_norms(losses) if self.hooks is not None else None
        if norms is None:
            self._message = ("GradNorm needs a shared layer to measure gradient norms on, and this "
                             "architecture shares none: equal weights are used")
            self._gradnorm_loss = None
            return torch.ones_like(detached)
        weights = self.task_weights.to(detached.dtype)
        # ||grad_W (w_t L_t)|| = w_t ||grad_W L_t|| for w_t > 0: the norms need no graph, the
        # weights keep theirs so that the GradNorm loss reaches the logits.
        weighted_norms = weights * norms.to(detached.dtype)
        ratios = detached / self._initial_losses
        training_rates = ratios / ratios.mean()
        targets = (weighted_norms.mean() * training_rates ** self.alpha).detach()
        self._gradnorm_loss = (weighted_norms - targets).abs().sum()
        # Detached: the task losses must not teach the weights, only the GradNorm loss does.
        return weights.detach()

    def regularizer(self) -> Tensor | float:
        # Depends on the logits alone (norms and targets are constants), so adding it to the
        # objective updates the weights and leaves the network's gradient untouched.
        return 0.0 if self._gradnorm_loss is None else self._gradnorm_loss

    def after_step(self, step: int) -> None:
        self._gradnorm_loss = None  # its graph is spent; do not hold it until the next step

    def reset(self) -> None:
        with torch.no_grad():
            self.logits.zero_()
        self._initial_losses = None
        self._gradnorm_loss = None
        self._message = None

    @property
    def message(self) -> str | None:
        return self._message


ENTRY = MethodInfo(
    key="gradnorm",
    name="GradNorm",
    kind="weighting",
    category="loss weighting",
    summary="Learn the weights so that each task's gradient norm on the last shared layer matches "
            "a common norm scaled by how slowly that task trains.",
    formula=r"\min_{w}\ \sum_{t=1}^{T} \Bigl|\, \|\nabla_W w_t \mathcal{L}_t\| - \bar G\, r_t^{\alpha} \Bigr|,"
            r"\quad r_t = \frac{\mathcal{L}_t / \mathcal{L}_t(0)}{\frac{1}{T}\sum_k \mathcal{L}_k / \mathcal{L}_k(0)},"
            r"\quad \sum_t w_t = T",
    cost="1 backward pass + T backward passes through the heads and the last shared layer",
    factory="mtl_core.methods.gradnorm:GradNorm",
    knobs=(
        Knob(name="alpha", label="Restoring force α", default=1.5, low=0.0, high=3.0,
             help="How hard GradNorm pulls the tasks' training rates together; 0 asks for equal "
                  "gradient norms, larger values favour tasks that lag (paper: 1.5)."),
    ),
    paper=Paper(authors="Chen, Badrinarayanan, Lee & Rabinovich",
                title="GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep Multitask Networks",
                venue="ICML", year=2018, arxiv="1711.02257"),
    extra={
        "simplified": "The weights are T·softmax of learnt logits (as in LibMTL), positive "
                      "and summing to T by construction, instead of the paper's step-then-"
                      "renormalise; they learn with the run's optimiser and learning rate.",
        "known_for": "Balancing the tasks' gradient norms on the last shared layer by how "
                     "fast each task trains; one of the first adaptive weightings, whose paper"
                     " matches or beats an exhaustive grid search of static weights with a "
                     "single hyper-parameter.",
        "struggles_with": "It adds a hyper-parameter (α) and extra backward passes, and "
                          "balances gradient norms only, not directions: conflicting tasks "
                          "still conflict.",
        "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "gradnorm", "steps": 400},
                   "why": "Ink's loss is about 100x the digit loss, so the sum is all ink: "
                          "see how GradNorm changes the digit accuracy against Equal "
                          "weighting."},
    },
)
