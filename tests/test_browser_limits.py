"""A per-session cap as a person meets it in Chromium: a run over the server's step cap is refused
with one readable sentence above the form, nothing is queued, and the page keeps working.
Saves the screenshot to test-artifacts/train_step_cap.png."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import pytest

from benchmarks.served_app import CHROMIUM, CHROMIUM_ARGS, ROOT, served_app
from mtl_core.config import RunConfig
from mtl_core.runs.store import Store

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it",
                allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

MESSAGE = ("Could not start the run: A run here may train at most 1,000 steps (this one asks for "
           "5,000): lower Steps, or run it from a terminal with python -m mtl_core run.")


def test_a_run_over_the_step_cap_is_refused_in_one_visible_sentence(tmp_path):
    config = RunConfig.parse({"suite": "synthetic", "steps": 5000, "device": "cpu"})
    env = {**os.environ, "MTL_MAX_STEPS": "1000"}
    with served_app(tmp_path / "mtl.db", tmp_path / "streamlit.log", env=env) as url, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/train?{urlencode(config.to_query())}")
        main = page.get_by_test_id("stMainBlockContainer")
        main.get_by_role("button", name="Train", exact=True).click()
        alert = main.get_by_test_id("stAlert").filter(has_text="may train at most")
        alert.wait_for(timeout=30_000)
        assert alert.inner_text().strip() == MESSAGE
        assert alert.is_visible() and alert.bounding_box()["y"] < 400  # above the fold, by the button
        assert "run=" not in page.url
        page.mouse.move(5, 5)
        page.wait_for_timeout(800)  # the Train button's tooltip fades
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        page.screenshot(path=ROOT / "test-artifacts" / "train_step_cap.png")
        browser.close()
    assert Store(tmp_path / "mtl.db").run_infos() == []  # nothing was queued
