"""How fast does a sweep run, and what does writing to the store cost?

A 4-method x 3-seed grid on ``multidigits`` (hard sharing; ew, uw, pcgrad, mgda; short runs,
``--steps``) run through :func:`mtl_core.runs.sweep.run_grid` - the CLI's ``sweep``: a job manager and
worker processes - once with 1 worker and once with N (default: one per core). Each worker trains
with 1 torch thread in both cases on a 2-core machine (the manager gives N workers cores / N; one
worker uses all cores but one), so the speed-up is the parallelism of whole runs. Wall times include
each worker's start (torch's import, ~2.5 s, hidden by the warm worker when it can) and data set-up.

The store's write overhead: one run's training in this process, timed alone (the trainer's records
dropped) and with the worker's batched writes (``RecordBatcher``); also the time spent inside the
store's ``append`` calls, measured directly. Each repeated ``--rounds`` times, alternating, medians.
Run: python -m benchmarks.sweep [--steps 100] [--workers N] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from mtl_core.config import RunConfig
from mtl_core.runs.store import Store
from mtl_core.runs.sweep import default_workers, make_grid, run_grid

METHODS = "ew,uw,pcgrad,mgda"
SEEDS = "0,1,2"


def grid_configs(steps: int) -> list[RunConfig]:
    base = RunConfig.parse({"suite": "multidigits", "steps": steps, "eval_every": 25, "device": "cpu"})
    return make_grid(base, METHODS, "hps", SEEDS).configs()


def time_grid(configs: list[RunConfig], workers: int, folder: Path) -> tuple[float, list[str]]:
    path = folder / f"workers-{workers}.db"
    started = time.perf_counter()
    ids = run_grid(configs, store_path=path, workers=workers)
    seconds = time.perf_counter() - started
    store = Store(path)
    statuses = [store.get_run(run_id).status for run_id in ids]
    devices = sorted({store.get_run(run_id).device or "?" for run_id in ids})
    if set(statuses) != {"done"}:
        raise SystemExit(f"not every run finished: {statuses}")
    return seconds, devices


def time_training(config: RunConfig, store: Store | None) -> tuple[float, float]:
    """Seconds of one run's training loop (set-up excluded), and of that inside store.append."""
    import torch

    from mtl_core.engine.trainer import Trainer
    from mtl_core.runs.worker import RecordBatcher

    torch.set_num_threads(1)
    trainer = Trainer(config)
    batcher = None
    appending = 0.0
    if store is not None:
        run_id = store.create_run(config, status="running")
        batcher = RecordBatcher(store, run_id)
        original = store.append

        def timed_append(*args, **kwargs):
            nonlocal appending
            begun = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                appending += time.perf_counter() - begun

        store.append = timed_append  # type: ignore[method-assign]
    started = time.perf_counter()
    for record in trainer.run():
        if batcher is not None:
            batcher.add(record)
    if batcher is not None:
        batcher.flush()
    return time.perf_counter() - started, appending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None, help="N (default: one per core)")
    parser.add_argument("--rounds", type=int, default=3, help="repeats of the store-overhead timing")
    args = parser.parse_args()
    configs = grid_configs(args.steps)
    workers = args.workers or default_workers(len(configs))
    load = os.getloadavg()
    print(f"grid: {len(configs)} runs ({METHODS} x seeds {SEEDS}) on multidigits, hps, "
          f"{args.steps} steps each; {os.cpu_count()} cores; load average before: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        one, devices_one = time_grid(configs, 1, Path(folder))
        print(f"1 worker : {one:7.1f} s  ({', '.join(devices_one)})")
        many, devices_many = time_grid(configs, workers, Path(folder))
        print(f"{workers} workers: {many:7.1f} s  ({', '.join(devices_many)})")
        print(f"speed-up with {workers} workers: {one / many:.2f}x")

        config = configs[0]
        alone, written, appends = [], [], []
        store = Store(Path(folder) / "overhead.db")
        for _ in range(args.rounds):  # alternate, so that a change of load hits both alike
            alone.append(time_training(config, None)[0])
            seconds, appending = time_training(config, store)
            written.append(seconds)
            appends.append(appending)
        a, w, p = statistics.median(alone), statistics.median(written), statistics.median(appends)
        print(f"one run ({config.method}, {config.steps} steps, 1 thread), median of {args.rounds}: "
              f"trainer alone {a:.3f} s, with store writes {w:.3f} s "
              f"-> overhead {100 * (w - a) / a:+.1f} % (A/B); time inside store.append "
              f"{p * 1000:.1f} ms = {100 * p / w:.2f} % of training (direct)")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
