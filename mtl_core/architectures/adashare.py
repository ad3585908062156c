"""Learned branching in the AdaShare style (Sun, Panda, Feris & Saenko, NeurIPS 2020, arXiv:1911.12423)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtl_core.architectures.base import MTLModel, head
from mtl_core.architectures.parts import flat_size, matrix
from mtl_core.suites.backbones import MaxPool2x2
from mtl_core.suites.base import SuiteData

VECTOR_WIDTH = 64  # the width of the residual blocks on vector inputs (the suites' MLP ends at 64)
IMAGE_CHANNELS = 16  # the channels of the residual blocks on images (the suites' CNN starts at 16)
IMAGE_FEATURES = 128  # the features after the blocks on images (as in the suites' CNN)
TEMPERATURE_EVERY = 100  # steps between two decays of the Gumbel-softmax temperature (official code)


class ResidualBlock(nn.Module):
    """``relu(x + F(x))`` with F one linear map or one 3x3 convolution: a block a task may skip."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.layer(x))


def sharing_tree(execute: Sequence[Sequence[bool]]) -> list[list[int]]:
    """Group ids per task and block: tasks that made the same execute/skip choices up to a block
    compute identical features there (same input, same shared weights), so they are one branch.
    Ids count branches from 0 in task order at each block."""
    n_blocks = len(execute[0]) if execute else 0
    groups = [[0] * n_blocks for _ in execute]
    for block in range(n_blocks):
        seen: dict[tuple[bool, ...], int] = {}
        for task, choices in enumerate(execute):
            prefix = tuple(choices[: block + 1])
            groups[task][block] = seen.setdefault(prefix, len(seen))
    return groups


