"""How fast does the default demo (multidigits, left + right, hps, ew) reach 90 % on both digits?

Prints: seconds of training until both validation accuracies first reach the target (checked every
10 steps), the step at which that happened, steps/s, and the default run's final accuracies.
Run: python -m benchmarks.demo_speed [--threads 2] [--target 0.9] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import time

import torch

from mtl_core.config import RunConfig
from mtl_core.engine.trainer import Trainer


def time_to_target(config: RunConfig, target: float) -> tuple[float | None, int | None, dict, float]:
    trainer = Trainer(config.model_copy(update={"eval_every": 10}))
    reached_s = reached_step = None
    final: dict = {}
    last = None
    for record in trainer.run():
        last = record
        if record.val is None:
            continue
        final = {task: metrics["accuracy"] for task, metrics in record.val.items()}
        if reached_s is None and min(final.values()) >= target:
            reached_s, reached_step = record.time_s, record.step
    return reached_s, reached_step, final, config.steps / last.time_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    Trainer(RunConfig())  # builds (and caches) the data; not part of the training time
    print(f"threads={args.threads}; data + model set-up {time.perf_counter() - begin:.2f} s (first build)")
    default = RunConfig()
    print(f"default demo: {default.steps} steps, batch {default.batch_size}, {default.optimizer} lr {default.lr}")
    for seed in (int(s) for s in args.seeds.split(",")):
        reached_s, step, final, rate = time_to_target(default.model_copy(update={"seed": seed}), args.target)
        reached = f"{reached_s:.2f} s (step {step})" if reached_s is not None else "not reached"
        accuracies = ", ".join(f"{task} {value:.3f}" for task, value in final.items())
        print(f"seed {seed}: >= {args.target:.0%} on both tasks after {reached}; "
              f"{rate:.0f} steps/s; final accuracy {accuracies}")


if __name__ == "__main__":
    main()
