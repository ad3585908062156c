"""What does each method cost per training step?

On the reference model of DESIGN section 3 (a shared MLP 64-256-256 on the 64 pixels of the
shipped digits, three 10-class tasks — digit, parity, "5 or more" — batch 256, 2 torch threads),
times whole training steps (forward, method, backward, Adam) of every registered method through the
real trainer, without diagnostics. Prints the median step time and two ratios measured in the same
run: to equal weighting (one summed backward) and to the bare Jacobian (T backward passes, then the
plain sum written as the update: what every gradient method pays before its own arithmetic).
Rounds interleave the methods so that a noisy machine slows them all alike.
Run: python -m benchmarks.methods [--threads 2] [--steps 40] [--rounds 5] [--methods ew,pcgrad]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from torch import Tensor

from mtl_core.config import RunConfig
from mtl_core.engine.trainer import Trainer
from mtl_core.methods import METHODS
from mtl_core.methods.base import Aggregation, Aggregator
from mtl_core.suites import build_suite
from mtl_core.suites.backbones import mlp_encoder
from mtl_core.suites.base import SuiteData

TASKS = ("digit", "parity", "large")
JACOBIAN = "T backward passes"


class BareJacobian(Aggregator):
    """The Jacobian's cost alone: the update is the plain sum of the task gradients."""

    def __call__(self, jacobian: Tensor, /) -> Aggregation:
        return Aggregation(update=jacobian.sum(dim=0), weights=torch.ones(jacobian.shape[0]))


def reference_suite() -> SuiteData:
    digits = build_suite("digit_attributes", {})
    return dataclasses.replace(
        digits, x_train=digits.x_train.flatten(1), x_val=digits.x_val.flatten(1),
        make_encoder=lambda: mlp_encoder(64, (256, 256)))


def trainer_for(method: str, suite: SuiteData, total_steps: int, device: str) -> Trainer:
    config = RunConfig.parse({"suite": "digit_attributes", "tasks": TASKS, "arch": "hps",
                              "method": "ew" if method == JACOBIAN else method, "batch_size": 256,
                              "steps": total_steps, "eval_every": total_steps, "probe_every": 0,
                              "snapshot_every": 0, "seed": 0, "device": device})
    trainer = Trainer(config, suite=suite)
    if method == JACOBIAN:
        trainer.weighting, trainer.aggregator = None, BareJacobian(len(TASKS))
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per method per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--methods", help="comma-separated keys (default: every registered method)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (on a GPU each step is synchronised)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",") if args.methods else [m.key for m in METHODS]
    if "ew" not in methods:
        methods.insert(0, "ew")
    methods.insert(1, JACOBIAN)

    suite = reference_suite()
    warm = 10
    trainers = {m: trainer_for(m, suite, warm + (args.steps + 1) * args.rounds + 1, args.device)
                for m in methods}
    runs = {m: t.run() for m, t in trainers.items()}
    for run in runs.values():  # warm-up: first steps allocate, and torch picks its kernels
        for _ in range(warm):
            next(run)
    samples: dict[str, list[float]] = {m: [] for m in methods}
    begin = time.perf_counter()
    for _ in range(args.rounds):
        for method in methods:
            previous = None
            for _ in range(args.steps + 1):
                record = next(runs[method])
                if previous is not None:
                    samples[method].append(record.time_s - previous)
                previous = record.time_s
    medians = {m: statistics.median(s) for m, s in samples.items()}
    print(f"reference model: MLP 64-256-256 shared, 3 tasks, batch 256, {args.device}, {args.threads} threads; "
          f"{args.rounds} rounds x {args.steps} steps per method ({time.perf_counter() - begin:.0f} s)")
    print(f"{'method':<22}{'ms/step':>9}{'x ew':>8}{'x Jacobian':>12}")
    for method in methods:
        print(f"{method:<22}{medians[method] * 1e3:>9.2f}{medians[method] / medians['ew']:>8.2f}"
              f"{medians[method] / medians[JACOBIAN]:>12.2f}")
    for method, trainer in trainers.items():
        if trainer.message:
            print(f"note: {method}: {trainer.message}")


if __name__ == "__main__":
    main()
