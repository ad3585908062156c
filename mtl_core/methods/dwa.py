"""Dynamic Weight Average (Liu, Johns & Davison, 2019)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import Weighting, torch
from mtl_core.registry import Knob, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor


class DynamicWeightAverage(Weighting):
    """Dynamic Weight Average, DWA (Liu, Johns & Davison, "End-to-End Multi-Task Learning with
    Attention", CVPR 2019, arXiv:1803.10704).

    ``w_t = T exp(r_t / temperature) / sum_k exp(r_k / temperature)`` with ``r_t = L_t(e-1) /
    L_t(e-2)``, the ratio of task t's average training loss over the last two epochs: a task
    whose loss fell less (ratio nearer 1) gets more weight. The weights sum to T and are all 1
    for the first two epochs. ``temperature`` (paper: 2) softens the weights; large is equal.

    The playground trains by steps, so an "epoch" here is a window of ``window`` steps
    (default 25, the window of the step-wise DWA in the Nash-MTL and FAMO authors' code, which
    slides it; ours are back to back, like epochs), long enough to average out batch noise and
    short enough that a 400-step run sees it act; ``window = 0`` uses true passes over the
    training data, as the paper does.
    """

    def __init__(self, n_tasks: int, *, temperature: float = 2.0, window: int = 25) -> None:
        super().__init__(n_tasks)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive (got {temperature})")
        if window < 0:
            raise ValueError(f"window must be 0 (one epoch) or a number of steps (got {window})")
        self.temperature = float(temperature)
        self.window = int(window)
        self.reset()

    def reset(self) -> None:
        self._steps = 0  # steps seen since reset, over all windows
        self._running_sum: Tensor | None = None  # of the current window's losses
        self._averages: list[Tensor] = []  # average losses of the last two complete windows

    def _window_steps(self) -> int:
        if self.window:
            return self.window
        if self.hooks is None:
            raise RuntimeError("DWA with window 0 counts epochs, which needs the trainer's hooks")
        return self.hooks.steps_per_epoch

    def weights(self, losses: Tensor, step: int) -> Tensor:
        detached = losses.detach()
        if len(self._averages) == 2:
            ratios = self._averages[1] / self._averages[0].clamp_min(1e-12)
            weights = self.n_tasks * torch.softmax(ratios / self.temperature, dim=0)
        else:
            weights = torch.ones_like(detached)
        self._running_sum = detached.clone() if self._running_sum is None else self._running_sum + detached
        self._steps += 1
        window = self._window_steps()
        if self._steps % window == 0:
            self._averages = [*self._averages, self._running_sum / window][-2:]
            self._running_sum = None
        return weights.to(device=detached.device, dtype=detached.dtype)


ENTRY = MethodInfo(
    key="dwa",
    name="Dynamic Weight Average",
    kind="weighting",
    category="loss weighting",
    summary="Give more weight to the tasks whose loss fell least over the last two epochs "
            "(a softmax of the loss ratios).",
    formula=r"w_t = \frac{T \exp(r_t / \tau)}{\sum_k \exp(r_k / \tau)},"
            r"\quad r_t = \frac{\bar{\mathcal{L}}_t(e-1)}{\bar{\mathcal{L}}_t(e-2)}",
    cost="1 backward pass",
    factory="mtl_core.methods.dwa:DynamicWeightAverage",
    knobs=(
        Knob(name="temperature", label="Temperature τ", default=2.0, low=0.1, high=100.0, log=True,
             help="Softens the weights: large values make them equal, small ones favour the "
                  "slowest task strongly (paper: 2)."),
        Knob(name="window", label="Epoch length (steps)", kind="int", default=25, low=0, high=100000,
             help="How many steps make one 'epoch' whose average loss DWA compares; 0 means one "
                  "true pass over the training data, as in the paper."),
    ),
    paper=Paper(authors="Liu, Johns & Davison", title="End-to-End Multi-Task Learning with Attention",
                venue="CVPR", year=2019, arxiv="1803.10704"),
    extra={
        "simplified": "An 'epoch' is a window of 25 steps by default (the window of the step-"
                      "wise DWA in the Nash-MTL and FAMO code) so that short runs see the "
                      "weights move; set the window to 0 for true epochs, as in the paper.",
        "known_for": "Needing only the loss history: no extra gradients and no learnt "
                     "parameters, so it costs what equal weighting costs.",
        "struggles_with": "It reacts to each loss's rate of decrease, not its size, so a loss"
                          " 100x larger than the others keeps dominating; and its weights come"
                          " from the two previous epochs, so they lag behind a change.",
        "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "dwa", "steps": 400},
                   "why": "DWA weighs by how fast each loss falls, not by its size: see that "
                          "ink's 100x larger loss still dominates, unlike with scale-"
                          "invariant methods."},
    },
)
