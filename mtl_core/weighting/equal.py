"""Equal weighting: the sum of the task losses."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_core.weighting import Weighting


class EqualWeighting(Weighting):
    """Every task weighs 1, so the objective is the plain sum of losses (LibMTL's convention)."""

    def weights(self, losses: Tensor, step: int) -> Tensor:
        return torch.ones_like(losses)
