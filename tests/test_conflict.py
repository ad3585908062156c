"""Conflict statistics: per-layer cosines on probe steps (trainer -> store), the summaries of stored
runs on hand-made frames, their figures, and the conflict section in AppTest."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from mtl_core.config import RunConfig
from mtl_core.engine import conflict
from mtl_core.engine.jacobian import cosine_matrix
from mtl_core.engine.trainer import Trainer
from mtl_core.figures import lab as lab_viz
from mtl_core.runs.store import Store
from mtl_core.runs.worker import execute_run


def tiny(**changes) -> RunConfig:
    base = {"suite": "synthetic", "suite_params": {"train_size": 1000}, "steps": 12, "eval_every": 6,
            "probe_every": 4, "batch_size": 64, "device": "cpu"}
    return RunConfig.parse({**base, **changes})


def test_layer_groups_follow_the_flat_jacobian_and_join_weight_and_bias():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    groups = conflict.layer_groups(net.named_parameters(), list(net.parameters()))
    assert groups == [("0", [(0, 16)]), ("2", [(16, 26)])]


def test_layer_cosines_are_the_cosines_on_each_layers_columns():
    rng = torch.Generator().manual_seed(0)
    jacobian = torch.randn(3, 26, generator=rng, dtype=torch.float64)
    jacobian[1, 16:] = -jacobian[0, 16:]  # opposite on the second layer: cosine -1 there
    groups = [("0", [(0, 16)]), ("2", [(16, 26)])]
    result = conflict.layer_cosines(jacobian, groups, ["a", "b", "c"])
    assert list(result) == ["0", "2"] and list(result["0"]) == ["a · b", "a · c", "b · c"]
    expected = cosine_matrix(jacobian[:, :16])
    assert result["0"]["a · c"] == pytest.approx(expected[0, 2].item(), abs=1e-12)
    assert result["2"]["a · b"] == pytest.approx(-1.0, abs=1e-12)
    # One group over all columns is the whole-network cosine.
    whole = conflict.layer_cosines(jacobian, [("all", [(0, 10), (10, 26)])], ["a", "b", "c"])
    assert whole["all"]["b · c"] == pytest.approx(cosine_matrix(jacobian)[1, 2].item(), abs=1e-12)


def test_trainer_records_per_layer_cosines_on_probe_steps_and_the_store_keeps_them(tmp_path):
    config = tiny()
    records = list(Trainer(config).run())
    probed = [r for r in records if r.cosine is not None]
    assert [r.step for r in probed] == [1, 4, 8, 12]
    assert all(r.layer_cosine for r in probed) and all(r.layer_cosine is None for r in records if r.cosine is None)
    first = probed[0]
    pair = f"{config.tasks[0]} · {config.tasks[1]}"
    assert all(-1.0 <= pairs[pair] <= 1.0 for pairs in first.layer_cosine.values())

    store = Store(tmp_path / "mtl.db")
    run_id = store.create_run(config)
    store.append(run_id, records)
    layers = conflict.layer_frame(store.scalars(run_id, split=conflict.LAYER_SPLIT))
    assert sorted(layers["step"].unique()) == [1, 4, 8, 12]
    assert list(dict.fromkeys(layers["layer"])) == list(first.layer_cosine)
    row = layers[(layers.step == 1) & (layers.pair == pair)].iloc[0]
    assert row["value"] == pytest.approx(first.layer_cosine[row["layer"]][pair])
    # The per-layer rows do not leak into the training curves' split.
    assert set(store.scalars(run_id, split="train")["metric"]) >= {"loss", "grad_norm"}
    assert conflict.LAYER_SPLIT not in set(store.scalars(run_id, split="train")["split"])


def pairs_frame() -> pd.DataFrame:
    return pd.DataFrame({"step": [1, 2, 3, 4, 1, 2, 3, 4], "pair": ["a · b"] * 4 + ["a · c"] * 4,
                         "value": [-0.5, 0.2, -0.1, 0.4, 0.3, 0.3, 0.3, -0.9]})


def test_conflict_share_counts_negative_cosines():
    table = conflict.conflict_share(pairs_frame()).set_index("pair")
    assert table.loc["a · b", "conflicts"] == 2 and table.loc["a · b", "share"] == pytest.approx(0.5)
    assert table.loc["a · c", "share"] == pytest.approx(0.25)
    assert table.loc["a · c", "mean_cosine"] == pytest.approx(0.0)
    assert conflict.conflict_share(pairs_frame().iloc[0:0]).empty


def test_norm_ratios_and_dominance():
    scalars = pd.DataFrame({"step": [5, 5, 10, 10], "split": "train", "task": ["a", "b", "a", "b"],
                            "metric": "grad_norm", "value": [1.0, 4.0, 3.0, 1.0]})
    norms = conflict.norm_ratios(scalars)
    assert norms.loc[norms.step == 5, "ratio"].tolist() == [4.0, 4.0]
    assert norms.loc[norms.step == 10, "ratio"].tolist() == [3.0, 3.0]
    assert norms.loc[(norms.step == 5) & (norms.task == "b"), "share"].item() == pytest.approx(0.8)
    table = conflict.dominance(norms).set_index("task")
    assert table.loc["a", "dominant_share"] == 0.5 and table.loc["b", "dominant_share"] == 0.5
    assert table.loc["a", "mean_share"] == pytest.approx((0.2 + 0.75) / 2)
    zero = conflict.norm_ratios(scalars.assign(value=[0.0, 1.0, 1.0, 1.0]))
    assert np.isinf(zero.loc[zero.step == 5, "ratio"]).all()


def test_layer_summary_keeps_the_networks_order():
    layers = pd.DataFrame({"step": [1, 1, 2, 2], "layer": ["enc.2", "enc.0", "enc.2", "enc.0"],
                           "pair": "a · b", "value": [-0.4, 0.6, -0.2, 0.8]})
    summary = conflict.layer_summary(layers)
    assert summary["layer"].tolist() == ["enc.2", "enc.0"]
    assert summary["mean_cosine"].tolist() == pytest.approx([-0.3, 0.7])
    assert summary["conflict_share"].tolist() == [1.0, 0.0]


def test_conflict_figures_have_titled_axes_and_pinned_scales():
    colors = {"#1 a": "#0072B2", "#2 b": "#E69F00"}
    shares = pd.concat([conflict.conflict_share(pairs_frame()).assign(run=r) for r in colors])
    spec = lab_viz.conflict_share_chart(shares, colors).to_dict()
    assert spec["encoding"]["x"]["scale"]["domain"] == [0, 1] and "%" in spec["encoding"]["x"]["title"]
    assert spec["encoding"]["color"]["scale"]["range"] == list(colors.values())
    norms = conflict.norm_ratios(pd.DataFrame({"step": [5, 5], "split": "train", "task": ["a", "b"],
                                               "metric": "grad_norm", "value": [1.0, 4.0]})).assign(run="#1 a")
    spec = lab_viz.norm_ratio_chart(norms, colors).to_dict()
    assert spec["encoding"]["y"]["scale"]["type"] == "log" and spec["encoding"]["y"]["title"]
    assert lab_viz.norm_share_chart(norms, {"a": "#0072B2", "b": "#E69F00"}).to_dict()["encoding"]["y"]["stack"] \
        == "normalize"
    layers = pd.DataFrame({"step": [1, 2], "layer": ["enc.0", "enc.0"], "pair": "a · b", "value": [-0.4, 0.6]})
    heat = lab_viz.layer_heatmap(conflict.layer_summary(layers)).to_dict()
    assert heat["layer"][0]["encoding"]["color"]["scale"]["domain"] == [-1, 1]
    assert heat["layer"][0]["encoding"]["y"]["title"] == "shared layer"
    history = lab_viz.layer_history_heatmap(layers, "a · b").to_dict()
    assert history["encoding"]["x"]["title"].startswith("training step")
    pairs = pairs_frame().assign(run="#1 a")
    assert lab_viz.cosine_runs_chart(pairs, colors).to_dict()["spec"]["layer"][0]["encoding"]["y"]["scale"]["domain"] \
        == [-1, 1]


def section_script(store_path: str, run_ids: list[int], include_basics: bool) -> None:
    from mtl_core.runs.store import Store
    from pages._conflicts import conflict_section

    conflict_section(Store(store_path), run_ids, include_basics=include_basics)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    path = tmp_path_factory.mktemp("conflicts") / "mtl.db"
    store = Store(path)
    ids = []
    for method in ("ew", "pcgrad"):
        config = tiny(method=method, steps=16, probe_every=2)
        run_id = store.create_run(config, name=method)
        assert execute_run(store, run_id, stop=threading.Event()).status == "done"
        ids.append(run_id)
    return str(path), ids


def specs(at: AppTest) -> list[dict]:
    return [json.loads(element.proto.spec) for element in at.get("vega_lite_chart")]


def test_conflict_section_for_compare_draws_every_view(two_runs):
    path, ids = two_runs
    at = AppTest.from_function(section_script, args=(path, ids, True), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [s.get("title") if isinstance(s.get("title"), str) else (s.get("title") or {}).get("text")
              for s in specs(at)]
    assert "Gradient cosine over training" in titles and "How often each pair's gradients conflict" in titles
    assert "Gradient-norm ratio: does one task dominate?" in titles
    assert "How directly each run's update descends each task" in titles
    assert "Conflict by shared layer (mean cosine)" in titles
    share = next(s for s in specs(at) if s.get("title") == "How often each pair's gradients conflict")
    assert share["encoding"]["color"]["scale"]["domain"] == [f"#{ids[0]} ew", f"#{ids[1]} pcgrad"]
    assert [sb.label for sb in at.selectbox] == ["Per-layer view of run", "Pair over time"]
    at.selectbox[0].set_value(f"#{ids[1]} pcgrad").run()
    assert not at.exception


def test_conflict_section_on_train_leaves_out_what_train_draws(two_runs):
    path, ids = two_runs
    at = AppTest.from_function(section_script, args=(path, ids[:1], False), default_timeout=60).run()
    assert not at.exception
    titles = [s.get("title") for s in specs(at)]
    assert "Gradient cosine over training" not in titles
    assert "How directly each run's update descends each task" not in titles
    assert "Each task's share of the gradient norm" in titles


def test_conflict_section_says_when_nothing_was_probed(tmp_path):
    store = Store(tmp_path / "mtl.db")
    run_id = store.create_run(tiny(probe_every=0, steps=4))
    at = AppTest.from_function(section_script, args=(str(tmp_path / "mtl.db"), [run_id], True)).run()
    assert not at.exception and "probe" in at.info[0].value


def test_norm_ratio_chart_takes_runs_without_probes_beside_runs_with_them():
    # A single-task baseline has no probes: its empty frame is object-typed, and concatenating it
    # with a real run's made the ratio column object-typed too (np.isfinite raised on it).
    real = conflict.norm_ratios(pd.DataFrame({"step": [5, 5], "split": "train", "task": ["a", "b"],
                                              "metric": "grad_norm", "value": [1.0, 4.0]})).assign(run="#1 a")
    empty = conflict.norm_ratios(pd.DataFrame(columns=["step", "split", "task", "metric", "value"])).assign(run="#2 b")
    norms = pd.concat([real, empty], ignore_index=True)
    assert norms["ratio"].dtype == object
    spec = lab_viz.norm_ratio_chart(norms, {"#1 a": "#0072B2", "#2 b": "#E69F00"}).to_dict()
    values = next(iter(spec["datasets"].values()))
    assert [row["ratio"] for row in values] == [4.0]
