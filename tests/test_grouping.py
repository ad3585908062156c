"""Grouping search on hand-built affinity matrices whose answer is known, rank agreement between
matrices, and the pairwise-transfer bookkeeping (Standley et al.) on a store with known metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mtl_core.config import RunConfig
from mtl_core.engine.records import StepRecord
from mtl_core.runs.store import Store
from mtl_core.studies.affinity import rank_agreement
from mtl_core.studies.grouping import (
    Grouping,
    best_groupings,
    group_configs,
    partitions,
    task_scores,
)
from mtl_core.studies.transfer import (
    find_run,
    missing_transfer_runs,
    pair_configs,
    relative_gain,
    stl_config,
    train_transfer_study,
    transfer_gains,
    transfer_plan,
    transfer_progress,
)

STIRLING_6 = {1: 1, 2: 31, 3: 90, 4: 65, 5: 15, 6: 1}  # partitions of 6 items into g groups


def matrix(tasks: str, values) -> pd.DataFrame:
    return pd.DataFrame(np.array(values, dtype=float), index=list(tasks), columns=list(tasks))


def test_partitions_are_every_set_partition_once():
    items = list("abcdef")
    for n_groups, count in STIRLING_6.items():
        found = list(partitions(items, n_groups))
        assert len(found) == count
        assert len(set(found)) == count
        for partition in found:
            assert len(partition) == n_groups
            assert sorted(task for group in partition for task in group) == items
    assert len(list(partitions(items))) == 203  # Bell(6)


def test_two_blocks_that_help_each_other_inside_and_hurt_across_are_found():
    # a-b help each other, c-d help each other, every cross pair hurts.
    affinity = matrix("abcd", [[0, 2, -1, -1], [2, 0, -1, -1], [-1, -1, 0, 1], [-1, -1, 1, 0]])
    best = best_groupings(affinity)
    assert [len(g.groups) for g in best] == [1, 2, 3, 4]
    assert best[1].groups == (("a", "b"), ("c", "d"))
    assert best[1].score == pytest.approx((2 + 2 + 1 + 1) / 4)
    # All four together: each task receives the mean of its column's three other entries.
    assert best[0].score == pytest.approx(np.mean([0, 0, -1 / 3, -1 / 3]))
    assert best[3].score == 0  # every task alone: as good as single-task learning, by definition
    # Three groups: keep the stronger pair together, the other two alone.
    assert best[2].groups == (("a", "b"), ("c",), ("d",))


def test_a_task_scores_the_affinity_it_receives_not_what_it_gives():
    affinity = matrix("ab", [[0, 1], [-1, 0]])  # a's steps help b; b's steps hurt a
    assert task_scores(affinity, [("a", "b")]) == {"a": -1.0, "b": 1.0}
    assert task_scores(affinity, [("a",), ("b",)]) == {"a": 0.0, "b": 0.0}


def test_groupings_leave_unmeasured_pairs_out_of_the_mean():
    affinity = matrix("abc", [[0, 1, math.nan], [1, 0, 3], [math.nan, 3, 0]])
    scores = task_scores(affinity, [("a", "b", "c")])
    assert scores == {"a": 1.0, "b": 2.0, "c": 3.0}


def test_conflicting_tasks_are_best_kept_apart():
    affinity = matrix("abc", [[0, -1, -1], [-1, 0, -1], [-1, -1, 0]])
    best = best_groupings(affinity)
    assert max(best, key=lambda g: g.score).groups == (("a",), ("b",), ("c",))


def test_grouping_rejects_mismatched_or_too_many_tasks():
    with pytest.raises(ValueError, match="same tasks"):
        best_groupings(pd.DataFrame(np.zeros((2, 2)), index=["a", "b"], columns=["b", "a"]))
    with pytest.raises(ValueError, match="up to 8 tasks"):
        best_groupings(matrix("abcdefghi", np.zeros((9, 9))))


def test_rank_agreement_of_equal_and_opposite_matrices():
    a = matrix("abcd", np.arange(16).reshape(4, 4))
    table = rank_agreement({"A": a, "same": a * 3, "opposite": -a})
    assert table.at["A", "same"] == pytest.approx(1.0)
    assert table.at["A", "opposite"] == pytest.approx(-1.0)
    directed = rank_agreement({"A": a, "T": a.T}, symmetric=False)
    assert directed.at["A", "T"] < 1  # a transposed matrix is not the same directed relation


def test_relative_gain_signs_follow_the_metric_direction():
    assert relative_gain(0.9, 0.8, higher_is_better=True) == pytest.approx(12.5)
    assert relative_gain(0.5, 0.4, higher_is_better=False) == pytest.approx(-25.0)
    assert math.isnan(relative_gain(1.0, 0.0, higher_is_better=True))


# --- pairwise transfer bookkeeping --------------------------------------------------------------

def base_config(**changes) -> RunConfig:
    return RunConfig.parse({"suite": "digit_attributes", "tasks": ["digit", "parity", "ink"], "steps": 30,
                            "eval_every": 30, "affinity_every": 10, "device": "cpu", **changes})


def record_metrics(store: Store, config: RunConfig, metrics: dict[str, dict[str, float]]) -> int:
    run_id = store.create_run(config, status="running")
    store.append(run_id, [StepRecord(step=config.steps, time_s=1.0, loss={t: 1.0 for t in config.tasks},
                                     weight={t: 1.0 for t in config.tasks}, val=metrics)])
    store.set_status(run_id, "done")
    return run_id


def test_the_plan_is_one_stl_run_and_every_pair_with_the_same_training_settings():
    base = base_config(lr=0.01, seed=3)
    plan = transfer_plan(base)
    assert len(plan) == 1 + 3
    assert plan[0] == stl_config(base) and plan[0].arch == "stl" and plan[0].tasks == base.tasks
    assert set(pair_configs(base)) == {("digit", "parity"), ("digit", "ink"), ("parity", "ink")}
    for config in plan:
        assert (config.lr, config.seed, config.steps, config.suite) == (0.01, 3, 30, "digit_attributes")
        assert config.method == "ew" and config.affinity_every == 0


def test_transfer_gains_compare_each_pair_with_the_stl_baselines(tmp_path):
    store = Store(tmp_path / "mtl.db")
    base = base_config()
    assert transfer_gains(store, base).isna().all().all()
    record_metrics(store, stl_config(base), {"digit": {"accuracy": 0.80}, "parity": {"accuracy": 0.90},
                                             "ink": {"mae": 2.0}})
    pairs = pair_configs(base)
    record_metrics(store, pairs[("digit", "parity")], {"digit": {"accuracy": 0.88}, "parity": {"accuracy": 0.90}})
    record_metrics(store, pairs[("digit", "ink")], {"digit": {"accuracy": 0.72}, "ink": {"mae": 1.5}})
    gains = transfer_gains(store, base)
    assert gains.at["parity", "digit"] == pytest.approx(10.0)  # digit learned beside parity: +10 %
    assert gains.at["digit", "parity"] == pytest.approx(0.0)
    assert gains.at["ink", "digit"] == pytest.approx(-10.0)
    assert gains.at["digit", "ink"] == pytest.approx(25.0)  # lower MAE is better: a gain
    assert math.isnan(gains.at["parity", "ink"]) and math.isnan(gains.at["ink", "ink"])  # not run / diagonal
    assert transfer_progress(store, base) == (3, 4)
    assert missing_transfer_runs(store, base) == [pairs[("parity", "ink")]]


def test_find_run_matches_the_whole_config_and_the_status(tmp_path):
    store = Store(tmp_path / "mtl.db")
    base = base_config()
    config = stl_config(base)
    store.create_run(config, status="failed")
    assert find_run(store, config) is None
    done = record_metrics(store, config, {})
    assert find_run(store, config) == done
    assert find_run(store, stl_config(base_config(seed=1))) is None


def test_the_study_submits_only_the_missing_runs(tmp_path):
    store = Store(tmp_path / "mtl.db")
    base = base_config()
    record_metrics(store, stl_config(base), {})
    submitted = []
    train_transfer_study(store, base, train=lambda config: submitted.append(config) or len(submitted))
    assert submitted == list(pair_configs(base).values())


def test_group_configs_make_one_run_per_group_with_the_base_settings():
    base = base_config(method="static", method_params={"weights": "1, 2, 3"})
    grouping = Grouping(groups=(("digit", "parity"), ("ink",)), score=0.1, task_scores={})
    configs = group_configs(base, grouping)
    assert [c.tasks for c in configs] == [("digit", "parity"), ("ink",)]
    assert all(c.steps == 30 and c.affinity_every == 0 for c in configs)
    # Per-task weights do not fit a subset of the tasks: those runs fall back to equal weighting.
    assert all(c.method == "ew" for c in configs)


def test_the_study_reuses_a_delta_m_baseline_with_the_same_settings(tmp_path):
    from mtl_core.runs.baselines import baseline_config

    store = Store(tmp_path / "mtl.db")
    base = base_config()
    # The STL baseline another page trained for a run with other probes and evaluation steps.
    other = baseline_config(base.model_copy(update={"eval_every": 10, "probe_every": 3}))
    record_metrics(store, other, {"digit": {"accuracy": 0.5}})
    assert transfer_progress(store, base) == (1, 4)
    assert stl_config(base) not in missing_transfer_runs(store, base)
