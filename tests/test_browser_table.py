"""Your own table in a real Chromium, as a person does it: choose "Your own table", upload a CSV,
pick two targets, use it, press Train, and see the run's curves. Saves the page before and after
training to test-artifacts/table_upload.png and test-artifacts/table_trained.png."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from benchmarks.served_app import CHROMIUM, ROOT, chromium_page
from mtl_core.runs.store import TERMINAL, Store
from mtl_core.suites import user_tables as tables
from tests.browser_support import settled
from tests.test_app_table import animals_csv

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"
LINE = ".vega-embed g.mark-line path"


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox or multiselect labelled ``label``, once the page has settled:
    a rerun that redraws the widget closes a list opened while it ran, so try again then."""
    wanted = page.get_by_role("option", name=option, exact=True)
    for attempt in range(3):
        settled(page, 20_000)
        page.get_by_test_id("stMainBlockContainer").get_by_label(label, exact=True).click()
        try:
            wanted.click(timeout=8_000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")


def test_a_person_uploads_a_csv_trains_on_it_and_sees_the_curves(served):
    url, store_path = served
    store = Store(store_path)
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(1500, 1100) as page:
        page.goto(f"{url}/train")
        main = page.get_by_test_id("stMainBlockContainer")
        main.get_by_text("Task suite").first.wait_for(timeout=60_000)
        choose(page, "Task suite", "Your own table (upload a CSV)…")
        page.locator("input[type=file][accept*=\".csv\"]").set_input_files(
            files=[{"name": "animals.csv", "mimeType": "text/csv", "buffer": animals_csv()}])
        main.get_by_text("animals.csv", exact=False).first.wait_for(timeout=30_000)
        choose(page, "Targets (a task each)", "kind")
        page.keyboard.press("Escape")
        choose(page, "Targets (a task each)", "mass_kg")
        page.keyboard.press("Escape")
        main.get_by_text("Tasks: ", exact=False).first.wait_for(timeout=30_000)
        page.mouse.move(5, 5)
        page.screenshot(path=ARTIFACTS / "table_upload.png")

        main.get_by_role("button", name="Use this table", exact=True).click()
        train = main.get_by_role("button", name="Train", exact=True)
        page.wait_for_function("() => [...document.querySelectorAll('button')].some(b => "
                               "b.innerText.trim() === 'Train' && !b.disabled)", timeout=30_000)
        assert re.search(r"[?&]suite=table-[0-9a-f]{12}", page.url), page.url
        train.click()
        page.wait_for_url(re.compile(r"[?&]run=\d+"), timeout=30_000)
        run_id = int(re.search(r"[?&]run=(\d+)", page.url).group(1))
        deadline = time.monotonic() + 90
        while store.get_run(run_id).status not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.1)
        info = store.get_run(run_id)
        page.get_by_text("done").first.wait_for(timeout=30_000)
        page.locator(LINE).first.wait_for(timeout=30_000)
        page.mouse.move(5, 5)
        page.get_by_test_id("stMain").evaluate("main => main.scrollTo(0, 0)")
        page.wait_for_timeout(700)
        page.screenshot(path=ARTIFACTS / "table_trained.png")
        curves = page.locator(LINE).count()

    assert info.status == "done" and tables.KEY_PATTERN.fullmatch(info.config.suite)
    assert info.config.tasks == ("kind", "mass_kg")
    assert curves >= 2  # the loss curves (one per task) and the validation metrics
