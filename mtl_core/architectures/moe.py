"""Mixtures of experts with a gate per task: MMoE (Ma et al., KDD 2018) and CGC / PLE (Tang et
al., RecSys 2020).

Experts are small, as in the papers: on vectors one ReLU layer of ``expert_units`` units (MMoE's
synthetic experiments: 8 experts of 16 units); on images a thin copy of the suite's CNN (two 3x3
convolutions of 8 and 16 channels, a 2x2 max-pool, a ReLU layer of ``expert_units``). The experts
of one group are computed together (one wide or grouped layer), which is the same function as
separate experts, only faster. A gate is ``softmax(W x)`` on the flattened input of its level,
without a bias, as in both papers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtl_core.architectures.base import MTLModel, head
from mtl_core.architectures.parts import flat_size, inference, matrix, register_probe
from mtl_core.suites.backbones import MaxPool2x2
from mtl_core.suites.base import SuiteData

IMAGE_EXPERT_CHANNELS = (8, 16)


class ParallelLinear(nn.Module):
    """``n`` independent linear maps applied to ``[B, n, F]`` (or one shared ``[B, F]``) input."""

    def __init__(self, n: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n, out_features))
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default initialisation, per map
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return torch.einsum("bf,nfu->bnu", x, self.weight) + self.bias
        return torch.einsum("bnf,nfu->bnu", x, self.weight) + self.bias


class ExpertBank(nn.Module):
    """``n`` experts reading the same input: ``[B, *input_shape] -> [B, n, units]``."""

    def __init__(self, n: int, input_shape: Sequence[int], units: int) -> None:
        super().__init__()
        self.n, self.units = n, units
        self.features: nn.Module | None = None
        if len(input_shape) == 3:  # an image: a thin CNN per expert
            channels, height, width = input_shape
            c1, c2 = IMAGE_EXPERT_CHANNELS
            # The first convolution reads the shared input, so n experts are one convolution with
            # n * c1 outputs; the second is grouped, so expert i only reads its own c1 channels.
            self.features = nn.Sequential(
                nn.Conv2d(channels, n * c1, kernel_size=3, padding=1), nn.ReLU(),
                nn.Conv2d(n * c1, n * c2, kernel_size=3, padding=1, groups=n), nn.ReLU(),
                MaxPool2x2())
            fan_in = c2 * (height // 2) * (width // 2)
        else:
            fan_in = flat_size(input_shape)
        self.project = ParallelLinear(n, fan_in, units)

    def forward(self, x: Tensor) -> Tensor:
        if self.features is not None:
            z = self.features(x).reshape(x.shape[0], self.n, -1)
        else:
            z = x.flatten(1)
        return F.relu(self.project(z))


def gate(input_shape: Sequence[int], choices: int) -> nn.Module:
    """``softmax(W x)`` over ``choices`` experts: no bias, as in MMoE's eq. 8 and PLE's eq. 2."""
    return nn.Linear(flat_size(input_shape), choices, bias=False)


def mix(gate_logits: Tensor, experts: Tensor) -> tuple[Tensor, Tensor]:
    """The gated sum of expert outputs ``[B, k, U]``, and the gate weights ``[B, k]``."""
    weights = torch.softmax(gate_logits, dim=-1)
    return torch.einsum("bk,bku->bu", weights, experts), weights


class MMoE(MTLModel):
    """Multi-gate Mixture-of-Experts (Ma, Zhao, Yi, Chen, Hong & Chi, KDD 2018).

    ``E`` experts shared by all tasks; task t reads ``sum_i g_t(x)_i f_i(x)`` with its own gate
    ``g_t(x) = softmax(W_t x)``, then its tower (head). Paper defaults: 8 experts of 16 units.
    Experts are shared parameters; a gate and a tower belong to their task.
    """

    def __init__(self, suite: SuiteData, tasks: Sequence[str], *, experts: int = 8,
                 expert_units: int = 16) -> None:
        super().__init__(tasks)
        if experts < 1 or expert_units < 1:
            raise ValueError(f"experts and expert_units must be at least 1 (got {experts}, {expert_units})")
        self.n_experts = int(experts)
        self.experts = ExpertBank(self.n_experts, suite.input_shape, int(expert_units))
        self.gates = nn.ModuleDict({t: gate(suite.input_shape, self.n_experts) for t in self.tasks})
        self.heads = nn.ModuleDict({t: head(int(expert_units), suite.task(t).n_outputs) for t in self.tasks})
        register_probe(self, suite)

    def _mixtures(self, x: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        experts = self.experts(x)
        flat = x.flatten(1)
        mixed, weights = {}, {}
        for task in self.tasks:
            mixed[task], weights[task] = mix(self.gates[task](flat), experts)
        return mixed, weights

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        mixed, _ = self._mixtures(x)
        return {t: self.heads[t](mixed[t]) for t in self.tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.experts.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.gates[task].parameters()
        yield from self.heads[task].parameters()

    def sharing_snapshot(self) -> dict[str, pd.DataFrame]:
        """Each task's mean gate over the experts on validation inputs (rows sum to 1), and each
        expert's load: its share of all the gate weight (sums to 1)."""
        with inference(self):
            _, weights = self._mixtures(self.probe)
        gates = torch.stack([weights[t].mean(dim=0) for t in self.tasks])
        columns = [f"expert {i + 1}" for i in range(self.n_experts)]
        return {"MMoE gate": matrix(gates, self.tasks, columns),
                "MMoE expert load": matrix(gates.mean(dim=0, keepdim=True), ["load"], columns)}


