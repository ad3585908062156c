"""Loss weighting: methods that see the task losses and return a weight per task.

    weighting = make_weighting("uw", n_tasks=3)      # keyword hyper-parameters, paper defaults
    weighting.attach(hooks)                          # what the trainer lends (see TrainerHooks)
    w = weighting.weights(losses, step)              # Tensor[T]
    (w * losses).sum() + weighting.regularizer()     # what the trainer minimises
    weighting.after_step(step)                       # after the optimiser's step (FAMO looks again)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from mtl_core.methods import METHODS


@dataclass(frozen=True)
class TrainerHooks:
    """What the trainer lends a weighting that needs more than this step's losses.

    ``last_shared_grad_norms(losses)``: ||grad of losses[t] on the last shared layer|| per task,
    Tensor[T], detached (one reverse pass per task through the head and that layer only: what
    GradNorm's G_t(W) is built from); None where the architecture shares nothing.
    ``losses_now()``: this step's batch's task losses under the parameters as they are now, without
    a graph (after the optimiser's step: FAMO's "loss after the update").
    ``steps_per_epoch``: mini-batches in one pass over the training data (DWA's epochs).
    """

    last_shared_grad_norms: Callable[[Tensor], Tensor | None]
    losses_now: Callable[[], Tensor]
    steps_per_epoch: int


class Weighting(nn.Module):
    """``weights(losses, step) -> Tensor[T]``; the trainer minimises ``weights @ losses + regularizer()``.

    A method that learns (uncertainty weighting's log-variances) keeps its tensors as parameters
    of this module: the trainer adds ``parameters()`` to the optimiser. The weights returned are
    what the Train page plots for each task.
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__()
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be at least 1 (got {n_tasks})")
        self.n_tasks = n_tasks
        self.hooks: TrainerHooks | None = None

    def attach(self, hooks: TrainerHooks) -> None:
        self.hooks = hooks

    def weights(self, losses: Tensor, step: int) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def regularizer(self) -> Tensor | float:
        return 0.0

    def after_step(self, step: int) -> None:
        """Called once the optimiser has stepped (the parameters moved)."""

    def reset(self) -> None:
        """Forget state carried between steps (a new run starts afresh)."""

    @property
    def message(self) -> str | None:
        """Something the run should show (a fallback taken, say); None when all is well."""
        return None


def make_weighting(key: str, n_tasks: int, **params: object) -> Weighting:
    entry = METHODS[key]
    if entry.kind != "weighting":
        raise ValueError(f"{entry.name} is a gradient-aggregation method, not a loss weighting")
    return entry.load()(n_tasks=n_tasks, **entry.validate_params(params))
