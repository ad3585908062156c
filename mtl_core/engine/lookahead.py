"""The lookahead of TAG's task affinity, on one step: how a step along one task's gradient alone
moves every task's loss on the same batch (Fifty et al., "Efficiently Identifying Task Groupings
for Multi-Task Learning", NeurIPS 2021, arXiv:2109.04617):

    Z_{i->j} = 1 - L_j(X, theta_s^{t+1|i}, theta_j) / L_j(X, theta_s^t, theta_j)

The trainer measures it on the steps ``affinity_every`` picks and records Z on the step;
:mod:`mtl_core.studies.affinity` averages the stored Z's over training and says why the step is the
paper's plain SGD step whatever the run's optimiser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

_EPS_LOSS = 1e-12


def lookahead_steps(optimizer: torch.optim.Optimizer, jacobian: Tensor) -> Tensor:
    """Row i: the change of the flat shared parameters a lookahead on task i makes, ``lr * g_i``
    (the paper's SGD step, with the learning rate of the optimiser's first parameter group)."""
    return float(optimizer.param_groups[0]["lr"]) * jacobian


def lookahead_affinity(losses_on_batch: Callable[[], Tensor], params: Sequence[Tensor],
                       losses: Tensor, steps: Tensor, *, rng_state: Tensor | None = None) -> Tensor:
    """``Z[i, j] = 1 - L_j(theta - steps[i]) / L_j(theta)`` on the same batch: ``[T, T]``.

    ``losses_on_batch()`` recomputes the task losses ``[T]`` on the step's batch with the
    parameters as they are; ``losses`` are those losses before any lookahead; ``steps`` come from
    :func:`lookahead_steps`. Only ``params`` (the shared ones) move, and they are restored exactly.
    ``rng_state``: the CPU generator's state when ``losses`` were computed, so that random layers
    (noisy gates) draw the same numbers in every lookahead; the generator is left as it was found.
    (On a GPU, random layers draw from the device's generator, which is not replayed.)
    """
    params = list(params)
    before = losses.detach()
    originals = [p.detach().clone() for p in params]
    found = torch.get_rng_state()
    rng = found if rng_state is None else rng_state
    rows = []
    try:
        for step in steps:
            _move(params, originals, step)
            torch.set_rng_state(rng)
            with torch.inference_mode():  # no autograd bookkeeping at all: the cheapest forward
                after = losses_on_batch()
            rows.append(1.0 - after.clone() / before.clamp_min(_EPS_LOSS))
    finally:
        with torch.no_grad():
            for param, original in zip(params, originals, strict=True):
                param.copy_(original)
        torch.set_rng_state(found)
    return torch.stack(rows)


@torch.no_grad()
def _move(params: list[Tensor], originals: list[Tensor], step: Tensor) -> None:
    """Set ``params`` to ``originals - step`` (``step`` flat, in the parameters' order)."""
    offset = 0
    for param, original in zip(params, originals, strict=True):
        size = param.numel()
        param.copy_(original - step[offset: offset + size].view_as(param))
        offset += size
