"""Default shared trunks: an MLP for vector inputs, a small CNN for images, LeNet for 28x28 images.

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


def lenet_encoder(input_shape: Sequence[int] = (1, 28, 28), features: int = 50) -> tuple[nn.Module, int]:
    """The LeNet trunk of the MultiMNIST papers (Sener & Koltun 2018, whose code shares it between
    the left and right heads): 5x5 convolutions to 10 then 20 channels, each followed by a 2x2
    max-pool and a ReLU, then one 50-unit linear layer. On 28x28 inputs the second pool leaves
    20 x 4 x 4 = 320 features. Their trunk also drops half the channels after the second
    convolution (one mask per batch); that dropout is left out here, so the trunk stays a plain
    ``nn.Sequential`` that the sharing architectures cut after each ReLU."""
    in_channels, height, width = input_shape
    side_h, side_w = ((height - 4) // 2 - 4) // 2, ((width - 4) // 2 - 4) // 2
    if side_h < 1 or side_w < 1:
        raise ValueError(f"the LeNet trunk needs inputs of at least 16x16 pixels (got {height}x{width})")
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, 10, kernel_size=5), MaxPool2x2(), nn.ReLU(),
        nn.Conv2d(10, 20, kernel_size=5), MaxPool2x2(), nn.ReLU(),
        nn.Flatten(), nn.Linear(20 * side_h * side_w, features), nn.ReLU(),
    ]
    return nn.Sequential(*layers), features
