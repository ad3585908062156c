"""What the sharing architectures build from: the suite's trunk cut into stages, fresh copies of a
stage, and a fixed batch of validation inputs that the sharing snapshots are measured on.

"Layer" in the snapshots means a *stage* of the trunk: the modules up to and including one
activation. The suites' trunks cut into: MLP (vectors) ``Linear-ReLU | Linear-ReLU``; CNN (images)
``Conv-ReLU | Conv-ReLU | MaxPool-Flatten-Linear-ReLU``. Cross-stitch mixes after each stage,
soft sharing compares the columns stage by stage, MTAN attends to each stage's output.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd
import torch
from torch import Tensor, nn

from mtl_core.suites.base import SuiteData

# A trunk is cut after each of these: the end of one "layer" in the papers' sense.
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid)

# Validation examples a sharing snapshot is measured on (gates, attention): enough for a stable
# mean, few enough that a snapshot costs a few milliseconds.
PROBE_SIZE = 256


def split_stages(encoder: nn.Module) -> nn.ModuleList:
    """Cut a sequential trunk after each activation; modules after the last one join the last
    stage. Anything that is not an ``nn.Sequential`` is one stage."""
    if not isinstance(encoder, nn.Sequential):
        return nn.ModuleList([encoder])
    stages: list[nn.Module] = []
    current: list[nn.Module] = []
    for module in encoder:
        current.append(module)
        if isinstance(module, _ACTIVATIONS):
            stages.append(nn.Sequential(*current))
            current = []
    if current:
        if stages:
            stages[-1] = nn.Sequential(*stages[-1], *current)
        else:
            stages.append(nn.Sequential(*current))
    return nn.ModuleList(stages)


def trunk_stages(suite: SuiteData) -> tuple[nn.ModuleList, list[tuple[int, ...]]]:
    """A freshly initialised copy of the suite's trunk, cut into stages, and each stage's output
    shape (without the batch dimension)."""
    encoder, _ = suite.make_encoder()
    stages = split_stages(encoder)
    return stages, stage_shapes(stages, suite.input_shape)


@torch.no_grad()
def stage_shapes(stages: Sequence[nn.Module], input_shape: Sequence[int]) -> list[tuple[int, ...]]:
    was = [stage.training for stage in stages]
    for stage in stages:
        stage.eval()
    x = torch.zeros(2, *input_shape)
    shapes = []
    for stage in stages:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    for stage, mode in zip(stages, was, strict=True):
        stage.train(mode)
    return shapes


def fresh_copy(module: nn.Module) -> nn.Module:
    """The same layers with newly drawn initial weights (an independent copy of a stage)."""
    clone = copy.deepcopy(module)
    for sub in clone.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
    return clone


def flat_size(shape: Sequence[int]) -> int:
    return math.prod(shape)


def register_probe(model: nn.Module, suite: SuiteData, size: int = PROBE_SIZE) -> None:
    """Keep the first ``size`` validation inputs on the model (a non-persistent buffer, so it
    follows the model to its device and stays out of saved weights)."""
    model.register_buffer("probe", suite.x_val[:size].clone(), persistent=False)


@contextmanager
def inference(model: nn.Module) -> Iterator[None]:
    """Evaluation mode without gradients, then back to the mode the model was in: a snapshot
    taken in the middle of training must not change how training goes on."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def matrix(values: Tensor, index: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """A snapshot matrix: float values with string labels (the store keeps it as JSON)."""
    data = values.detach().to("cpu", torch.float64).numpy()
    return pd.DataFrame(data, index=[str(i) for i in index], columns=[str(c) for c in columns])


def image_map(values: Tensor) -> pd.DataFrame:
    """An ``[H, W]`` map as a snapshot matrix, rows and columns numbered from 0 (top, left)."""
    rows, cols = values.shape
    return matrix(values, [str(i) for i in range(rows)], [str(j) for j in range(cols)])
