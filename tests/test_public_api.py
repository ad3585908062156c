"""The package's public API: what a notebook imports from ``mtl_core`` itself, stable whatever
moves inside. Tests of the API import it from there."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import mtl_core
from mtl_core import (
    ARCHITECTURES,
    METHODS,
    SUITES,
    ConfigError,
    RunConfig,
    Store,
    Trainer,
    delta_m,
    make_aggregator,
    make_weighting,
    simulate,
    task_jacobian,
)


def test_every_public_name_resolves_to_the_object_its_module_defines():
    import importlib

    for name, module in mtl_core._PUBLIC.items():
        assert getattr(mtl_core, name) is getattr(importlib.import_module(module), name), name
    assert sorted(mtl_core.__all__) == sorted(mtl_core._PUBLIC)
    assert set(mtl_core.__all__) <= set(dir(mtl_core))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mtl_core.nope  # noqa: B018


def test_importing_the_package_is_light():
    code = "import sys, mtl_core; from mtl_core import RunConfig, METHODS; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_notebook_session_through_the_public_api(tmp_path):
    assert {"multidigits", "synthetic"} <= set(SUITES.keys()) and "hps" in ARCHITECTURES and "pcgrad" in METHODS
    with pytest.raises(ConfigError):
        RunConfig.parse({"steps": 0})
    torch.set_num_threads(1)
    config = RunConfig.parse({"suite": "synthetic", "suite_params": {"train_size": 500}, "steps": 5,
                              "eval_every": 5, "seed": 1})
    records = list(Trainer(config).run())
    again = list(Trainer(config).run())
    assert [r.loss for r in records] == [r.loss for r in again]  # same seed, same numbers

    losses_model = torch.nn.Linear(3, 2)
    x = torch.randn(8, 3)
    out = losses_model(x)
    losses = torch.stack([out[:, 0].pow(2).mean(), out[:, 1].abs().mean()])
    jacobian = task_jacobian(losses, list(losses_model.parameters()))
    assert jacobian.shape == (2, 8)
    update = make_aggregator("mgda", n_tasks=2, variant="exact")(jacobian).update
    assert (jacobian @ update >= -1e-6).all()  # MGDA's update increases no task's loss to first order
    assert make_weighting("ew", n_tasks=2).weights(losses, 1).tolist() == [1.0, 1.0]
    assert delta_m({"a": 0.9}, {"a": 0.9}, higher_is_better={"a": True}) == 0.0

    paths = simulate(["ew", "cagrad"], steps=50, every=25)
    assert set(paths["method"]) == {"ew", "cagrad"} and np.isfinite(paths[["x1", "x2"]].to_numpy()).all()

    store = Store(tmp_path / "runs.db")
    run_id = store.create_run(config)
    assert store.get_run(run_id).config == config
