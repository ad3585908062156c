"""Is a difference more than seed noise? The statistics (paired t-interval, Welch's fallback, the
t table, tied ranks) on numbers worked out by hand, the results table's verdict columns and rank,
the Compare page's table and charts of them, and the CLI's ``sweep --json`` verdict per row."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mtl_core.__main__ import main
from mtl_core.config import RunConfig
from mtl_core.engine.metrics import (
    BETTER,
    ONE_SEED_NOTE,
    REFERENCE_NOTE,
    VERDICTS,
    WITHIN_NOISE,
    WORSE,
    noise_ranks,
    noise_test,
    t_quantile_975,
    verdict_text,
)
from mtl_core.figures import compare as compare_viz
from mtl_core.runs.store import Store
from mtl_core.runs.sweep import (
    DEFAULT_SEEDS,
    baseline_metrics,
    format_table,
    live_runs,
    reference_rows,
    results_table,
    run_summaries,
    with_delta_m,
)
from mtl_core.suites import SUITES
from tests.compare_support import SETUP, stored_run, three_seed_grid

# --- the statistics -----------------------------------------------------------------------------------


def test_a_clear_paired_difference_is_better_and_its_mirror_worse():
    ours = {0: 0.91, 1: 0.86, 2: 0.95}
    reference = {0: 0.88, 1: 0.84, 2: 0.92}  # every seed 0.02-0.03 lower, seeds 0.05+ apart
    test = noise_test(ours, reference)
    diffs = np.array([0.03, 0.02, 0.03])
    half = 4.3027 * diffs.std(ddof=1) / math.sqrt(3)  # t(0.975, df 2)
    assert test.verdict == BETTER and test.test == "paired t" and test.seeds == 3 and test.note == ""
    assert (test.diff, test.low, test.high) == pytest.approx((diffs.mean(), diffs.mean() - half, diffs.mean() + half))
    assert noise_test(reference, ours).verdict == WORSE
    # A lower-is-better metric (an error): the same numbers read the other way round.
    assert noise_test(ours, reference, higher_is_better=False).verdict == WORSE
    assert noise_test(reference, ours, higher_is_better=False).verdict == BETTER


def test_pairing_by_seed_sees_a_consistent_gain_that_overlapping_spreads_hide():
    reference = {0: 0.70, 1: 0.80, 2: 0.90}
    ours = {0: 0.711, 1: 0.809, 2: 0.910}  # std 0.1 each, gain 0.009-0.011
    assert noise_test(ours, reference).verdict == BETTER
    # The same values with the seeds shuffled are no longer paired gains: within noise.
    shuffled = {0: 0.91, 1: 0.71, 2: 0.81}
    assert noise_test(shuffled, reference).verdict == WITHIN_NOISE


def test_identical_or_noisy_results_are_within_noise():
    same = {0: 0.9, 1: 0.8, 2: 0.85}
    test = noise_test(same, same)
    assert test.verdict == WITHIN_NOISE and (test.diff, test.low, test.high) == (0.0, 0.0, 0.0)
    noisy = noise_test({0: 0.90, 1: 0.80, 2: 0.86}, {0: 0.85, 1: 0.86, 2: 0.84})
    assert noisy.verdict == WITHIN_NOISE and noisy.low < 0 < noisy.high


def test_one_seed_is_within_noise_with_a_note_and_no_interval():
    test = noise_test({0: 0.99}, {0: 0.50})
    assert test.verdict == WITHIN_NOISE and test.note == ONE_SEED_NOTE == "one seed: no test"
    assert test.test == "none" and test.seeds == 1 and test.diff == pytest.approx(0.49)
    assert math.isnan(test.low) and math.isnan(test.high)
    assert test.describe() == "within noise (one seed: no test)"
    # Two seeds on one side, one on the other: still one pair.
    assert noise_test({0: 0.9, 1: 0.95}, {0: 0.5}).note == ONE_SEED_NOTE
    # NaN (a run without the measure) does not count as a seed.
    assert noise_test({0: 0.9, 1: math.nan}, {0: 0.5, 1: 0.6}).note == ONE_SEED_NOTE


def test_a_difference_equal_on_every_seed_is_tested_unpaired():
    # Accuracies on 400 examples move in steps of 0.0025: two seeds one example apart both times
    # give paired differences with no spread, a zero-width interval that would call it real.
    test = noise_test({0: 0.2050, 1: 0.2100}, {0: 0.2075, 1: 0.2125})
    assert test.test == "Welch t" and test.verdict == WITHIN_NOISE and "every seed" in test.note
    assert test.diff == pytest.approx(-0.0025) and test.low < 0 < test.high
    # Identical results stay a paired zero.
    assert noise_test({0: 0.2, 1: 0.3}, {0: 0.2, 1: 0.3}).test == "paired t"


def test_unmatched_seeds_fall_back_to_welchs_interval():
    test = noise_test({0: 0.90, 1: 0.92, 2: 0.91}, {3: 0.80, 4: 0.81})
    assert test.test == "Welch t" and test.verdict == BETTER and "unpaired" in test.note
    a, b = np.array([0.90, 0.92, 0.91]), np.array([0.80, 0.81])
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 2
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 1)
    half = t_quantile_975(df) * math.sqrt(va + vb)
    assert (test.low, test.high) == pytest.approx((a.mean() - b.mean() - half, a.mean() - b.mean() + half))


def test_the_t_table_is_within_half_a_percent_of_the_exact_quantile():
    stats = pytest.importorskip("scipy.stats")  # scipy comes with scikit-learn; the core does not use it
    for df in [*np.linspace(1, 10, 37), *range(11, 200, 7), 500, 10_000]:
        exact = stats.t.ppf(0.975, df)
        assert t_quantile_975(float(df)) == pytest.approx(exact, rel=5e-3), df
    assert t_quantile_975(2) == 4.3027 and t_quantile_975(math.inf) == 1.96
    with pytest.raises(ValueError, match="at least 1"):
        t_quantile_975(0.5)


def test_ties_share_a_rank_marked_with_an_equals_sign():
    # Row 0 beats rows 2 and 3; row 1 beats row 3; nothing separates 0 from 1 or 1 from 2.
    better = np.zeros((4, 4), dtype=bool)
    better[0, 2] = better[0, 3] = better[1, 3] = True
    assert noise_ranks(better) == ["=1", "=1", "2", "3"]
    assert noise_ranks(np.zeros((3, 3), dtype=bool)) == ["=1", "=1", "=1"]
    assert noise_ranks([[False]]) == ["1"]
    with pytest.raises(ValueError, match="square"):
        noise_ranks(np.zeros((2, 3)))


def test_verdict_text_shows_the_interval_or_why_there_is_none():
    assert verdict_text(BETTER, 1.2, 0.3, 2.1, digits=2) == "better: +1.20 [+0.30, +2.10]"
    assert verdict_text(WITHIN_NOISE, 0.0, 0.0, 0.0, note=REFERENCE_NOTE) == "reference"
    assert verdict_text(WITHIN_NOISE, 0.4, math.nan, math.nan, note=ONE_SEED_NOTE) == "within noise (one seed: no test)"


# --- the results table ----------------------------------------------------------------------------------

def table_of(store: Store, ids: list[int]):
    summaries = run_summaries(store, ids)
    return with_delta_m(summaries, baseline_metrics(store, summaries))


def test_the_table_tests_every_row_against_equal_weighting_and_ranks_with_ties(tmp_path):
    store = Store(tmp_path / "mtl.db")
    summaries = table_of(store, three_seed_grid(store))
    table = results_table(summaries)
    rows = {(row["method"], row["arch"]): row for row in table.to_dict("records")}
    assert set(table["reference"]) == {"ew"} and set(table["reference_arch"]) == {"hps"}
    pcgrad, ew, mgda = rows[("pcgrad", "hps")], rows[("ew", "hps")], rows[("mgda", "hps")]
    assert pcgrad["left verdict"] == pcgrad["right verdict"] == pcgrad["verdict"] == BETTER
    assert pcgrad["left diff"] == pytest.approx(0.03) and pcgrad["left low"] > 0
    assert pcgrad["delta_m low"] > 0 and pcgrad["test"] == "paired t, 3 seeds, 95%"
    # The delta-m difference is the mean of the per-seed differences of delta-m.
    per_seed = summaries[~summaries["baseline"]].pivot_table(index="seed", columns="method", values="delta_m", aggfunc="mean")
    assert pcgrad["delta_m diff"] == pytest.approx((per_seed["pcgrad"] - per_seed["ew"]).mean())
    assert mgda["left verdict"] == mgda["right verdict"] == mgda["verdict"] == WITHIN_NOISE
    assert mgda["delta_m low"] < 0 < mgda["delta_m high"]
    assert ew["note"] == REFERENCE_NOTE and ew["verdict"] == WITHIN_NOISE and ew["delta_m diff"] == 0
    assert all(v in VERDICTS for v in table["verdict"])
    # pcgrad beats everything; ew and mgda are within noise of each other: they share rank 2.
    assert table["method"].tolist()[0] == "pcgrad" and pcgrad["rank"] == "1"
    assert ew["rank"] == mgda["rank"] == "=2"
    text = format_table(table, summaries[~summaries["baseline"]])
    assert "Δm vs ew·hps (95% CI)" in text and "=2" in text and "reference" in text
    assert "better: +" in text


def test_one_seed_tables_say_no_test(tmp_path):
    store = Store(tmp_path / "mtl.db")
    ids = [stored_run(store, RunConfig.parse({**SETUP, "method": m}), {"left": left, "right": 0.5})
           for m, left in (("ew", 0.5), ("pcgrad", 0.9))]
    table = results_table(table_of(store, ids))
    pcgrad = table[table["method"] == "pcgrad"].iloc[0]
    assert pcgrad["left verdict"] == WITHIN_NOISE and pcgrad["verdict"] == WITHIN_NOISE
    assert "no test" in pcgrad["note"]  # no STL baselines, so no delta-m either
    assert set(table["rank"]) == {"=1"}  # nothing tells them apart


def test_without_equal_weighting_the_first_method_is_the_reference(tmp_path):
    store = Store(tmp_path / "mtl.db")
    ids = [stored_run(store, RunConfig.parse({**SETUP, "method": m, "arch": a, "seed": s}),
                      {"left": 0.5, "right": 0.5})
           for s in (0, 1) for a in ("hps", "mmoe") for m in ("pcgrad", "mgda")]
    table = results_table(table_of(store, ids))
    assert set(table["reference"]) == {"pcgrad"}
    # Each architecture's rows are tested against the reference on that architecture.
    assert (table["reference_arch"] == table["arch"]).all()
    assert [table["method"].iloc[r] for r in reference_rows(table)] == ["pcgrad"] * 4


def test_live_runs_are_the_queued_and_running_ones(tmp_path):
    store = Store(tmp_path / "mtl.db")
    done = stored_run(store, RunConfig.parse(SETUP), {"left": 0.5, "right": 0.5})
    running = stored_run(store, RunConfig.parse(SETUP), {"left": 0.5, "right": 0.5}, status="running")
    queued = store.create_run(RunConfig.parse(SETUP))
    assert live_runs(store, [done, running, queued, 999]) == [running, queued]


# --- the figures --------------------------------------------------------------------------------------

def test_the_displayed_table_shows_names_verdicts_and_tied_ranks(tmp_path):
    store = Store(tmp_path / "mtl.db")
    table = results_table(table_of(store, three_seed_grid(store)))
    shown = compare_viz.display_table(table, SUITES["multidigits"], ["left", "right"])
    assert shown["Rank"].tolist()[:1] == ["1"] and shown["Rank"].tolist().count("=2") == 2
    assert set(shown["Architecture"]) == {"Hard parameter sharing", "Single-task baselines"}
    verdicts = dict(zip(shown["Method"], shown["Δm vs Equal weighting (95% interval)"], strict=True))
    assert verdicts["PCGrad"].startswith("better: +") and verdicts["Equal weighting"] == "reference"
    assert verdicts["MGDA"].startswith("within noise: ")
    assert dict(zip(shown["Method"], shown["left vs Equal weighting"], strict=True))["PCGrad"].startswith("better")


def test_final_values_are_points_with_error_bars_on_a_zoomed_axis_in_method_colours(tmp_path):
    store = Store(tmp_path / "mtl.db")
    table = results_table(table_of(store, three_seed_grid(store)))
    charts = compare_viz.final_value_charts(table, SUITES["multidigits"], ["left", "right"])
    specs = [chart.to_dict() for chart in charts]
    assert [s["title"] for s in specs] == [
        "left: final accuracy, mean ± std over seeds", "right: final accuracy, mean ± std over seeds",
        "Δm %: mean ± std over seeds", "Δm % minus Equal weighting's: 95% interval"]
    left = specs[0]
    marks = [layer["mark"]["type"] for layer in left["layer"]]
    assert marks == ["rule", "rule", "point"]  # reference line, error bars, points
    domain = left["layer"][1]["encoding"]["x"]["scale"]["domain"]
    assert 0.75 < domain[0] < domain[1] < 1.0 and domain[1] - domain[0] < 0.25  # zoomed, not 0-1
    colour = left["layer"][2]["encoding"]["color"]["scale"]
    colours = dict(zip(colour["domain"], colour["range"], strict=True))
    assert colours["pcgrad"] == compare_viz.viz.method_colors()["pcgrad"]
    assert colours["stl"] == compare_viz.BASELINE_COLOR
    differences = pd_data(specs[-1])
    assert set(differences["label"]) == {"PCGrad", "MGDA", compare_viz.BASELINE_LABEL}  # not the reference
    assert specs[-1]["layer"][0]["encoding"]["x"]["field"] == "x"  # the zero line


def pd_data(spec: dict) -> pd.DataFrame:
    frames = [pd.DataFrame(rows) for rows in spec["datasets"].values()]
    return next(f for f in frames if "label" in f)


def test_band_charts_zoom_to_the_curves_within_the_metrics_bounds():
    bands = pd.DataFrame({"task": ["left"] * 3, "mean": [0.80, 0.85, 0.90], "low": [0.78, 0.84, 0.89],
                          "high": [0.82, 0.86, 0.995]})
    low, high = compare_viz.zoomed_domain(bands, "left", bounds=(0.0, 1.0))
    assert low == pytest.approx(0.78 - 0.2150 * 0.05) and high == 1.0  # padded, clipped at 1
    assert compare_viz.zoomed_domain(bands, "right") is None
    assert compare_viz.metric_bounds(SUITES["multidigits"], "left") == (0.0, 1.0)
    assert compare_viz.metric_bounds(SUITES["digit_attributes"], "ink") is None


# --- the CLI ------------------------------------------------------------------------------------------

TINY = ["--suite", "synthetic", "--param", "suite.train_size=1000", "--steps", "20", "--eval-every", "10",
        "--batch-size", "64", "--probe-every", "0", "--device", "cpu"]


def test_sweep_json_carries_a_verdict_per_row_beside_its_interval(tmp_path, capsys):
    store_path = str(tmp_path / "mtl.db")
    assert main(["sweep", *TINY, "--methods", "pcgrad,ew", "--seeds", "0,1,2", "--workers", "2",
                 "--store", store_path, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    table = result["table"]
    assert {row["method"] for row in table} == {"ew", "pcgrad"}
    for row in table:
        assert row["verdict"] in VERDICTS and row["reference"] == "ew"  # ew, though listed second
        assert row["delta_m low"] <= row["delta_m diff"] <= row["delta_m high"]
        assert row["test"] == "paired t, 3 seeds, 95%" and row["rank"].lstrip("=").isdigit()
        for task in ("y1", "y2"):
            assert row[f"{task} verdict"] in VERDICTS
    keys = list(table[0])
    assert keys.index("verdict") == keys.index("delta_m high") + 1  # beside the interval it came from
    ew = next(row for row in table if row["method"] == "ew")
    assert ew["note"] == REFERENCE_NOTE and ew["verdict"] == WITHIN_NOISE
    # The text table (what `sweep` prints without --json) says the same.
    store = Store(store_path)
    summaries = table_of(store, result["run_ids"])
    out = format_table(results_table(summaries), summaries)
    pcgrad = next(row for row in table if row["method"] == "pcgrad")
    line = next(line for line in out.splitlines() if " pcgrad " in line)
    assert pcgrad["verdict"] in line and f"{pcgrad['delta_m diff']:+.2f}" in line
    assert "reference" in out


def test_the_default_grid_has_three_seeds():
    assert len(DEFAULT_SEEDS) >= 3
