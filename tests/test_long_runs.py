"""Long runs on the pages (issue 16): a 200,000-step run with a probe at every step opens on Train
and Compare with bounded charts, a 5,200-step run's pages raise nothing, and what a page holds of
a live run stays bounded however many polls it makes."""

from __future__ import annotations

import os
import time

import pytest
import streamlit as st
from long_run_support import write_long_run
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from mtl_core.engine.downsample import POINTS_PER_SERIES
from mtl_core.runs.store import Store
from mtl_core.runs.view import RunView

APP = "../app.py"
TASKS = ("digit", "parity")
OPEN_BOUND_S = 30.0  # generous (a shared 2-core CI box): the target is 2 s on an idle machine; the figure is printed


@pytest.fixture(scope="module")
def long_store(tmp_path_factory):
    """A store with a finished 200,000-step run (probes every step) and a 20,000-step one."""
    path = tmp_path_factory.mktemp("long") / "mtl.db"
    store = Store(path)
    long_id = write_long_run(store, steps=200_000, tasks=TASKS, spike_at=123_457, layers=("encoder.0",))
    other_id = write_long_run(store, steps=20_000, tasks=TASKS, method="mgda", seed=1, layers=("encoder.0",))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTL_STORE", str(path))
        st.cache_resource.clear()
        yield store, long_id, other_id
        st.cache_resource.clear()


def chart_rows(at: AppTest) -> list[int]:
    """The number of rows of each data set of each vega-lite chart on the page."""
    return [len(convert_arrow_bytes_to_pandas_df(dataset.data.data))
            for element in at.get("vega_lite_chart") for dataset in element.proto.datasets]


def opened(query: dict[str, str], page: str) -> tuple[AppTest, float]:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(page)
    began = time.perf_counter()
    at.run()
    return at, time.perf_counter() - began


def test_a_200000_step_run_opens_on_train_with_bounded_charts(long_store):
    _, long_id, other_id = long_store
    # Warm the imports (a served app has them): the figure is the page's own time for the long run.
    opened({"run": str(other_id)}, "pages/train.py")
    at, seconds = opened({"run": str(long_id)}, "pages/train.py")
    print(f"\nTrain, 200,000-step run: {seconds:.2f} s (load average {os.getloadavg()[0]:.2f})")
    assert not at.exception, at.exception
    rows = chart_rows(at)
    assert len(rows) >= 5
    assert max(rows) <= POINTS_PER_SERIES * 4  # at most a few series of POINTS_PER_SERIES each
    assert seconds < OPEN_BOUND_S
    view = at.session_state["records"]
    assert view.step == 200_000 and view.final_metrics()["digit"]["accuracy"] == pytest.approx(0.99)
    assert view.held_rows < 20 * POINTS_PER_SERIES


def test_a_200000_step_run_opens_on_compare_with_bounded_charts(long_store):
    _, long_id, other_id = long_store
    at, seconds = opened({"runs": f"{long_id},{other_id}"}, "pages/compare.py")
    print(f"\nCompare, 200,000 + 20,000-step runs: {seconds:.2f} s (load average {os.getloadavg()[0]:.2f})")
    assert not at.exception, at.exception
    rows = chart_rows(at)
    assert rows and max(rows) <= POINTS_PER_SERIES * 4
    assert seconds < OPEN_BOUND_S


def test_a_5200_step_run_with_probes_every_step_opens_without_an_exception(mtl_store):
    store = Store(mtl_store)
    run_id = write_long_run(store, steps=5_200, tasks=("digit", "parity", "large"), eval_every=1)
    other = write_long_run(store, steps=5_200, tasks=("digit", "parity", "large"), method="mgda", eval_every=1)
    for query, page in (({"run": str(run_id)}, "pages/train.py"), ({"runs": f"{run_id},{other}"}, "pages/compare.py")):
        at, _ = opened(query, page)
        assert not at.exception, at.exception
        assert max(chart_rows(at)) <= POINTS_PER_SERIES * 6


def test_a_live_views_held_rows_stay_bounded_over_many_polls(tmp_path):
    store = Store(tmp_path / "mtl.db")
    run_id = write_long_run(store, steps=10, tasks=TASKS, layers=())
    view = RunView.read(store, run_id, points=100)
    held = []
    for begin in range(11, 3_011, 100):  # 30 polls, 100 new steps each, with a spike at 2,001
        conn = store._conn()
        rows = [(run_id, step, "train", task, "loss", 1e3 if step == 2_001 else 1.0 / step)
                for step in range(begin, begin + 100) for task in TASKS]
        with store._transaction() as tx:
            tx.executemany("INSERT INTO scalars (run, step, split, task, metric, value) VALUES (?, ?, ?, ?, ?, ?)", rows)
        view = RunView.read(store, run_id, previous=view, points=100)
        held.append(view.held_rows)
        del conn
    losses = view.losses
    assert max(held) <= 2 * 100 * 12  # each of the ~12 series at most twice the budget
    assert losses.groupby("task").size().max() <= 200
    assert losses["value"].max() == 1e3 and losses["step"].max() == 3_010
