"""What does the lookahead task affinity (TAG) add to a training step? Prints times and ratios.

digit_attributes with all six tasks, hard sharing, equal weighting, Adam, batch 128. Each setting
trains the same run (same seed, same batches) with TAG off and on at every k steps; the runs are
interleaved (off, on, off, on, ...) so that the load of a shared machine hits both alike, and the
ratio is taken per repeat, then its median printed. Both wall time and the process's CPU time are
measured: on a loaded machine (other processes take turns on the cores) wall time swings by
several times between identical runs, while CPU time with one torch thread counts only the work
of the step. With probes every k steps too (the default
probe_every is 10) the trainer reuses the probe's Jacobian and TAG costs T forward passes per
measurement; with probes off it must take the Jacobian itself.

Run: python -m benchmarks.affinity [--threads 2] [--steps 300] [--repeats 5] [--every 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from mtl_core.config import RunConfig
from mtl_core.engine.trainer import Trainer

TASKS = ("digit", "parity", "large", "ink", "centre", "slant")


def seconds_per_step(config: RunConfig) -> tuple[float, float]:
    """(wall seconds, CPU seconds) per step of one run."""
    trainer = Trainer(config)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in trainer.run():
        pass
    assert trainer.status == "done", trainer.message
    return (time.perf_counter() - wall) / config.steps, (time.process_time() - cpu) / config.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--every", type=int, default=10, help="k: TAG every k steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"digit_attributes, {len(TASKS)} tasks, hps + ew, Adam, batch 128, {args.steps} steps, "
          f"{args.threads} torch threads, {args.repeats} interleaved repeats, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    base = RunConfig.parse({"suite": "digit_attributes", "tasks": TASKS, "steps": args.steps,
                            "eval_every": args.steps, "snapshot_every": 0, "device": "cpu"})
    seconds_per_step(base)  # warm-up: data built and cached, kernels loaded
    for probe_every in (args.every, 0):
        off = base.model_copy(update={"probe_every": probe_every})
        on = base.model_copy(update={"probe_every": probe_every, "affinity_every": args.every})
        times: dict[str, dict[str, list[float]]] = {"wall": {"off": [], "on": []}, "cpu": {"off": [], "on": []}}
        for _ in range(args.repeats):
            for key, config in (("off", off), ("on", on)):
                wall, cpu = seconds_per_step(config)
                times["wall"][key].append(wall)
                times["cpu"][key].append(cpu)
        label = f"probes every {probe_every}" if probe_every else "probes off"
        for clock, runs in times.items():
            ratios = [t_on / t_off for t_on, t_off in zip(runs["on"], runs["off"], strict=True)]
            ratio = statistics.median(ratios)
            print(f"{label:>17}, {clock:>4} time: TAG off {1e3 * statistics.median(runs['off']):.2f} ms/step, "
                  f"TAG every {args.every} {1e3 * statistics.median(runs['on']):.2f} ms/step; ratio on/off "
                  f"median {ratio:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}) -> "
                  f"{100 * (ratio - 1):+.1f} % per step")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
