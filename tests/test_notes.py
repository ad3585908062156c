"""Automatic notes on a run (mtl_core.runs.notes): each event found at its step, none on a calm
run, and the end-of-run summary against a stored single-task baseline."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mtl_core.config import RunConfig
from mtl_core.engine.metrics import delta_m
from mtl_core.engine.records import StepRecord
from mtl_core.runs.baselines import baseline_config
from mtl_core.runs.notes import (
    CONFLICT_MIN_PROBES,
    DOMINANCE_PROBES,
    DOMINANCE_RATIO,
    VANISH_FRACTION,
    conflict_notes,
    divergence_note,
    dominance_notes,
    run_notes,
    run_summary,
    summary_table,
    vanishing_notes,
)
from mtl_core.runs.store import Store
from mtl_core.runs.view import RunView
from mtl_core.suites import SUITES

PROBES = list(range(10, 210, 10))  # 20 probes


def norms(**per_task: list[float]) -> pd.DataFrame:
    rows = [(step, task, value) for task, values in per_task.items() for step, value in zip(PROBES, values, strict=True)]
    return pd.DataFrame(rows, columns=["step", "task", "value"]).sort_values("step", kind="stable")


def pairs(values: list[float], pair: str = "left · right") -> pd.DataFrame:
    return pd.DataFrame({"step": PROBES[:len(values)], "pair": pair, "value": values})


def test_a_gradient_that_falls_to_almost_nothing_is_noted_at_the_first_probe_below():
    left = [1.0, 2.0, 1.5] + [0.5] * 7 + [1e-8] * 10  # vanishes at the 11th probe, step 110
    notes = vanishing_notes(norms(left=left, right=[1.0] * 20))
    assert [(n.kind, n.step, n.tasks) for n in notes] == [("vanishing", 110, ("left",))]
    assert notes[0].title == "left's gradient vanished"
    assert "+0.00" in notes[0].text  # what the heatmap's diagonal reads for it


def test_noise_a_single_small_probe_and_a_recovery_are_not_a_vanished_gradient():
    swinging = [1.0, 300.0, 2.0] * 6 + [1.0, 1.0]  # a factor 300 between probes: noise, not an event
    assert vanishing_notes(norms(left=swinging)) == []
    one_probe = [1.0] * 10 + [1e-9] + [1.0] * 9
    assert vanishing_notes(norms(left=one_probe)) == []
    back = [1.0] * 10 + [1e-9] * 3 + [1.0] * 7
    (note,) = vanishing_notes(norms(left=back))
    assert note.step == 110 and "came back at step 140" in note.text
    assert VANISH_FRACTION == 1e-3


def test_a_task_whose_gradient_outweighs_the_others_for_a_stretch_dominates():
    left = [1.0] * 20
    right = [2.0] * 4 + [DOMINANCE_RATIO * 1.5] * 16  # from the 5th probe, step 50
    (note,) = dominance_notes(norms(left=left, right=right))
    assert (note.kind, note.step, note.tasks, note.title) == ("dominance", 50, ("right",), "right's loss dominates")
    assert "on 16 of 20 probes" in note.text
    # a stretch shorter than DOMINANCE_PROBES, or a ratio under the threshold, is not domination
    short = [2.0] * 10 + [DOMINANCE_RATIO * 2] * (DOMINANCE_PROBES - 1) + [2.0] * (11 - DOMINANCE_PROBES)
    assert dominance_notes(norms(left=left, right=short)) == []
    assert dominance_notes(norms(left=left, right=[DOMINANCE_RATIO * 0.9] * 20)) == []


def test_dominance_counts_each_task_times_its_weight():
    """A method that weights the small task up balances the update: no domination."""
    grad = norms(left=[1.0] * 20, right=[50.0] * 20)
    assert [n.step for n in dominance_notes(grad)] == [10]
    balancing = norms(left=[25.0] * 20, right=[1.0] * 20)  # the weights, on the same steps
    assert dominance_notes(grad, balancing) == []
    no_weights = balancing.assign(value=math.nan)  # an aggregation without weights: the norms alone
    assert [n.step for n in dominance_notes(grad, no_weights)] == [10]


def test_a_pair_that_conflicts_on_most_probes_is_noted_from_when_its_share_stays_above_half():
    values = [0.5, 0.5] + [-0.4] * 18  # share so far: 0, 0, 1/3, 1/2, 3/5 (step 50), then above
    (note,) = conflict_notes(pairs(values))
    assert (note.kind, note.step, note.tasks) == ("conflict", 50, ("left", "right"))
    assert "18 of 20 probes (90%" in note.text
    assert conflict_notes(pairs([0.3] * 20)) == []
    assert conflict_notes(pairs([-0.4] * (CONFLICT_MIN_PROBES - 1))) == []  # too few probes to judge
    # unrelated tasks: a coin flip of small cosines, half of them negative and a mean about 0
    assert conflict_notes(pairs([0.05, -0.04] * 10 + [])) == []


def test_a_diverged_run_is_noted_at_the_step_whose_loss_was_not_finite():
    message = "the loss of left became non-finite at step 31; the 30 steps before it are kept"
    note = divergence_note("diverged", message, last_step=30)
    assert (note.kind, note.step) == ("divergence", 31) and "The loss of left" in note.text
    assert "learning rate" in note.text
    assert divergence_note("done", None, last_step=200) is None


CONFIG = RunConfig(suite="multidigits", tasks=("left", "right"), steps=200, eval_every=100, probe_every=10,
                   snapshot_every=0)


def record(step: int, *, left_norm: float = 1.0, right_norm: float = 1.0, cosine: float = 0.3,
           accuracy: float = 0.5) -> StepRecord:
    probe = step % 10 == 0
    return StepRecord(
        step=step, time_s=0.01 * step, loss={"left": 1.0, "right": 1.0}, weight={"left": 1.0, "right": 1.0},
        grad_norm={"left": left_norm, "right": right_norm} if probe else None,
        cosine=[[1.0, cosine], [cosine, 1.0]] if probe else None,
        val={"left": {"loss": 1.0, "accuracy": accuracy}, "right": {"loss": 1.0, "accuracy": accuracy / 2}}
        if step % 100 == 0 else None)


def test_run_notes_gathers_the_events_in_step_order(tmp_path):
    store = Store(tmp_path / "mtl.db")
    calm = store.create_run(CONFIG, status="done")
    store.append(calm, [record(step) for step in range(1, 201)])
    assert run_notes(RunView.read(store, calm), CONFIG.tasks, status="done") == []

    eventful = store.create_run(CONFIG, status="running")
    store.append(eventful, [record(step, left_norm=1.0 if step < 110 else 0.0, right_norm=1.0,
                                   cosine=0.5 if step < 30 else -0.4) for step in range(1, 141)])
    view = RunView.read(store, eventful)
    # right dominates once left has vanished, from five probes in a row on: not yet at step 140
    assert [(n.kind, n.step) for n in run_notes(view, CONFIG.tasks)] == [("conflict", 50), ("vanishing", 110)]
    store.append(eventful, [record(step, left_norm=0.0, cosine=-0.4) for step in range(141, 161)])
    notes = run_notes(RunView.read(store, eventful, previous=view), CONFIG.tasks, status="diverged",
                      message="the loss of left became non-finite at step 161; the 160 steps before it are kept")
    assert [(n.kind, n.step) for n in notes] == [("conflict", 50), ("vanishing", 110), ("dominance", 110),
                                                 ("divergence", 161)]


def test_the_summary_compares_the_final_metrics_with_the_stored_baseline(tmp_path):
    store = Store(tmp_path / "mtl.db")
    run = store.create_run(CONFIG, status="done")
    store.append(run, [record(step, accuracy=0.6) for step in (100, 200)])
    info, view = store.get_run(run), RunView.read(store, run)

    alone = run_summary(store, info, view)  # no baseline stored yet
    assert alone.baseline_id is None and alone.delta_m is None and not alone.is_baseline
    assert alone.table[["task", "metric", "final"]].values.tolist() == [["left", "accuracy", 0.6],
                                                                       ["right", "accuracy", 0.3]]
    assert alone.table["baseline"].isna().all()

    baseline = store.create_run(baseline_config(CONFIG), status="done")
    store.append(baseline, [record(200, accuracy=0.5)])
    summary = run_summary(store, info, view)
    assert summary.baseline_id == baseline
    assert summary.table["baseline"].tolist() == [0.5, 0.25]
    assert summary.table["change"].tolist() == pytest.approx([20.0, 20.0])
    expected = delta_m({"left": 0.6, "right": 0.3}, {"left": 0.5, "right": 0.25}, {"left": True, "right": True})
    assert summary.delta_m == pytest.approx(expected) == pytest.approx(20.0)
    assert run_summary(store, store.get_run(baseline), RunView.read(store, baseline)).is_baseline


def test_the_summary_signs_a_lower_is_better_metric_as_delta_m_does():
    suite = SUITES["digit_attributes"]
    table, value = summary_table({"digit": {"accuracy": 0.9}, "ink": {"mae": 0.2}}, suite, ["digit", "ink"],
                                 {"digit": {"accuracy": 0.9}, "ink": {"mae": 0.4}})
    assert table["change"].tolist() == pytest.approx([0.0, 50.0])  # half the error: +50 %
    assert value == pytest.approx(25.0)
    _, missing = summary_table({"digit": {"accuracy": 0.9}}, suite, ["digit", "ink"], {"digit": {"accuracy": 0.9}})
    assert missing is None  # ink has no value on either side: no delta-m
