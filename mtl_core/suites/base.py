"""The data and task definitions a built suite hands to the trainer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtl_core.registry import SuiteInfo, TaskInfo


@dataclass
class SuiteData:
    """Train/validation tensors for every task of a suite, and the suite's default encoder.

    Targets are ``long`` class indices for classification and ``float`` values of shape ``[N]`` for
    regression. ``make_encoder()`` returns a freshly initialised shared trunk and its feature size,
    so that hard sharing, single-task baselines and later architectures all start from the same one.
    """

    info: SuiteInfo
    x_train: Tensor
    y_train: dict[str, Tensor]
    x_val: Tensor
    y_val: dict[str, Tensor]
    make_encoder: Callable[[], tuple[nn.Module, int]]
    # A table's input columns by name, for showing its data (standardised, one-hot columns named
    # "island=Dream"); empty for suites whose inputs are pixels or anonymous features.
    feature_names: tuple[str, ...] = ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def task(self, name: str) -> TaskInfo:
        return self.info.task(name)

    def loss(self, name: str, prediction: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy for classification, mean squared error for regression."""
        if self.task(name).kind == "classification":
            return F.cross_entropy(prediction, target)
        return F.mse_loss(prediction.reshape(target.shape), target)

    @torch.no_grad()
    def metric(self, name: str, prediction: Tensor, target: Tensor) -> float:
        """The task's validation metric, as named in its TaskInfo."""
        metric = self.task(name).metric
        if metric == "accuracy":
            return (prediction.argmax(dim=1) == target).float().mean().item()
        error = prediction.reshape(target.shape) - target
        if metric == "mae":
            return error.abs().mean().item()
        if metric == "mse":
            return error.square().mean().item()
        if metric == "rmse":
            return error.square().mean().sqrt().item()
        raise ValueError(f"unknown metric {metric!r} for task {name!r}")
