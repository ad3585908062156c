"""Default shared trunks: an MLP for vector inputs, a small CNN for images.

Kept small on purpose: the playground must train a run in seconds on a laptop CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def mlp_encoder(in_features: int, hidden: Sequence[int] = (128, 64)) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers), width


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)``, with a faster path for forwards without autograd (evaluation, TAG's
    lookaheads): the max of the four strided 2x2 views, the same numbers. PyTorch's CPU max-pool
    works plane by plane, and on the playground's small maps (128 x 32 planes of 8 x 8) that takes
    ~4x longer than the views; with autograd its backward is the faster one, so training keeps it."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: Tensor) -> Tensor:
        if (torch.is_grad_enabled() and x.requires_grad) or x.shape[-1] % 2 or x.shape[-2] % 2:
            return super().forward(x)
        return torch.maximum(torch.maximum(x[..., ::2, ::2], x[..., 1::2, ::2]),
                             torch.maximum(x[..., ::2, 1::2], x[..., 1::2, 1::2]))


def cnn_encoder(input_shape: Sequence[int], channels: Sequence[int] = (16, 32),
                features: int = 128) -> tuple[nn.Module, int]:
    """Two 3x3 convolutions, one 2x2 max-pool, one linear layer: enough for 8-pixel digits."""
    in_channels, height, width = input_shape
    layers: list[nn.Module] = []
    previous = in_channels
    for size in channels:
        layers += [nn.Conv2d(previous, size, kernel_size=3, padding=1), nn.ReLU()]
        previous = size
    layers += [MaxPool2x2(), nn.Flatten(),
               nn.Linear(previous * (height // 2) * (width // 2), features), nn.ReLU()]
    return nn.Sequential(*layers), features
