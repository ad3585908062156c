"""Dynamic Weight Average (Liu, Johns & Davison, 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_core.weighting import Weighting


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
