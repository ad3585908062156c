"""The Task affinity page in a real headless Chromium: a stored TAG run on the digit attributes'
six tasks and its pairwise-transfer study are drawn (three heatmaps with task-coloured labels and
the network view), and "Train this grouping" starts one run per group through the served app's job
manager. Saves a screenshot to test-artifacts/affinity_page.png.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from benchmarks.served_app import CHROMIUM, ROOT, chromium_page
from mtl_core.config import RunConfig
from mtl_core.figures import run as viz
from mtl_core.runs.store import Store
from mtl_core.runs.worker import execute_run, train_here
from mtl_core.studies import affinity, grouping, transfer
from mtl_core.suites import SUITES

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
TASKS = ("digit", "parity", "large", "ink", "centre", "slant")
# Vega has drawn the three heatmaps' cells and the network's edges.
DRAWN_JS = """() => document.querySelectorAll('.vega-embed g.mark-rect path').length >= 3 * 30
    && document.querySelectorAll('.vega-embed g.mark-rule line, .vega-embed g.mark-rule path').length >= 15"""
LABEL_FILL_JS = """task => [...document.querySelectorAll('.vega-embed g.role-axis-label text')]
    .filter(text => text.textContent === task).map(text => text.getAttribute('fill'))"""

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api")


def test_affinity_page_in_chromium(served):
    url, store_path = served
    store = Store(store_path)
    base = RunConfig.parse({"suite": "digit_attributes", "tasks": TASKS, "steps": 40, "eval_every": 20,
                            "probe_every": 10, "affinity_every": 10, "snapshot_every": 0, "device": "cpu"})
    run_id = store.create_run(base)
    assert execute_run(store, run_id, stop=threading.Event()).status == "done"
    transfer.train_transfer_study(store, base, train=lambda config: train_here(store, config))
    assert transfer.transfer_progress(store, base) == (16, 16)
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium_page(1600, 1400) as page:
        page.goto(f"{url}/affinity")
        page.wait_for_function(DRAWN_JS, polling=200, timeout=60_000)
        page.wait_for_timeout(500)  # let the last chart finish laying out
        fills = {task: page.evaluate(LABEL_FILL_JS, task) for task in TASKS}
        page.screenshot(path=str(ARTIFACTS / "affinity_page.png"), full_page=True)
        colors = viz.task_colors(SUITES["digit_attributes"])
        for task in TASKS:  # each task's labels in its colour, on all three heatmaps
            assert len(fills[task]) >= 6 and {fill.lower() for fill in fills[task]} == {colors[task].lower()}
        for title in ("Lookahead affinity (TAG)", "Gradient cosine", "Pairwise transfer"):
            assert page.locator(".vega-embed svg text", has_text=title).count() >= 1, title

        before = set(store.list_runs()["id"])
        page.get_by_role("button", name="Train this grouping").click()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(set(store.list_runs()["id"]) - before) == 0:
            time.sleep(0.2)
        time.sleep(1.0)  # every group's run is submitted in the same script run
        started = [store.get_run(int(i)) for i in set(store.list_runs()["id"]) - before]
        groups = sorted(tuple(info.config.tasks) for info in started)
        best = max(grouping.best_groupings(affinity.run_affinities(store, run_id)["tag"]),
                   key=lambda g: g.score)
        assert groups == sorted(best.groups)
        print(f"\naffinity page: TAG-suggested grouping {best.label} started as {len(groups)} runs")
