"""Random Loss Weighting (Lin et al., 2022)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import Weighting, torch
from mtl_core.registry import MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor


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


ENTRY = MethodInfo(
    key="rlw",
    name="Random loss weighting",
    kind="weighting",
    category="loss weighting",
    summary="Draw fresh random weights every step (softmax of a standard normal draw): the "
            "litmus test any clever weighting should beat.",
    formula=r"w = \operatorname{softmax}(z),\quad z \sim \mathcal{N}(0, I_T) \text{ each step},"
            r"\quad \mathcal{L} = \sum_{t=1}^{T} w_t \mathcal{L}_t",
    cost="1 backward pass",
    factory="mtl_core.methods.rlw:RandomLossWeighting",
    paper=Paper(authors="Lin, Ye, Zhang & Tsang",
                title="Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-Task Learning",
                venue="TMLR", year=2022, arxiv="2111.10603"),
    extra={
        "known_for": "Showing that random weights do about as well as many elaborate "
                     "weighting and gradient methods on standard benchmarks (Lin et al. "
                     "2022): a litmus test.",
        "struggles_with": "On average its weights are equal, so it does nothing about scale "
                          "(a much larger loss still dominates), and the random weights add "
                          "noise to training.",
        "try_it": {"config": {"suite": "digit_attributes", "tasks": ["digit", "ink"], "method": "rlw", "steps": 400},
                   "why": "Random weights on losses 100x apart: compare with Equal weighting "
                          "to see that randomness alone does not fix scale."},
    },
)
