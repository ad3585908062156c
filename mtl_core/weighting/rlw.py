"""Random Loss Weighting (Lin et al., 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_core.weighting import Weighting


class RandomLossWeighting(Weighting):
    """Random Loss Weighting, RLW (Lin, Ye, Zhang & Tsang, "Reasonable Effectiveness of Random
    Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022, arXiv:2111.10603).

    Every step draws fresh weights ``w = softmax(z)`` with ``z ~ N(0, I_T)``: positive, on the
    simplex (they sum to 1, the paper's and LibMTL's convention, so the objective is a random
    convex combination of the losses, 1/T of equal weighting's sum on average). The paper's
    point is that this random baseline is hard to beat.

    Draws come from a private CPU generator seeded, at every ``reset()``, with the torch seed in
    force when the method was built (the trainer sets it to the run's seed): the same run config
    gives the same weights on every device, another seed gives others.
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__(n_tasks)
        self._seed = torch.initial_seed()
        self._generator = torch.Generator()
        self.reset()

    def reset(self) -> None:
        self._generator.manual_seed(self._seed)

    def weights(self, losses: Tensor, step: int) -> Tensor:
        z = torch.randn(self.n_tasks, generator=self._generator, dtype=torch.float64)
        return torch.softmax(z, dim=0).to(device=losses.device, dtype=losses.dtype)
