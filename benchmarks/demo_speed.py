"""How fast does the default demo (multidigits, left + right, hps, ew) reach 90 % on both digits?

Prints: seconds of training until both validation accuracies first reach the target (checked every
10 steps), the step at which that happened, the first record's time, steps/s, and the default run's
final accuracies. ``--suite multimnist`` measures the same set-up on real MNIST digits.
Run: python -m benchmarks.demo_speed [--threads 2] [--target 0.9] [--seeds 0,1,2] [--suite multidigits]
"""

from __future__ import annotations

import argparse
import time

import torch

from mtl_core.config import RunConfig
from mtl_core.engine.trainer import Trainer


def time_to_target(config: RunConfig, target: float) -> tuple[float | None, int | None, dict, float, float]:
    trainer = Trainer(config.model_copy(update={"eval_every": 10}))
    reached_s = reached_step = None
    final: dict = {}
    last = first = None
    for record in trainer.run():
        last = record
        first = record.time_s if first is None else first
        if record.val is None:
            continue
        final = {task: metrics["accuracy"] for task, metrics in record.val.items()}
        if reached_s is None and min(final.values()) >= target:
            reached_s, reached_step = record.time_s, record.step
    return reached_s, reached_step, final, config.steps / last.time_s, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--suite", default="multidigits", help="a two-task image suite, e.g. multimnist")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    default = RunConfig(suite=args.suite)
    Trainer(default)  # builds (and caches) the data; not part of the training time
    print(f"threads={args.threads}; data + model set-up {time.perf_counter() - begin:.2f} s (first build)")
    print(f"{args.suite}: {default.steps} steps, batch {default.batch_size}, {default.optimizer} lr {default.lr}")
    for seed in (int(s) for s in args.seeds.split(",")):
        reached_s, step, final, rate, first = time_to_target(default.model_copy(update={"seed": seed}), args.target)
        reached = f"{reached_s:.2f} s (step {step})" if reached_s is not None else "not reached"
        accuracies = ", ".join(f"{task} {value:.3f}" for task, value in final.items())
        print(f"seed {seed}: first record after {first * 1000:.0f} ms; >= {args.target:.0%} on both tasks "
              f"after {reached}; {rate:.0f} steps/s; final accuracy {accuracies}")


if __name__ == "__main__":
    main()