class AdaShare(MTLModel):
    """A stem, then ``blocks`` residual blocks that every task may execute or skip, then heads.

    Each task t learns, per block l, the probability ``p[t, l]`` of executing it; during training
    it draws a relaxed decision ``u ~ GumbelSoftmax(logits[t, l], tau)`` and computes
    ``h <- u * block_l(h) + (1 - u) * h``, so tasks that execute the same blocks share them and
    the network learns a sharing tree. The objective gets the paper's two penalties: sparsity
    ``-log(1 - p)`` averaged over blocks, summed over tasks (prefer skipping: a compact model) and sharing
    ``sum over task pairs and blocks of (L - l)/L |p_i,l - p_j,l|`` (agree on the lower blocks).
    Defaults from the official code: temperature 5 decayed by 0.965 every 100 steps, penalty
    weights 0.05 and 0.05, and the policy learning ten times faster than the network (there it
    has its own optimiser; here its logits are scaled by 10, the same thing under Adam).

    The stem, blocks and (on images) the pooled dense layer after them are shared; a task's
    policy logits and head are its own. Simplified: no warm-up, curriculum or alternating
    updates, no retraining of the sampled architecture, no task-specific batch norm; evaluation
    uses the expected decision p instead of a sample.
    """

    def __init__(self, suite: SuiteData, tasks: Sequence[str], *, blocks: int = 4, temperature: float = 5.0,
                 temperature_decay: float = 0.965, sparsity: float = 0.05, sharing: float = 0.05,
                 policy_lr_scale: float = 10.0) -> None:
        super().__init__(tasks)
        if blocks < 1:
            raise ValueError(f"blocks must be at least 1 (got {blocks})")
        if temperature <= 0 or not 0 < temperature_decay <= 1:
            raise ValueError("temperature must be positive and temperature_decay in (0, 1]")
        if sparsity < 0 or sharing < 0 or policy_lr_scale <= 0:
            raise ValueError("sparsity and sharing must be at least 0 and policy_lr_scale positive")
        self.temperature, self.temperature_decay = float(temperature), float(temperature_decay)
        self.sparsity, self.sharing, self.policy_lr_scale = float(sparsity), float(sharing), float(policy_lr_scale)
        shape = suite.input_shape
        if suite.info.input_kind == "image":
            channels, height, width = shape
            self.stem = nn.Sequential(nn.Conv2d(channels, IMAGE_CHANNELS, kernel_size=3, padding=1), nn.ReLU())
            self.blocks = nn.ModuleList([
                ResidualBlock(nn.Conv2d(IMAGE_CHANNELS, IMAGE_CHANNELS, kernel_size=3, padding=1))
                for _ in range(blocks)])
            self.neck = nn.Sequential(MaxPool2x2(), nn.Flatten(),
                                      nn.Linear(IMAGE_CHANNELS * (height // 2) * (width // 2), IMAGE_FEATURES),
                                      nn.ReLU())
            features = IMAGE_FEATURES
        else:
            self.stem = nn.Sequential(nn.Flatten(), nn.Linear(flat_size(shape), VECTOR_WIDTH), nn.ReLU())
            self.blocks = nn.ModuleList([ResidualBlock(nn.Linear(VECTOR_WIDTH, VECTOR_WIDTH)) for _ in range(blocks)])
            self.neck = nn.Identity()
            features = VECTOR_WIDTH
        # Logits (execute, skip) per task and block, stored divided by the learning-rate scale.
        # Zeros: both choices equally likely at the start (the official "equal" initialisation).
        self.policy = nn.ParameterDict({t: nn.Parameter(torch.zeros(blocks, 2)) for t in self.tasks})
        self.heads = nn.ModuleDict({t: head(features, suite.task(t).n_outputs) for t in self.tasks})
        self.steps = 0  # training forward passes so far: the temperature schedule's clock

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    def logits(self, task: str) -> Tensor:
        return self.policy[task] * self.policy_lr_scale

    def execute_probability(self) -> Tensor:
        """``[T, blocks]``: the probability each task executes each block."""
        return torch.stack([torch.softmax(self.logits(t), dim=-1)[:, 0] for t in self.tasks])

    def current_temperature(self) -> float:
        return self.temperature * self.temperature_decay ** (self.steps // TEMPERATURE_EVERY)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        sampling = self.training and torch.is_grad_enabled()
        tau = self.current_temperature()
        if sampling:
            self.steps += 1
        stem = self.stem(x)
        outputs = {}
        for task in self.tasks:
            if sampling:
                decisions = F.gumbel_softmax(self.logits(task), tau=tau, hard=False)[:, 0]
            else:
                decisions = torch.softmax(self.logits(task), dim=-1)[:, 0]
            h = stem
            for block, u in zip(self.blocks, decisions, strict=True):
                h = u * block(h) + (1 - u) * h
            outputs[task] = self.heads[task](self.neck(h))
        return outputs

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.blocks.parameters()
        yield from self.neck.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield self.policy[task]
        yield from self.heads[task].parameters()

    def regularizer(self) -> Tensor:
        p = self.execute_probability()
        # The official code's sparsity loss: cross-entropy towards "skip", -log(1 - p), averaged
        # over blocks and summed over tasks.
        skip_log_prob = torch.stack([torch.log_softmax(self.logits(t), dim=-1)[:, 1] for t in self.tasks])
        sparsity = -skip_log_prob.mean(dim=1).sum()
        depth = torch.arange(self.n_blocks, device=p.device, dtype=p.dtype)
        weights = (self.n_blocks - depth) / self.n_blocks  # 1 for the first block, 1/L for the last
        sharing = p.new_zeros(())
        for i, j in itertools.combinations(range(len(self.tasks)), 2):
            sharing = sharing + (weights * (p[i] - p[j]).abs()).sum()
        return self.sparsity * sparsity + self.sharing * sharing

    @torch.no_grad()
    def sharing_snapshot(self) -> dict[str, pd.DataFrame]:
        """The probability each task executes each block, and the sharing tree of the decisions
        it implies (execute where p >= 0.5): at each block, tasks with the same id share features."""
        p = self.execute_probability()
        blocks = [f"block {b + 1}" for b in range(self.n_blocks)]
        tree = sharing_tree((p >= 0.5).tolist())
        return {"AdaShare execute probability": matrix(p, self.tasks, blocks),
                "AdaShare sharing tree": matrix(torch.tensor(tree, dtype=torch.float64), self.tasks, blocks)}
