"""How do the sharing architectures compare, and what does each cost per step?

Part 1, the MMoE paper's central experiment in small (Ma et al., KDD 2018, section 5): on the
synthetic suite at task correlations p = 1.0, 0.5 and 0.0, train hard sharing and MMoE with equal
weighting for several seeds; print the final validation MSE of each task, mean +/- std over seeds,
and how much the two tasks' MMoE gates overlap (sum_i min(g1_i, g2_i): 1 = the same mixture of
experts). Hard sharing runs on the paper's parameter-matched bottom, one layer of 128 units (as
many as MMoE's 8 experts x 16 units; ``--suite-trunk`` adds the suite's MLP 128-64). All models
have the same heads (one hidden layer of 64 units; the paper's towers are smaller).

Part 2: the median time of a training step (forward, backward, Adam; no diagnostics) of every
registered architecture on every suite (its default tasks, batch 128), relative to hard sharing
on the same suite, measured in one run with the architectures interleaved so that a noisy machine
slows them all alike.
Run: python -m benchmarks.architectures [--threads 2] [--steps 2500] [--lr 3e-3] [--seeds 3] [--suite-trunk]
     [--timing-steps 15] [--rounds 2] [--skip-correlation]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.engine.trainer import Trainer
from mtl_core.suites import SUITES, build_suite
from mtl_core.suites.backbones import mlp_encoder
from mtl_core.suites.base import SuiteData

CORRELATIONS = (1.0, 0.5, 0.0)
MATCHED = "hps, 1 layer of 128"
# Small data for the timing runs: a step's cost does not depend on the training set's size.
TIMING_SUITE_PARAMS = {"synthetic": {"train_size": 2000}, "multidigits": {"train_pairs": 2000}}


def correlation_run(arch: str, p: float, seed: int, steps: int, lr: float,
                    suite: SuiteData) -> tuple[dict[str, float], float]:
    config = RunConfig.parse({"suite": "synthetic", "suite_params": {"correlation": p}, "arch": arch,
                              "method": "ew", "steps": steps, "lr": lr, "batch_size": 128, "eval_every": steps,
                              "probe_every": 0, "snapshot_every": steps, "seed": seed, "device": "cpu"})
    records = list(Trainer(config, suite=suite).run())
    final = records[-1]
    losses = {task: metrics["loss"] for task, metrics in final.val.items()}
    overlap = float("nan")
    if final.snapshot and "MMoE gate" in final.snapshot:
        gates = final.snapshot["MMoE gate"].to_numpy()
        overlap = float(gates.min(axis=0).sum())
    return losses, overlap


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +/- {statistics.stdev(values):.3f}"


def correlation_table(steps: int, seeds: int, lr: float, suite_trunk: bool) -> None:
    begin = time.perf_counter()
    print(f"Part 1: synthetic (MMoE paper), 100,000 training examples, {steps} steps of batch 128, Adam lr {lr:g}, "
          f"equal weighting, {seeds} seeds; final validation MSE (mean +/- std over seeds)")
    print(f"{'p':>4}  {'architecture':<20}{'y1':>18}{'y2':>18}{'mean':>18}{'gate overlap':>14}")
    for p in CORRELATIONS:
        suite = build_suite("synthetic", {"correlation": p})
        matched = dataclasses.replace(suite, make_encoder=lambda d=suite.input_shape[0]: mlp_encoder(d, (128,)))
        variants = [(MATCHED, "hps", matched), ("mmoe", "mmoe", suite)]
        if suite_trunk:
            variants.insert(0, ("hps, suite's trunk", "hps", suite))
        for label, arch, data in variants:
            per_task: dict[str, list[float]] = {"y1": [], "y2": []}
            overlaps = []
            for seed in range(seeds):
                losses, overlap = correlation_run(arch, p, seed, steps, lr, data)
                for task, value in losses.items():
                    per_task[task].append(value)
                overlaps.append(overlap)
            means = [(a + b) / 2 for a, b in zip(per_task["y1"], per_task["y2"], strict=True)]
            gate = f"{statistics.mean(overlaps):.2f}" if arch == "mmoe" else ""
            print(f"{p:>4.1f}  {label:<20}{mean_std(per_task['y1']):>18}{mean_std(per_task['y2']):>18}"
                  f"{mean_std(means):>18}{gate:>14}")
    print(f"({time.perf_counter() - begin:.0f} s)")


def timing_table(timing_steps: int, rounds: int) -> None:
    begin = time.perf_counter()
    archs = [entry.key for entry in ARCHITECTURES]
    warm = 5
    total = warm + (timing_steps + 1) * rounds + 1
    print(f"\nPart 2: median ms per training step (batch 128, equal weighting, default knobs and tasks), "
          f"and x hps on the same suite; {rounds} rounds x {timing_steps} steps")
    print(f"{'architecture':<14}" + "".join(f"{suite.key:>26}" for suite in SUITES))
    medians: dict[tuple[str, str], float] = {}
    for suite in SUITES:
        runs = {}
        for arch in archs:
            config = RunConfig.parse({"suite": suite.key, "suite_params": TIMING_SUITE_PARAMS.get(suite.key, {}),
                                      "arch": arch, "method": "ew", "steps": total, "batch_size": 128,
                                      "eval_every": total, "probe_every": 0, "snapshot_every": 0, "seed": 0,
                                      "device": "cpu"})
            runs[arch] = Trainer(config).run()
            for _ in range(warm):  # first steps allocate, and torch picks its kernels
                next(runs[arch])
        samples: dict[str, list[float]] = {arch: [] for arch in archs}
        for _ in range(rounds):
            for arch in archs:
                previous = None
                for _ in range(timing_steps + 1):
                    record = next(runs[arch])
                    if previous is not None:
                        samples[arch].append(record.time_s - previous)
                    previous = record.time_s
        for arch in archs:
            medians[suite.key, arch] = statistics.median(samples[arch])
    for arch in archs:
        cells = []
        for suite in SUITES:
            ms = medians[suite.key, arch] * 1e3
            cells.append(f"{ms:.1f} ms ({medians[suite.key, arch] / medians[suite.key, 'hps']:.1f}x)")
        print(f"{arch:<14}" + "".join(f"{cell:>26}" for cell in cells))
    print(f"({time.perf_counter() - begin:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2500, help="training steps per run in part 1")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate in part 1 (the playground's default)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--suite-trunk", action="store_true",
                        help="part 1 also trains hard sharing on the suite's own trunk (MLP 128-64)")
    parser.add_argument("--timing-steps", type=int, default=15, help="timed steps per architecture per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-correlation", action="store_true", help="only the timing table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_correlation:
        correlation_table(args.steps, args.seeds, args.lr, args.suite_trunk)
    timing_table(args.timing_steps, args.rounds)


if __name__ == "__main__":
    main()
