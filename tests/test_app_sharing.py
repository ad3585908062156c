"""The Sharing page in AppTest: every architecture's diagram, their sizes, and a run's learned
sharing replayed step by step."""

from __future__ import annotations

import json
import threading

from streamlit.testing.v1 import AppTest

from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.runs.store import Store
from mtl_core.runs.worker import execute_run

APP = "../app.py"


def sharing_page(view: str = "Architectures") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/sharing.py").run()  # straight there: the Train page would start workers
    if view != "Architectures":
        next(r for r in at.radio if r.key == "sharing.view").set_value(view).run()
    assert not at.exception
    return at


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(element.proto.spec) for element in at.get("vega_lite_chart")]


def trained(store: Store, arch: str, steps: int = 30) -> int:
    """A real run, trained in this process, with a snapshot every 10 steps."""
    config = RunConfig.parse({"suite": "synthetic", "suite_params": {"train_size": 1000}, "arch": arch,
                              "steps": steps, "eval_every": 10, "snapshot_every": 10, "batch_size": 64,
                              "device": "cpu"})
    run_id = store.create_run(config, name=f"{arch} run")
    assert execute_run(store, run_id, stop=threading.Event()).status == "done"
    return run_id


def test_every_architecture_is_drawn_with_its_blocks(mtl_store):
    at = sharing_page()
    for arch in ARCHITECTURES:
        next(s for s in at.selectbox if s.key == "sharing.arch").set_value(arch.key).run()
        assert not at.exception, arch.key
        diagram = chart_specs(at)[0]
        marks = [layer["mark"]["type"] for layer in diagram["layer"]]
        assert marks == ["line", "rect", "text"], arch.key
        assert any(arch.summary in c.value for c in at.caption), arch.key
        if arch.extra.get("simplified"):
            assert any(arch.extra["simplified"] in i.value for i in at.info), arch.key


def test_sizes_and_forward_times_are_measured_on_request(mtl_store):
    at = sharing_page()
    assert not at.dataframe  # nothing heavy until asked
    next(b for b in at.button if b.key == "sharing.measure").click().run()
    table = at.dataframe[0].value
    assert list(table["Architecture"]) == [a.name for a in ARCHITECTURES]
    assert (table["Shared parameters"] + table["Task parameters"] > 0).all()
    assert table.loc[table["Architecture"] == ARCHITECTURES["stl"].name, "Shared parameters"].item() == 0
    assert (table["Forward (ms)"] > 0).all()
    assert table.loc[table["Architecture"] == ARCHITECTURES["hps"].name, "x hard sharing"].item() == 1.0


def test_an_mmoe_runs_gates_replay_step_by_step(mtl_store):
    store = Store(mtl_store)
    run_id = trained(store, "mmoe")
    at = sharing_page("What a run learned")
    assert next(s for s in at.selectbox if s.key == "sharing.run").value == run_id
    slider = next(s for s in at.select_slider if s.key == f"sharing.step.{run_id}")
    assert slider.value == 30 and list(slider.options) == ["1", "10", "20", "30"]
    titles = [spec.get("title") for spec in chart_specs(at)]
    assert "MMoE gate" in titles and "MMoE expert load" in titles
    # each heatmap says what a cell means
    assert any("each row sums to 1" in c.value for c in at.caption)
    slider.set_value(1).run()
    assert not at.exception
    assert any("Step 1 of 30" in c.value for c in at.caption)


def test_runs_without_learned_sharing_are_not_offered(mtl_store):
    trained(Store(mtl_store), "hps", steps=10)
    at = sharing_page("What a run learned")
    assert any("No run has learned sharing yet" in i.value for i in at.info)