class _Level(nn.Module):
    """One extraction level: shared experts, each task's experts, a gate per task and (below the
    top level) a gate that builds the next level's shared input from all experts."""

    def __init__(self, tasks: Sequence[str], input_shape: Sequence[int], shared: int, specific: int,
                 units: int, *, top: bool) -> None:
        super().__init__()
        self.shared = ExpertBank(shared, input_shape, units)
        self.specific = nn.ModuleDict({t: ExpertBank(specific, input_shape, units) for t in tasks})
        self.task_gates = nn.ModuleDict({t: gate(input_shape, shared + specific) for t in tasks})
        self.shared_gate = None if top else gate(input_shape, shared + specific * len(tasks))

    def forward(self, shared_in: Tensor, task_in: dict[str, Tensor]
                ) -> tuple[Tensor | None, dict[str, Tensor], dict[str, Tensor]]:
        shared = self.shared(shared_in)
        specific = {t: self.specific[t](x) for t, x in task_in.items()}
        out, weights = {}, {}
        for task, x in task_in.items():
            out[task], weights[task] = mix(self.task_gates[task](x.flatten(1)),
                                           torch.cat([shared, specific[task]], dim=1))
        shared_out = None
        if self.shared_gate is not None:
            shared_out, weights["shared"] = mix(self.shared_gate(shared_in.flatten(1)),
                                                torch.cat([shared, *specific.values()], dim=1))
        return shared_out, out, weights


