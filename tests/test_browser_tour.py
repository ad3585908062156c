"""The Home page's "Start here" tour in a real headless Chromium: each of its five buttons opens
the right page with the right set-up (Train with the step's method, a CAGrad run for step 4, the
Sharing page on MMoE for step 5). Prints one line per step; saves a screenshot after each step to
test-artifacts/tour_step_<n>.png.

AppTest checks the same buttons without a browser (tests/test_app_home.py); this one clicks them
as a person would, in one browser session, going back to Home through the sidebar between steps.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from benchmarks.served_app import CHROMIUM, CHROMIUM_ARGS, ROOT
from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.methods import METHODS
from mtl_core.store import Store
from pages._polling import DIAGNOSTICS_POLL_S

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
LINE = ".vega-embed g.mark-line path"  # an altair line that vega has drawn
DRAWN = ".vega-embed svg, .vega-embed canvas"  # any vega chart that has rendered
# The cosine heatmap's caption names a probe after the first: the diagnostics have been redrawn.
LATER_PROBE_JS = """() => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
    .some(caption => /^At step ([2-9]|[1-9][\\d,]+), the latest gradient probe/.test(caption.innerText))"""

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it",
                allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

# (button title, the page's path, its heading, the method the step sets up)
STEPS = (
    ("Train a first run", "/train", "Train", "ew"),
    ("See conflict", "/train", "Train", "ew"),
    ("Switch method", "/train", "Train", "pcgrad"),
    ("Compare", "/train", "Train", "cagrad"),
    ("See sharing", "/sharing", "Sharing", None),
)


def main(page):
    return page.get_by_test_id("stMainBlockContainer")


def selectbox_value(page, label: str) -> str:
    """The shown value of the main area's selectbox with this label (a combobox input)."""
    box = main(page).get_by_role("combobox", name=label, exact=True).first
    box.wait_for(timeout=15_000)
    return box.input_value()


def query(page) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlparse(page.url).query).items()}


def go_home(page, url: str) -> None:
    """Back to Home as a person would (same session): the sidebar's navigation link."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Home").click()
    page.wait_for_url(re.compile(rf"^{re.escape(url)}/?(\?.*)?$"), timeout=15_000)
    main(page).get_by_text("Start here", exact=True).wait_for(timeout=15_000)


def screenshot(page, number: int) -> Path:
    page.mouse.move(5, 5)
    page.get_by_test_id("stMain").evaluate("main => main.scrollTo(0, 0)")
    # Wait until Streamlit has finished the rerun (its status widget shows while a script runs).
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"] button')",
                           timeout=15_000)
    page.wait_for_timeout(500)  # let charts settle after their last data update
    path = ARTIFACTS / f"tour_step_{number}.png"
    page.screenshot(path=path)
    return path


def test_the_home_tour_in_chromium(served):
    url, store_path = served
    store = Store(store_path)
    ARTIFACTS.mkdir(exist_ok=True)
    seen: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1150})
        try:
            page.goto(url)  # "/" is Home, the default page
            main(page).get_by_role("heading", name="Multi-task learning, hands on").wait_for(timeout=30_000)
            main(page).get_by_text("Start here", exact=True).wait_for(timeout=15_000)
            for number, (title, path, heading, method) in enumerate(STEPS, start=1):
                if number > 1:
                    go_home(page, url)
                runs = store.list_runs()
                runs_before = set(runs["id"]) if len(runs) else set()
                main(page).get_by_role("button", name=title, exact=True).click()
                page.wait_for_url(re.compile(rf"{re.escape(url)}{path}(\?|$)"), timeout=20_000)
                main(page).get_by_role("heading", name=heading, exact=True).wait_for(timeout=20_000)

                if path == "/train":
                    config = RunConfig.from_query(query(page))
                    shown = selectbox_value(page, "Method")
                    assert config.method == method, page.url
                    assert shown == METHODS[method].name, shown
                    if number > 1:
                        assert config.suite == "multidigits" and config.probe_every == 5
                        assert config.tasks == ("left", "right")
                    line = f"step {number} ({title}): /train, method={config.method} (selectbox "\
                           f"'{shown}'), suite={config.suite}, tasks={','.join(config.tasks)}, "\
                           f"steps={config.steps}, probe_every={config.probe_every}"
                    if title == "Compare":
                        run_id = int(query(page)["run"])
                        assert run_id not in runs_before
                        run = store.get_run(run_id)
                        assert run.config == config and run.config.method == "cagrad"
                        # the dashboard for the new run: its Steps counter, then its first curve
                        main(page).get_by_test_id("stMetricLabel").get_by_text("Steps", exact=True) \
                            .wait_for(timeout=20_000)
                        try:
                            page.locator(LINE).first.wait_for(timeout=25_000)
                            curve = "curve drawn"
                        except Exception:  # a slow worker start: the screenshot shows what there is
                            curve = "no curve yet"
                        try:  # the diagnostics charts redraw every DIAGNOSTICS_POLL_S
                            page.wait_for_function(LATER_PROBE_JS, timeout=(DIAGNOSTICS_POLL_S + 6) * 1000)
                            curve += ", diagnostics redrawn"
                        except Exception:
                            curve += ", diagnostics not redrawn yet"
                        line += f"; run #{run_id} '{run.name}' is {store.get_run(run_id).status}, {curve}"
                    else:
                        assert "run" not in query(page)
                else:
                    shown = selectbox_value(page, "Architecture")
                    assert shown == ARCHITECTURES["mmoe"].name, shown
                    page.locator(DRAWN).first.wait_for(timeout=20_000)
                    line = f"step {number} ({title}): /sharing, architecture selectbox '{shown}', diagram drawn"
                shot = screenshot(page, number)
                seen.append(line)
                print(("\n" if number == 1 else "") + line + f" -> {shot.relative_to(ROOT)}")
        finally:
            browser.close()

    assert len(seen) == len(STEPS)
