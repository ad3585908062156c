"""The Compare page with a finished grid in a real headless Chromium: the band charts, the results
table and the Pareto plot render; a broken config upload is one message; a valid upload changes the
set-up in the URL. Saves test-artifacts/compare_grid.png (the whole page) and
test-artifacts/compare_upload_error.png.

AppTest checks the numbers (tests/test_app_compare.py); this checks what a person sees.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from benchmarks.served_app import CHROMIUM, ROOT, chromium_page
from mtl_core.config import RunConfig
from mtl_core.runs.baselines import missing_baselines
from mtl_core.runs.store import Store
from mtl_core.runs.sweep import make_grid
from tests.compare_support import SETUP, stored_run

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
BAND = ".vega-embed g.mark-area path"  # a mean +/- std band vega has drawn
PLOTLY_POINTS = ".js-plotly-plot .scatterlayer .point"

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api")


def test_compare_page_with_a_finished_grid(served, tmp_path):
    url, store_path = served
    # Stored records, not trained ones: this test is about what the page draws (the numbers are
    # AppTest's, tests/test_app_compare.py), and training 8 runs took 50 s of CI.
    store = Store(store_path)
    configs = make_grid(RunConfig.parse(SETUP), "ew,pcgrad,mgda", "hps", "0,1").configs()
    ids = [stored_run(store, config, {"left": 0.80 + 0.013 * number, "right": 0.78 - 0.011 * number})
           for number, config in enumerate([*missing_baselines(store, configs), *configs])]
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(1500, 1100) as page:
        started = time.monotonic()
        page.goto(f"{url}/compare?runs={','.join(map(str, ids))}")
        page.wait_for_selector(BAND, timeout=60_000)
        page.wait_for_selector(PLOTLY_POINTS, timeout=60_000)
        print(f"compare page drawn in {time.monotonic() - started:.1f} s")
        main = page.get_by_test_id("stMainBlockContainer")
        assert main.get_by_text("Hypervolume", exact=True).is_visible()
        assert page.locator(".vega-embed:has(g.mark-area)").count() == 2  # a band chart per task
        # 8 runs in the Pareto plot (6 of the grid, 2 baselines) and the reference point.
        pareto = page.locator(".js-plotly-plot").first
        assert pareto.locator(".scatterlayer .point").count() == len(ids) + 1
        query = parse_qs(urlparse(page.url).query)
        assert query["runs"] == [",".join(map(str, ids))]
        assert query["grid.methods"] == ["ew,pcgrad,mgda"]
        # Streamlit scrolls inside its own container: a tall window shows the whole page.
        page.set_viewport_size({"width": 1500, "height": 3000})
        page.wait_for_timeout(1000)  # let the charts re-layout
        page.screenshot(path=str(ARTIFACTS / "compare_grid.png"))
        page.set_viewport_size({"width": 1500, "height": 1100})
        page.get_by_text("What to compare").click()

        # A broken upload: one message, and the set-up is unchanged.
        main.get_by_text("Share this set-up").click()
        broken = tmp_path / "broken.json"
        broken.write_text('{"lr": "fast", "suite": "multidigits"')
        page.locator("input[type=file]").first.set_input_files(str(broken))
        error = main.get_by_text("broken.json was not used")
        error.wait_for(timeout=20_000)
        assert "not valid JSON" in error.inner_text()
        error.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "compare_upload_error.png"))
        assert parse_qs(urlparse(page.url).query)["steps"] == [str(SETUP["steps"])]

        # A valid upload replaces the set-up: the URL follows.
        good = tmp_path / "good.json"
        good.write_text(RunConfig.parse({**SETUP, "steps": 33, "lr": 0.01}).to_json())
        page.locator("input[type=file]").first.set_input_files(str(good))
        page.wait_for_function("() => new URLSearchParams(location.search).get('steps') === '33'",
                               timeout=20_000)
        assert parse_qs(urlparse(page.url).query)["lr"] == ["0.01"]


def test_a_grid_launched_in_the_browser_fills_in_live(served):
    """Launch from the page: the status table and curves update by themselves (the fragment's
    polling) until every run is done, then the Pareto plot appears, all without a reload."""
    url, store_path = served
    grid = make_grid(RunConfig.parse({**SETUP, "seed": 5}), "ew,pcgrad", "hps", "5")
    with chromium_page(1500, 1100) as page:
        query = "&".join(f"{key}={value}" for key, value in grid.to_query().items())
        page.goto(f"{url}/compare?{query}")
        main = page.get_by_test_id("stMainBlockContainer")
        launch = main.get_by_role("button", name="Launch 2 runs + 1 STL baselines")
        launch.wait_for(timeout=30_000)
        started = time.monotonic()
        launch.click()
        main.get_by_text(" of 3 finished", exact=False).first.wait_for(timeout=30_000)
        seen = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            text = main.get_by_text(" of 3 finished", exact=False).first.inner_text()
            seen.add(text.split(" of ")[0])
            if text.startswith("3 of 3"):
                break
            page.wait_for_timeout(300)
        assert "3" in seen and len(seen) >= 2, seen  # it counted up without a reload
        page.wait_for_selector(PLOTLY_POINTS, timeout=60_000)
        print(f"grid of 3 launched, trained and compared in {time.monotonic() - started:.1f} s; "
              f"counts seen: {sorted(seen)}")
        store = Store(store_path)
        ids = [int(i) for i in parse_qs(urlparse(page.url).query)["runs"][0].split(",")]
        assert {store.get_run(i).status for i in ids} == {"done"}
        page.screenshot(path=str(ARTIFACTS / "compare_live_done.png"))
