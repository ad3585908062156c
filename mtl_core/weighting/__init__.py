"""Loss weighting: methods that see only the task losses and return a weight per task."""

from __future__ import annotations

from torch import Tensor, nn

from mtl_core.methods import METHODS


class Weighting(nn.Module):
    """``weights(losses, step) -> Tensor[T]``; the trainer minimises ``weights @ losses + regularizer()``.

    A method that learns (uncertainty weighting's log-variances) keeps its tensors as parameters
    of this module: the trainer adds ``parameters()`` to the optimiser.
    """

    def __init__(self, n_tasks: int) -> None:
        super().__init__()
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be at least 1 (got {n_tasks})")
        self.n_tasks = n_tasks

    def weights(self, losses: Tensor, step: int) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def regularizer(self) -> Tensor | float:
        return 0.0

    def reset(self) -> None:
        """Forget state carried between steps (a new run starts afresh)."""


def make_weighting(key: str, n_tasks: int, **params: object) -> Weighting:
    entry = METHODS[key]
    if entry.kind != "weighting":
        raise ValueError(f"{entry.name} is a gradient-aggregation method, not a loss weighting")
    return entry.load()(n_tasks=n_tasks, **entry.validate_params(params))
