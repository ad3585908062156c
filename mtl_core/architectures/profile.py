"""What an architecture costs on a suite: parameters (shared and per task) and forward time."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mtl_core.architectures import ARCHITECTURES
from mtl_core.suites import build_suite


@dataclass(frozen=True)
class Profile:
    arch: str
    shared_params: int
    task_params: int  # all tasks' own parameters together
    forward_ms: float  # median forward pass of one training batch, on one CPU thread, no grad


def profile(arch: str, suite: str, tasks: Sequence[str], *, arch_params: Mapping[str, Any] | None = None,
            suite_params: Mapping[str, Any] | None = None, batch_size: int = 128, repeats: int = 15) -> Profile:
    data = build_suite(suite, dict(suite_params or {}))
    entry = ARCHITECTURES[arch]
    torch.manual_seed(0)
    model = entry.load()(data, tuple(tasks), **entry.validate_params(arch_params or {}))
    model.eval()
    shared = sum(p.numel() for p in model.shared_parameters())
    own = sum(p.numel() for task in model.tasks for p in model.task_parameters(task))
    x = data.x_train[:batch_size]
    times = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: steadier, and the caller's other work keeps its cores
    try:
        with torch.no_grad():
            model(x)  # the first call allocates
            for _ in range(repeats):
                begin = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - begin)
    finally:
        torch.set_num_threads(threads)
    return Profile(arch=arch, shared_params=shared, task_params=own,
                   forward_ms=1e3 * statistics.median(times))
