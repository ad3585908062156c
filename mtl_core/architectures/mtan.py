"""Multi-Task Attention Network (Liu, Johns & Davison, CVPR 2019, arXiv:1803.10704)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from mtl_core.architectures.base import MTLModel, head
from mtl_core.architectures.parts import (
    flat_size,
    fresh_copy,
    image_map,
    inference,
    matrix,
    register_probe,
    trunk_stages,
)
from mtl_core.suites.base import SuiteData

MAPS_PER_SNAPSHOT = 1  # validation examples whose attention maps a snapshot keeps


def attention_module(in_shape: Sequence[int], out_shape: Sequence[int]) -> nn.Module:
    """A task's soft mask g: a bottleneck of two 1x1 convolutions (or dense layers on vectors)
    ending in a sigmoid, so every feature gets a weight in (0, 1). The official code's bottleneck
    is a quarter of the channels; its batch norms are left out, like the suites' trunks'."""
    channels_in, channels = in_shape[0], out_shape[0]
    middle = max(4, channels // 4)
    if len(out_shape) == 3:  # feature maps: the mask is a spatial map per channel
        return nn.Sequential(nn.Conv2d(channels_in, middle, kernel_size=1), nn.ReLU(),
                             nn.Conv2d(middle, channels, kernel_size=1), nn.Sigmoid())
    return nn.Sequential(nn.Linear(flat_size(in_shape), middle), nn.ReLU(), nn.Linear(middle, channels), nn.Sigmoid())


class MTAN(MTLModel):
    """A shared trunk (the suite's) and, per task, a soft-attention module at every stage.

    At stage j task t computes a mask ``a = g_tj([p_j, f_j(a_{j-1} * p_{j-1})])`` from the shared
    features p_j and its own attended features of the stage before (brought to p_j's shape by
    f_j, a layer shared by the tasks); it reads ``a * p_j``. Its head reads the attended last
    stage. On images the masks are maps over channels and positions. The trunk and the f_j are
    shared; the masks and heads belong to their task.

    Simplified: the paper's blocks have several layers, the mask reads the block's first layer
    and weights its last; our stages are one layer, so the mask reads and weights the same
    features; f_j is a fresh copy of trunk stage j (the paper's is a 3x3 convolution).
    """

    def __init__(self, suite: SuiteData, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        stages, shapes = trunk_stages(suite)
        self.shapes = shapes
        # The bridges f_j (j >= 2) are registered first, so that the trunk's last stage is the
        # "last shared layer".
        self.bridges = nn.ModuleList([fresh_copy(stage) for stage in list(stages)[1:]])
        self.trunk = stages
        attention = {}
        for task in self.tasks:
            modules = [attention_module(shapes[0], shapes[0])]
            for shape in shapes[1:]:
                modules.append(attention_module((2 * shape[0], *shape[1:]), shape))
            attention[task] = nn.ModuleList(modules)
        self.attention = nn.ModuleDict(attention)
        features = flat_size(shapes[-1])
        self.heads = nn.ModuleDict({t: head(features, suite.task(t).n_outputs) for t in self.tasks})
        register_probe(self, suite)

    def _attend(self, x: Tensor) -> tuple[dict[str, Tensor], dict[str, list[Tensor]]]:
        attended: dict[str, Tensor] = {}
        masks: dict[str, list[Tensor]] = {t: [] for t in self.tasks}
        shared = x
        for j, stage in enumerate(self.trunk):
            shared = stage(shared)
            for task in self.tasks:
                if j == 0:
                    inputs = shared
                else:
                    inputs = torch.cat([shared, self.bridges[j - 1](attended[task])], dim=1)
                mask = self.attention[task][j](inputs)
                attended[task] = mask * shared
                masks[task].append(mask)
        return attended, masks

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        attended, _ = self._attend(x)
        return {t: self.heads[t](attended[t].flatten(1)) for t in self.tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.bridges.parameters()
        yield from self.trunk.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.attention[task].parameters()
        yield from self.heads[task].parameters()

    def sharing_snapshot(self) -> dict[str, pd.DataFrame]:
        """The mean mask of every task at every stage on validation inputs (1: the task reads the
        shared features whole), and on images, for the first validation example, the input and
        each task's mask at every convolutional stage, averaged over channels."""
        with inference(self):
            _, masks = self._attend(self.probe)
        means = torch.stack([torch.stack([m.mean() for m in masks[t]]) for t in self.tasks])
        layers = [f"layer {j + 1}" for j in range(len(self.trunk))]
        snapshot = {"MTAN mean attention": matrix(means, self.tasks, layers)}
        if self.probe.dim() == 4:
            for example in range(min(MAPS_PER_SNAPSHOT, self.probe.shape[0])):
                label = f", example {example + 1}" if MAPS_PER_SNAPSHOT > 1 else ""
                snapshot[f"MTAN input{label}"] = image_map(self.probe[example].mean(dim=0))
                for task in self.tasks:
                    for j, mask in enumerate(masks[task]):
                        if mask.dim() == 4:
                            snapshot[f"MTAN attention map, {task}, layer {j + 1}{label}"] = image_map(
                                mask[example].mean(dim=0))
        return snapshot
