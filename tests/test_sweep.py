"""Grids: expansion, the results table on numbers worked out by hand, the CLI's sweep, and the
same numbers from the app's way of running (job manager) and the command line."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from mtl_core.__main__ import main
from mtl_core.config import ConfigError, RunConfig
from mtl_core.runs.baselines import baseline_config
from mtl_core.runs.jobs import JobManager
from mtl_core.runs.store import Store
from mtl_core.runs.sweep import (
    Grid,
    baseline_metrics,
    make_grid,
    results_table,
    run_summaries,
    with_delta_m,
)
from tests.compare_support import SETUP, stored_run

BASE = RunConfig.parse({**SETUP, "method": "cagrad", "method_params": {"c": 0.2}})


def test_a_grid_is_every_method_arch_and_seed_and_knobs_stay_with_their_method():
    grid = make_grid(BASE, "ew,cagrad", ["hps", "mmoe"], "0, 1,2")
    configs = grid.configs()
    assert len(configs) == 12
    assert [(c.seed, c.arch, c.method) for c in configs[:4]] == [
        (0, "hps", "ew"), (0, "hps", "cagrad"), (0, "mmoe", "ew"), (0, "mmoe", "cagrad")]
    assert {c.method_params.get("c") for c in configs if c.method == "cagrad"} == {0.2}
    assert all(c.method_params == {} for c in configs if c.method == "ew")
    assert {(c.suite, c.steps, c.tasks) for c in configs} == {(BASE.suite, BASE.steps, BASE.tasks)}


def test_a_grid_round_trips_through_the_url():
    grid = make_grid(BASE, "ew,cagrad", "hps", "0,1")
    assert Grid.from_query(grid.to_query()) == grid


@pytest.mark.parametrize("methods, archs, seeds, says", [
    ("ew,nope", "hps", "0", "methods: nope unknown"),
    ("", "hps", "0", "methods: give at least one"),
    ("ew", "hps,tower", "0", "archs: tower unknown"),
    ("ew", "hps", "0,x", "seeds: 'x' is not a whole number"),
    ("ew", "hps", "-1", "seeds: -1 is outside"),
    ("ew", "hps", ",".join(map(str, range(121))), "at most 120"),
])
def test_a_bad_grid_is_one_readable_sentence(methods, archs, seeds, says):
    with pytest.raises(ConfigError, match=says):
        make_grid(BASE, methods, archs, seeds)


@pytest.fixture
def compared(tmp_path):
    """STL baselines and two methods over two seeds, with final accuracies chosen by hand."""
    store = Store(tmp_path / "mtl.db")
    finals = {("ew", 0): (0.84, 0.70), ("ew", 1): (0.90, 0.88),
              ("pcgrad", 0): (0.76, 0.77), ("pcgrad", 1): (0.99, 0.72)}
    stl = {0: (0.80, 0.70), 1: (0.90, 0.80)}
    ids = []
    for seed, (left, right) in stl.items():
        config = baseline_config(RunConfig.parse({**SETUP, "seed": seed}))
        ids.append(stored_run(store, config, {"left": left, "right": right}, ms_per_step=4.0))
    for (method, seed), (left, right) in finals.items():
        config = RunConfig.parse({**SETUP, "method": method, "seed": seed})
        ids.append(stored_run(store, config, {"left": left, "right": right},
                              ms_per_step=10.0 if method == "ew" else 30.0))
    failed = stored_run(store, RunConfig.parse({**SETUP, "method": "mgda"}), {"left": 1.0, "right": 1.0},
                        status="failed")
    return store, ids, failed


def test_the_results_table_matches_the_hand_computed_numbers(compared):
    store, ids, failed = compared
    summaries = run_summaries(store, [*ids, failed])
    summaries = with_delta_m(summaries, baseline_metrics(store, summaries))
    table = results_table(summaries).set_index("method")
    ew, pcgrad, stl = table.iloc[0], table.iloc[1], table.iloc[2]
    assert (ew.name, ew["arch"], pcgrad.name, stl["arch"]) == ("ew", "hps", "pcgrad", "stl")
    assert "mgda" not in table.index  # failed: no final numbers to compare
    # delta-m per seed: ew (+5 %/2, +10 %/2) = 2.5, 5.0; pcgrad ((-5 + 10)/2, (10 - 10)/2) = 2.5, 0.
    assert ew["delta_m mean"] == pytest.approx(3.75)
    assert ew["delta_m std"] == pytest.approx(math.sqrt(2 * 1.25 ** 2))
    assert pcgrad["delta_m mean"] == pytest.approx(1.25)
    assert stl["delta_m mean"] == pytest.approx(0.0)
    assert ew["left mean"] == pytest.approx(0.87) and ew["left std"] == pytest.approx(math.sqrt(0.0018))
    # Ranks: left pcgrad 1, ew 2, stl 3; right ew 1, stl 2, pcgrad 3.
    assert [ew["mean_rank"], pcgrad["mean_rank"], stl["mean_rank"]] == pytest.approx([1.5, 2.0, 2.5])
    assert [ew["ms_per_step"], pcgrad["ms_per_step"], stl["ms_per_step"]] == pytest.approx([10, 30, 4])
    assert ew["baseline_runs"] == f"{ids[0]},{ids[1]}" and ew["seeds"] == "0,1"


def test_without_a_finished_baseline_delta_m_is_missing_not_made_up(tmp_path):
    store = Store(tmp_path / "mtl.db")
    run_id = stored_run(store, RunConfig.parse(SETUP), {"left": 0.5, "right": 0.5})
    summaries = with_delta_m(run_summaries(store, [run_id]), {})
    assert math.isnan(summaries["delta_m"].iloc[0])
    assert results_table(summaries)["baseline_runs"].iloc[0] == ""


TINY = ["--suite", "synthetic", "--param", "suite.train_size=1000", "--steps", "30",
        "--eval-every", "10", "--batch-size", "64", "--device", "cpu"]


def test_the_cli_sweep_trains_the_grid_and_its_baselines_once(tmp_path, capsys):
    store_path = str(tmp_path / "mtl.db")
    args = ["sweep", *TINY, "--methods", "ew,pcgrad", "--seeds", "0,1", "--workers", "2",
            "--store", store_path, "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["run_ids"]) == 4 and len(first["baseline_run_ids"]) == 2
    assert {row["status"] for row in first["runs"]} == {"done"}
    assert {row["device"] for row in first["runs"]} == {"cpu, 1 thread"}
    assert {row["method"] for row in first["table"]} == {"ew", "pcgrad"}
    assert all(math.isfinite(row["delta_m mean"]) for row in first["table"])
    # Again: the baselines are found in the store, not trained again; same seeds, same numbers.
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["baseline_run_ids"] == []
    assert [(r["y1"], r["y2"]) for r in second["runs"]] == [(r["y1"], r["y2"]) for r in first["runs"]]


def test_bad_sweep_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    assert main(["sweep", "--methods", "ew,nope", "--store", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nope" in err and "\n" not in err
    assert main(["sweep", "--methods", "ew", "--seeds", "a", "--store", str(tmp_path / "s.db")]) == 2
    assert main(["sweep", "--methods", "ew", "--workers", "0", *TINY, "--store", str(tmp_path / "s.db")]) == 2


def test_same_seed_same_numbers_from_the_app_and_the_cli(tmp_path):
    """The app's way (job manager, worker process) and ``python -m mtl_core run`` on one config
    (the conv net of multidigits: sums in thread order) give identical final metrics."""
    store_path = tmp_path / "mtl.db"
    config = RunConfig.parse({**SETUP, "method": "pcgrad", "seed": 7})
    manager = JobManager(store_path, warm=False)
    try:
        app_run = manager.submit(config)
        assert manager.wait(app_run, timeout=120) == "done"
    finally:
        manager.shutdown()
    config_file = tmp_path / "run.json"
    config_file.write_text(config.to_json())
    result = subprocess.run([sys.executable, "-m", "mtl_core", "run", "--config", str(config_file),
                             "--store", str(store_path), "--json"],
                            capture_output=True, text=True, timeout=120, check=True)
    cli = json.loads(result.stdout)
    store = Store(store_path)
    assert store.get_run(app_run).device == store.get_run(cli["run_id"]).device
    app_metrics = store.final_metrics(app_run)
    assert app_metrics == store.final_metrics(cli["run_id"])
    assert 0 < app_metrics["left"]["accuracy"] < 1