class PLE(MTLModel):
    """Progressive Layered Extraction (Tang, Liu, Zhao & Gong, RecSys 2020).

    Every level has shared experts and experts of each task. Task t's gate mixes the shared
    experts and t's own (Customized Gate Control, CGC); below the top level, a shared gate mixes
    all experts into the next level's shared input. Level 1 reads the input; level l+1 reads
    level l's outputs (task t's experts and gate read t's output, the shared ones the shared
    output). With one level, PLE is CGC.

    Which parameters are shared follows from where gradients flow: a task's experts below the top
    level feed the shared gate, so every task reaches them (shared); its top-level experts and its
    gates at the top two levels reach only its own output (task-specific).
    Simplified: the paper tunes the expert counts per dataset; we default to 1 shared and 1 own
    expert per task (the smallest CGC), and experts are single layers (thin CNNs on images).
    """

    snapshot_name = "PLE"

    def __init__(self, suite: SuiteData, tasks: Sequence[str], *, levels: int = 2, shared_experts: int = 1,
                 task_experts: int = 1, expert_units: int = 16) -> None:
        super().__init__(tasks)
        if min(levels, shared_experts, task_experts, expert_units) < 1:
            raise ValueError("levels, shared_experts, task_experts and expert_units must be at least 1")
        self.n_shared, self.n_specific = int(shared_experts), int(task_experts)
        units = int(expert_units)
        shapes = [tuple(suite.input_shape)] + [(units,)] * (int(levels) - 1)
        self.levels = nn.ModuleList([
            _Level(self.tasks, shape, self.n_shared, self.n_specific, units, top=level == levels - 1)
            for level, shape in enumerate(shapes)])
        self.heads = nn.ModuleDict({t: head(units, suite.task(t).n_outputs) for t in self.tasks})
        register_probe(self, suite)

    def _extract(self, x: Tensor) -> tuple[dict[str, Tensor], list[dict[str, Tensor]]]:
        shared_in: Tensor | None = x
        task_in = {t: x for t in self.tasks}
        weights = []
        for level in self.levels:
            assert shared_in is not None
            shared_in, task_in, level_weights = level(shared_in, task_in)
            weights.append(level_weights)
        return task_in, weights

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features, _ = self._extract(x)
        return {t: self.heads[t](features[t]) for t in self.tasks}

    def _is_task_gate_specific(self, level: int) -> bool:
        return level >= len(self.levels) - 2

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        top = len(self.levels) - 1
        for index, level in enumerate(self.levels):
            yield from level.shared.parameters()
            if level.shared_gate is not None:
                yield from level.shared_gate.parameters()
            if index < top:
                yield from level.specific.parameters()
            if not self._is_task_gate_specific(index):
                yield from level.task_gates.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        top = len(self.levels) - 1
        for index, level in enumerate(self.levels):
            if self._is_task_gate_specific(index):
                yield from level.task_gates[task].parameters()
            if index == top:
                yield from level.specific[task].parameters()
        yield from self.heads[task].parameters()

    def _columns(self) -> list[str]:
        columns = [f"shared {i + 1}" for i in range(self.n_shared)]
        for task in self.tasks:
            columns += [f"{task} {i + 1}" for i in range(self.n_specific)]
        return columns

    def _gate_matrix(self, weights: dict[str, Tensor]) -> Tensor:
        """Rows: each task's gate (and the shared gate); columns: all experts of the level. A
        gate's weight on an expert it cannot choose (another task's) is NaN, not 0."""
        rows = []
        for name in (*self.tasks, "shared"):
            if name not in weights:
                continue
            mean = weights[name].mean(dim=0)
            if name == "shared":
                rows.append(mean)
                continue
            row = torch.full((self.n_shared + self.n_specific * len(self.tasks),), math.nan,
                             dtype=mean.dtype, device=mean.device)
            row[: self.n_shared] = mean[: self.n_shared]
            begin = self.n_shared + self.tasks.index(name) * self.n_specific
            row[begin: begin + self.n_specific] = mean[self.n_shared:]
            rows.append(row)
        return torch.stack(rows)

    def sharing_snapshot(self) -> dict[str, pd.DataFrame]:
        """Per level: each gate's mean weight over the experts on validation inputs (rows sum to
        1; NaN where a gate cannot choose the expert), and each expert's load, its share of all
        the level's gate weight (sums to 1)."""
        with inference(self):
            _, weights = self._extract(self.probe)
        columns = self._columns()
        snapshot = {}
        for index, level_weights in enumerate(weights):
            gates = self._gate_matrix(level_weights)
            rows = [n for n in (*self.tasks, "shared") if n in level_weights]
            suffix = "" if len(self.levels) == 1 else f", level {index + 1}"
            load = gates.nan_to_num(0.0).mean(dim=0, keepdim=True)
            snapshot[f"{self.snapshot_name} gate{suffix}"] = matrix(gates, rows, columns)
            snapshot[f"{self.snapshot_name} expert load{suffix}"] = matrix(load, ["load"], columns)
        return snapshot


class CGC(PLE):
    """Customized Gate Control (Tang et al., RecSys 2020): PLE's single-level building block.
    Shared experts plus experts of each task; task t's gate mixes the shared experts and t's own."""

    snapshot_name = "CGC"

    def __init__(self, suite: SuiteData, tasks: Sequence[str], *, shared_experts: int = 1, task_experts: int = 1,
                 expert_units: int = 16) -> None:
        super().__init__(suite, tasks, levels=1, shared_experts=shared_experts, task_experts=task_experts,
                         expert_units=expert_units)
