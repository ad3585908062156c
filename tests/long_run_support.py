"""A synthetic long run written straight into a store (``executemany``, no training): the
long-run tests open it on Train and Compare and measure what the pages hold of it."""

from __future__ import annotations

import json
import math
from itertools import combinations

from mtl_core.config import RunConfig
from mtl_core.engine.conflict import pair_label
from mtl_core.runs.store import Store

LAYERS = ("encoder.0", "encoder.2")


def write_long_run(store: Store, *, steps: int, tasks: tuple[str, ...] = ("digit", "parity", "large"),
                   method: str = "ew", seed: int = 0, eval_every: int = 1000, spike_at: int | None = None,
                   layers: tuple[str, ...] = LAYERS) -> int:
    """A finished run of ``steps`` steps with a probe at every step (grad norms, cos(update, g),
    per-layer cosines, the T x T cosine matrix) and a validation every ``eval_every`` steps. The
    first task's loss is one spike of 1e3 at ``spike_at`` (its curve elsewhere stays below 3)."""
    config = RunConfig(suite="digit_attributes", tasks=list(tasks), method=method, steps=steps,
                       probe_every=1, eval_every=eval_every, seed=seed)
    run_id = store.create_run(config, status="done")
    pairs = list(combinations(range(len(tasks)), 2))
    conn = store._conn()  # written directly: building StepRecords for 200,000 steps takes minutes
    batch = 20_000
    for begin in range(1, steps + 1, batch):
        scalars: list[tuple] = []
        matrices: list[tuple] = []
        for step in range(begin, min(begin + batch, steps + 1)):
            wave = math.sin(step / 997.0 + seed)
            for t, task in enumerate(tasks):
                loss = 2.0 / (1.0 + step / 1000.0) + 0.1 * (t + 1) + 0.05 * wave
                if spike_at == step and t == 0:
                    loss = 1e3
                scalars += [(run_id, step, "train", task, "loss", loss),
                            (run_id, step, "train", task, "weight", 1.0),
                            (run_id, step, "train", task, "grad_norm", 1.0 + t + 0.5 * wave),
                            (run_id, step, "train", task, "cos_update", 0.5 + 0.3 * wave)]
            scalars += [(run_id, step, "train", "", "time_s", step / 500.0),
                        (run_id, step, "train", "", "update_norm", 2.0 + wave)]
            for layer in layers:
                for i, j in pairs:
                    scalars.append((run_id, step, "layer", pair_label(tasks[i], tasks[j]), layer, 0.3 * wave))
            if step % eval_every == 0 or step == steps:
                for task in tasks:
                    scalars.append((run_id, step, "val", task, "accuracy", min(0.99, 0.5 + step / (2.0 * steps))))
                    scalars.append((run_id, step, "val", task, "loss", 1.0 / (1.0 + step / 1000.0)))
            cosine = [[1.0 if i == j else round(0.2 * wave - 0.1 * (i + j), 4) for j in range(len(tasks))]
                      for i in range(len(tasks))]
            matrices.append((run_id, step, "cosine", json.dumps(cosine, separators=(",", ":"))))
        with store._transaction() as tx:
            tx.executemany("INSERT INTO scalars (run, step, split, task, metric, value) VALUES (?, ?, ?, ?, ?, ?)",
                           scalars)
            tx.executemany("INSERT INTO matrices (run, step, name, json) VALUES (?, ?, ?, ?)", matrices)
    with store._transaction() as tx:
        tx.execute("UPDATE runs SET steps_done = ? WHERE id = ?", (steps, run_id))
    conn.execute("ANALYZE")
    return run_id
