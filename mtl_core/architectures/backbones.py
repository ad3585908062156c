"""Default shared trunks: an MLP for vector inputs, a small CNN for images.

Kept small on purpose: the playground must train a run in seconds on a laptop CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def mlp_encoder(in_features: int, hidden: Sequence[int] = (128, 64)) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers), width


def cnn_encoder(input_shape: Sequence[int], channels: Sequence[int] = (16, 32),
                features: int = 128) -> tuple[nn.Module, int]:
    """Two 3x3 convolutions, one 2x2 max-pool, one linear layer: enough for 8-pixel digits."""
    in_channels, height, width = input_shape
    layers: list[nn.Module] = []
    previous = in_channels
    for size in channels:
        layers += [nn.Conv2d(previous, size, kernel_size=3, padding=1), nn.ReLU()]
        previous = size
    layers += [nn.MaxPool2d(2), nn.Flatten(),
               nn.Linear(previous * (height // 2) * (width // 2), features), nn.ReLU()]
    return nn.Sequential(*layers), features
