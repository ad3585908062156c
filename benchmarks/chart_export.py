"""How long does a person wait after pressing a chart's PNG or SVG button?

Builds the Train dashboard's charts from synthetic records of a long run (3 tasks, 20,000 steps,
downsampled as the page does) and converts each with mtl_core.figures.export: the first conversion of the
process (it loads vl-convert's 30 MB native module and its Vega runtime), then the median of
``--repeats`` more. Prints one line per chart and format, in milliseconds, and the output size.
Run: python -m benchmarks.chart_export [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from mtl_core.figures import export
from mtl_core.figures import run as viz

TASKS = ["left", "right", "parity"]


def dashboard_charts(steps: int = 20_000) -> dict[str, dict]:
    rng = np.random.default_rng(0)
    step = np.arange(1, steps + 1)
    loss = pd.concat([pd.DataFrame({"step": step, "task": task, "metric": "loss",
                                    "value": (i + 1) / np.sqrt(step) * rng.uniform(0.8, 1.2, steps)})
                      for i, task in enumerate(TASKS)])
    weight = loss.assign(metric="weight", value=rng.uniform(0.5, 1.5, len(loss)))
    colors = viz.task_colors(TASKS)
    matrices = pd.DataFrame({"step": step[::50], "value": [
        [[1.0, -0.2, 0.1], [-0.2, 1.0, 0.3], [0.1, 0.3, 1.0]]] * len(step[::50])})
    return {
        "loss": viz.loss_chart(loss, colors, x_max=steps).to_dict(),
        "weights": viz.weights_chart(weight, colors, x_max=steps).to_dict(),
        "cosine heatmap": viz.cosine_heatmap(matrices["value"].iloc[-1], TASKS).to_dict(),
        "cosine history": viz.cosine_history_chart(viz.cosine_pairs(matrices, TASKS), x_max=steps).to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    charts = dashboard_charts()
    first = True
    for name, spec in charts.items():
        for fmt in ("png", "svg"):
            times = []
            for _ in range(args.repeats + 1):
                start = time.perf_counter()
                data = export.chart_file(spec, fmt)
                times.append((time.perf_counter() - start) * 1000)
            note = f"first {times[0]:7.1f} ms{' (cold: loads vl-convert)' if first else ''}"
            first = False
            print(f"{name:15s} {fmt}: median {statistics.median(times[1:]):7.1f} ms, {note}, "
                  f"{len(data) / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
