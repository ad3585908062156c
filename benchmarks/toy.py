"""How fast is the Gradient lab's toy (the CAGrad paper's Fig. 1)?

Times, on ``--threads`` torch/BLAS threads: the first call in a fresh process (numba compiles the
toy's kernel and each method's rule then, once per process), the paper's full experiment (3 starts x {ew, mgda,
pcgrad, cagrad} x 100,000 Adam steps; the goal is <= 10 s on 2 CPU threads) and one what-if (one
start, the 4 methods, 20,000 steps; goal <= 2 s), each the best of ``--repeats``; then a plain
per-step loop -- each trajectory on its own, its aggregator's ``__call__`` on a torch Jacobian,
``torch.optim.Adam`` -- over ``--loop-steps`` steps, and the speed-up of the compiled simulation
over it per step. Prints the machine's load average and each run's CPU time next to its wall time,
as other work on the machine slows the wall clock.
Run: python -m benchmarks.toy [--threads 2] [--repeats 3] [--loop-steps 2000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from mtl_core.lab import problem, toy
from mtl_core.methods import make_aggregator

METHODS = ("ew", "mgda", "pcgrad", "cagrad")


def best_time(run, repeats: int) -> tuple[float, float]:
    """Best wall-clock seconds of ``repeats`` runs, and the CPU seconds of that run: on a shared
    machine the wall clock counts the time others held the cores, the CPU time does not."""
    times = []
    for _ in range(repeats):
        begin, cpu = time.perf_counter(), time.process_time()
        run()
        times.append((time.perf_counter() - begin, time.process_time() - cpu))
    return min(times)


def plain_loop(steps: int) -> float:
    """Seconds for ``steps`` steps of all 12 trajectories, one trajectory and one step at a time."""
    begin = time.perf_counter()
    for method in METHODS:
        aggregator = None if method == "ew" else make_aggregator(method, 2, **toy.METHOD_PARAMS.get(method, {}))
        for start in problem.STARTS:
            x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
            optimizer = torch.optim.Adam([x], lr=toy.PAPER_LR)
            for _ in range(steps):
                d_x1, d_x2 = problem.gradients(x.detach().numpy()[:1], x.detach().numpy()[1:])
                jacobian = torch.from_numpy(np.stack([d_x1[:, 0], d_x2[:, 0]], axis=1))
                update = jacobian.sum(0) if aggregator is None else aggregator(jacobian).update
                x.grad = update
                optimizer.step()
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}; load average before: {os.getloadavg()[0]:.2f}")

    first, first_cpu = best_time(lambda: toy.simulate(METHODS, problem.STARTS, steps=10), 1)
    print(f"first call (compiles the kernel and the 4 methods' rules): {first:.2f} s wall, {first_cpu:.2f} s CPU")
    full, full_cpu = best_time(lambda: toy.simulate(METHODS, problem.STARTS, steps=toy.PAPER_STEPS), args.repeats)
    print(f"paper's experiment (3 starts x 4 methods x {toy.PAPER_STEPS:,} Adam steps): {full:.2f} s wall, "
          f"{full_cpu:.2f} s CPU  (goal <= 10 s)")
    what_if, what_if_cpu = best_time(lambda: toy.simulate(METHODS, [problem.STARTS[1]], steps=20_000), args.repeats)
    print(f"one what-if (1 start x 4 methods x 20,000 steps): {what_if:.2f} s wall, {what_if_cpu:.2f} s CPU  "
          "(goal <= 2 s)")

    loop = plain_loop(args.loop_steps)
    per_step_loop = loop / args.loop_steps
    per_step_compiled = full / toy.PAPER_STEPS
    print(f"plain per-step loop: {per_step_loop * 1e6:.0f} us per step of all 12 trajectories "
          f"({per_step_loop * toy.PAPER_STEPS:.0f} s for the paper's experiment, extrapolated from "
          f"{args.loop_steps:,} steps); compiled: {per_step_compiled * 1e6:.0f} us; "
          f"speed-up {per_step_loop / per_step_compiled:.1f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
