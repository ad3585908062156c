"""STL baselines: one per (suite, knobs, tasks, seed, steps, optimiser settings), found again."""

from __future__ import annotations

from mtl_core.config import RunConfig
from mtl_core.runs.baselines import baseline_config, find_baselines, missing_baselines
from mtl_core.runs.store import Store
from tests.compare_support import SETUP, stored_run

RUN = RunConfig.parse({**SETUP, "arch": "mmoe", "method": "cagrad", "method_params": {"c": 0.2}, "seed": 3})


def test_the_baseline_keeps_the_setup_and_drops_architecture_and_method():
    baseline = baseline_config(RUN)
    assert (baseline.arch, baseline.method, baseline.arch_params, baseline.method_params) == ("stl", "ew", {}, {})
    for field in ("suite", "suite_params", "tasks", "seed", "steps", "lr", "optimizer", "batch_size"):
        assert getattr(baseline, field) == getattr(RUN, field)


def test_a_finished_baseline_is_found_and_reused_for_every_method(tmp_path):
    store = Store(tmp_path / "mtl.db")
    assert missing_baselines(store, [RUN]) == [baseline_config(RUN)]
    run_id = stored_run(store, baseline_config(RUN), {"left": 0.5, "right": 0.6})
    other_method = RUN.model_copy(update={"method": "ew", "method_params": {}})
    found = find_baselines(store, [RUN, other_method])
    assert [info.id for info in found.values()] == [run_id]
    assert missing_baselines(store, [RUN, other_method]) == []


def test_a_baseline_of_other_settings_does_not_count(tmp_path):
    store = Store(tmp_path / "mtl.db")
    for change in ({"seed": 4}, {"steps": 21}, {"lr": 0.01}, {"tasks": ("left",)},
                   {"suite_params": {"train_pairs": 600}}):
        stored_run(store, baseline_config(RunConfig.parse({**RUN.model_dump(), **change})),
                   {"left": 0.5, "right": 0.6})
    assert find_baselines(store, [RUN]) == {}


def test_a_queued_baseline_is_not_trained_twice_but_not_used_for_delta_m_yet(tmp_path):
    store = Store(tmp_path / "mtl.db")
    store.create_run(baseline_config(RUN), status="queued")
    assert missing_baselines(store, [RUN]) == []
    assert find_baselines(store, [RUN]) == {}
