"""The Home page's "Start here" tour in a real headless Chromium: each of its six buttons opens
the right page with the right set-up (Train with the step's method, Compare with a grid of three
methods for step 4, the Sharing page on MMoE for step 5). Prints one line per step; saves a screenshot after each step to
test-artifacts/tour_step_<n>.png.

AppTest checks the same buttons without a browser (tests/test_app_home.py); this one clicks them
as a person would, in one browser session, going back to Home through the sidebar between steps.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from benchmarks.served_app import CHROMIUM, ROOT, chromium_page
from mtl_core.architectures import ARCHITECTURES
from mtl_core.config import RunConfig
from mtl_core.methods import METHODS
from mtl_core.runs.store import Store
from mtl_core.runs.sweep import Grid

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
DRAWN = ".vega-embed svg, .vega-embed canvas"  # any vega chart that has rendered

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api")

# (button title, the page's path, its heading, the method the step sets up, its suite and tasks)
DIGITS = ("multidigits", ("left", "right"))
PENGUINS = ("penguins", ("species", "sex", "body_mass", "flipper_length"))
STEPS = (
    ("Train a first run", "/train", "Train", "ew", None),
    ("See conflict", "/train", "Train", "ew", DIGITS),
    ("Switch method", "/train", "Train", "pcgrad", DIGITS),
    ("Compare", "/compare", "Compare", None, None),
    ("See sharing", "/sharing", "Sharing", None, None),
    ("Balance real losses", "/train", "Train", "uw", PENGUINS),
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

    with chromium_page(1600, 1150) as page:
        page.goto(url)  # "/" is Home, the default page
        main(page).get_by_role("heading", name="Multi-task learning, hands on").wait_for(timeout=30_000)
        main(page).get_by_text("Start here", exact=True).wait_for(timeout=15_000)
        for number, (title, path, heading, method, data) in enumerate(STEPS, start=1):
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
                if data is not None:
                    assert (config.suite, config.tasks) == data, page.url
                if data == DIGITS:
                    assert config.probe_every == 5
                line = f"step {number} ({title}): /train, method={config.method} (selectbox "\
                       f"'{shown}'), suite={config.suite}, tasks={','.join(config.tasks)}, "\
                       f"steps={config.steps}, probe_every={config.probe_every}"
                assert "run" not in query(page)
            elif path == "/compare":
                grid = Grid.from_query(query(page))
                assert grid.methods == ("ew", "pcgrad", "cagrad") and grid.seeds == (0, 1)
                launch = main(page).get_by_role("button", name=re.compile(r"^Launch \d+ runs"))
                launch.wait_for(timeout=20_000)
                new_runs = set(store.list_runs()["id"]) - runs_before if len(store.list_runs()) else set()
                assert not new_runs  # nothing trains before Launch
                line = f"step {number} ({title}): /compare, grid methods={','.join(grid.methods)}, " \
                       f"seeds={','.join(map(str, grid.seeds))}, button '{launch.inner_text()}'"
            else:
                shown = selectbox_value(page, "Architecture")
                assert shown == ARCHITECTURES["mmoe"].name, shown
                page.locator(DRAWN).first.wait_for(timeout=20_000)
                line = f"step {number} ({title}): /sharing, architecture selectbox '{shown}', diagram drawn"
            shot = screenshot(page, number)
            seen.append(line)
            print(("\n" if number == 1 else "") + line + f" -> {shot.relative_to(ROOT)}")

    assert len(seen) == len(STEPS)
