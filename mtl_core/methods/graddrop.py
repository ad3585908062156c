"""GradDrop (Chen et al., NeurIPS 2020): at every coordinate, keep the task gradients of one sign,
chosen by a weighted coin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtl_core.methods.base import Aggregation, Aggregator, torch
from mtl_core.registry import JACOBIAN_COST, Knob, MethodInfo, Paper

if TYPE_CHECKING:
    from torch import Tensor


class GradDrop(Aggregator):
    """Gradient Sign Dropout (Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, "Just Pick a
    Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout", NeurIPS 2020,
    arXiv:2010.06808).

    At every coordinate the sign purity P = 1/2 (1 + sum_t g_t / sum_t |g_t|) is the share of the
    gradient mass that is positive. A uniform draw U per coordinate keeps the positive gradients
    where P > U and the negative ones where P < U (the paper's f is the identity), so a
    coordinate moves along one sign only, the majority's more often. With ``leak`` l every task
    also passes l of its gradient unmasked: update = sum_t (l + (1 - l) M_t) g_t (paper default
    l = 0; l = 1 is the plain sum).

    Simplified: the paper applies the mask at a layer's activations (gradients summed over the
    batch, times the sign of the layer's input); here the vote is taken on the gradient of every
    shared parameter, and one leak serves all tasks (the paper allows one per task). The mask
    differs per coordinate, so the update is not a weighted sum of the
    task gradients: ``weights`` is None. The draws come from a generator on the Jacobian's device
    that ``reset()`` re-seeds with 0.
    """

    def __init__(self, n_tasks: int, *, leak: float = 0.0) -> None:
        super().__init__(n_tasks)
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"leak must be between 0 and 1 (got {leak})")
        self.leak = float(leak)
        self.reset()

    def reset(self) -> None:
        self._generator: torch.Generator | None = None

    def __call__(self, jacobian: Tensor, /) -> Aggregation:
        total = jacobian.sum(dim=0)
        draw = torch.rand(total.shape, generator=self._generator_for(jacobian.device),
                          device=jacobian.device, dtype=jacobian.dtype)
        # P > U written as sum/|sum| > 2U - 1: exact when all gradients share a sign (the ratio is
        # then exactly +-1). Where every gradient is 0 the ratio is NaN and the test False: the
        # negative side, all zeros, is kept.
        positive_side = total / jacobian.abs().sum(dim=0) > 2.0 * draw - 1.0
        # Keep g_t where its sign is the side drawn (a zero entry adds nothing either way).
        masked = (jacobian * ((jacobian > 0) == positive_side)).sum(dim=0)
        update = masked if self.leak == 0.0 else self.leak * total + (1.0 - self.leak) * masked
        return Aggregation(update=update, weights=None)

    def _generator_for(self, device: torch.device) -> torch.Generator:
        # The mask needs one draw per parameter: drawing where the Jacobian lives avoids a copy.
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(0)
        return self._generator


ENTRY = MethodInfo(
    key="graddrop",
    name="GradDrop",
    kind="aggregation",
    category="gradient surgery",
    summary="At every coordinate, keep only the positive or only the negative task gradients, chosen at random in proportion to their mass.",
    formula=(r"\mathcal{P} = \tfrac{1}{2}\Big(1 + \frac{\sum_t g_t}{\sum_t \lvert g_t \rvert}\Big),\quad "
             r"M_t = \mathbb{I}[\mathcal{P} > U]\,\mathbb{I}[g_t > 0] + \mathbb{I}[\mathcal{P} < U]\,"
             r"\mathbb{I}[g_t < 0],\quad U \sim \mathcal{U}(0, 1),\qquad "
             r"d = \sum_{t=1}^{T} \big(\ell + (1 - \ell) M_t\big) \odot g_t"),
    cost=JACOBIAN_COST,
    factory="mtl_core.methods.graddrop:GradDrop",
    knobs=(
        Knob(name="leak", label="Leak ℓ", default=0.0, low=0.0, high=1.0,
             help="Share of every task's gradient that passes whatever the sign vote: 0 is pure sign dropout (the paper's default), 1 the plain sum."),
    ),
    paper=Paper(authors="Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov",
                title="Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout",
                venue="NeurIPS", year=2020, arxiv="2010.06808"),
    extra={
        "simplified": "The paper takes the sign vote on the gradients at a layer's "
                      "activations; here it is taken on every shared parameter's gradient, "
                      "with one leak for all tasks.",
        "known_for": "Sign dropout: at each coordinate of a layer's activations (here: of the"
                     " shared parameters) it keeps only the gradients of the sign a random "
                     "vote picks, weighted by how consistent the signs are; its paper reports "
                     "it beating the multi-loss methods of the time and combining with other "
                     "balancing methods.",
        "struggles_with": "Its randomness adds noise, it works element by element and ignores"
                          " magnitude imbalance, and later benchmark tables (e.g. Nash-MTL's) "
                          "show modest gains over equal weighting.",
        "try_it": {"config": {"suite": "multidigits", "tasks": ["left", "right"], "method": "graddrop", "steps": 300},
                   "why": "The left and right digits share one trunk and their gradients "
                          "often conflict: watch the cosines and how GradDrop combines them."},
    },
)
