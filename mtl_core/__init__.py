"""MTL Playground's engine: suites, architectures, methods, the trainer, the run store and jobs.

Never imports streamlit: the app and the command line are two thin front ends over this package.
The layers, each a subpackage whose ``__init__`` says what lives there and what it may import (an
import points down this list, never up; ``tests/test_layers.py`` checks it):

- ``runs``, ``studies``, ``lab``, ``figures``: run services, task-relationship studies, the
  Gradient lab's toy, pure figure builders;
- ``engine``: the trainer and what it measures;
- ``methods``, ``architectures``, ``suites``: what a run is made of, each with its registry;
- ``config``, ``registry``: the validated run configuration and the registries' metadata.

The public API, for notebooks and scripts (stable whatever moves inside)::

    from mtl_core import RunConfig, Trainer, make_aggregator, task_jacobian, delta_m

    trainer = Trainer(RunConfig(suite="multidigits", method="pcgrad", steps=200))
    for record in trainer.run():            # one StepRecord per step
        print(record.step, record.loss)
"""

from __future__ import annotations

import importlib
from typing import Any

# Name -> the module that defines it. Resolved on first use (PEP 562): importing any part of the
# package runs this file, and a page that only lists methods must not pay for torch (~1.5 s).
_PUBLIC = {
    # configuration and the registries
    "RunConfig": "mtl_core.config",
    "ConfigError": "mtl_core.config",
    "SUITES": "mtl_core.suites",
    "ARCHITECTURES": "mtl_core.architectures",
    "METHODS": "mtl_core.methods",
    # building blocks
    "build_suite": "mtl_core.suites",
    "make_aggregator": "mtl_core.methods",
    "make_weighting": "mtl_core.methods",
    "Aggregator": "mtl_core.methods.base",
    "GramAggregator": "mtl_core.methods.base",
    "Aggregation": "mtl_core.methods.base",
    "Weighting": "mtl_core.methods.base",
    # the engine
    "Trainer": "mtl_core.engine.trainer",
    "StepRecord": "mtl_core.engine.records",
    "task_jacobian": "mtl_core.engine.jacobian",
    "delta_m": "mtl_core.engine.metrics",
    "hypervolume": "mtl_core.engine.metrics",
    # above the engine
    "simulate": "mtl_core.lab.toy",
    "Store": "mtl_core.runs.store",
    "run_grid": "mtl_core.runs.sweep",
    "results_table": "mtl_core.runs.sweep",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'mtl_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})

