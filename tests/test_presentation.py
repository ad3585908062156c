"""Presentation mode in AppTest: switched on by the sidebar button or ``?present=1``, kept across
page switches without touching the pages' own query strings, left by the Exit button or
``?present=0``; while on, no sidebar and larger chart text. Then in a real Chromium: the hidden
sidebar and root font size, the keys (Esc, Alt+P, Tab and Enter), a chart's PNG/SVG download, and
every page in the dark theme (screenshots kept under test-artifacts/)."""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from pathlib import Path
from urllib.parse import urlencode

import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.served_app import CHROMIUM, ROOT, chromium_page
from mtl_core.config import RunConfig
from mtl_core.runs.store import Store
from mtl_core.runs.worker import execute_run
from pages._charts import TITLE_LINE, title_lines, wrapped_title
from pages._presentation import (
    CHART_FONTS,
    HEIGHT_SCALE,
    PLOTLY_FONT_SIZE,
    PRESENTING,
    URL_PARAM,
    presented_spec,
)
from tests.browser_support import settled
from tests.test_consistency import NAVIGATION, RUN

APP_TEXT = (ROOT / "app.py").read_text()
# Each page's URL path, in the navigation's order ("" for the default page, Home)
URL_PATHS = [("" if 'default=True' in line else re.search(r'url_path="([^"]+)"', line).group(1))
             for line in APP_TEXT.splitlines() if "st.Page(" in line]

APP = "../app.py"


def app(query: dict[str, str] | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if page:
        at.switch_page(page)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception
    return at


def button(at: AppTest, key: str):
    return next((b for b in at.button if b.key == key), None)


def sidebar_buttons(at: AppTest) -> list[str]:
    return [b.key for b in at.sidebar.button]


def test_off_by_default_with_a_way_in_from_the_sidebar(mtl_store):
    at = app()
    assert PRESENTING not in at.session_state or at.session_state[PRESENTING] is False
    assert sidebar_buttons(at) == ["presentation.enter"]
    assert button(at, "presentation.enter").proto.shortcut  # Alt+P
    assert button(at, "presentation.exit") is None

    button(at, "presentation.enter").click().run()
    assert at.session_state[PRESENTING] is True
    assert sidebar_buttons(at) == []  # the sidebar is empty: Streamlit draws none
    assert button(at, "presentation.exit").proto.shortcut == "escape"


def test_a_link_switches_it_on_and_leaves_the_pages_query_alone(mtl_store):
    config = RunConfig.parse({"suite": "multidigits", "tasks": ["left", "right"], "method": "pcgrad"})
    at = app(config.to_query() | {URL_PARAM: "1"}, page="pages/train.py")
    assert at.session_state[PRESENTING] is True
    assert URL_PARAM not in at.query_params
    # Train read its own settings and found nothing wrong with the link
    assert RunConfig.from_query(dict(at.query_params)) == config
    assert not at.warning
    assert button(at, "presentation.exit") is not None


def test_it_survives_page_switches_and_the_exit_button_ends_it(mtl_store):
    at = app({URL_PARAM: "1"})
    assert at.session_state[PRESENTING] is True
    at.switch_page("pages/methods.py").run()
    assert at.session_state[PRESENTING] is True and button(at, "presentation.exit") is not None
    button(at, "presentation.exit").click().run()
    assert at.session_state[PRESENTING] is False
    assert sidebar_buttons(at) == ["presentation.enter"]


def test_present_0_in_a_link_switches_it_off(mtl_store):
    at = app({URL_PARAM: "1"})
    at.query_params[URL_PARAM] = "0"
    at.run()
    assert at.session_state[PRESENTING] is False
    assert URL_PARAM not in at.query_params


def test_charts_get_larger_text_while_presenting(mtl_store):
    at = app(page="pages/sharing.py")
    (normal,) = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert normal.get("config", {}).get("axis", {}).get("labelFontSize") is None

    at.session_state[PRESENTING] = True
    at.run()
    (large,) = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert large["config"]["axis"]["labelFontSize"] == CHART_FONTS["axis"]["labelFontSize"] >= 14
    assert large["config"]["legend"]["labelFontSize"] >= 14
    assert [layer["encoding"] for layer in large["layer"]] == [layer["encoding"] for layer in normal["layer"]]
    labels = [layer["mark"]["fontSize"] for layer in normal["layer"] if "fontSize" in layer["mark"]]
    larger = [layer["mark"]["fontSize"] for layer in large["layer"] if "fontSize" in layer["mark"]]
    assert labels and all(big >= 1.3 * small for big, small in zip(larger, labels, strict=True))

    at.switch_page("pages/home.py").run()
    (treemap,) = at.get("plotly_chart")
    assert json.loads(treemap.proto.spec)["layout"]["font"]["size"] == PLOTLY_FONT_SIZE


# --- in a real browser ----------------------------------------------------------------------------

BROWSER_READY = Path(CHROMIUM).exists() and importlib.util.find_spec("playwright") is not None
browser_test = pytest.mark.skipif(not BROWSER_READY, reason=f"needs {CHROMIUM} and playwright")
ARTIFACTS = ROOT / "test-artifacts"
# Text vega draws on a chart that has to be read: titles, axis titles and labels, legends.
CHART_TEXT_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const selector = ['role-title-text', 'role-axis-title', 'role-axis-label', 'role-legend-title',
                      'role-legend-label'].map(role => `.vega-embed svg g.${role} text`).join(', ');
    return {background: getComputedStyle(app).backgroundColor,
            fills: [...document.querySelectorAll(selector)]
                .filter(text => text.textContent.trim())
                .map(text => [text.textContent.trim(), getComputedStyle(text).fill])};
}"""


def rgb(css: str) -> tuple[int, int, int]:
    """ "rgb(14, 17, 23)" or "#0e1117" -> (14, 17, 23)."""
    if css.startswith("#"):
        return tuple(int(css[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(float(part)) for part in re.findall(r"[\d.]+", css)[:3])


def contrast(first: tuple[int, int, int], second: tuple[int, int, int]) -> float:
    def luminance(colour):
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
                  for c in (channel / 255 for channel in colour)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted([luminance(first), luminance(second)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def sidebar_shown(page) -> bool:
    sidebar = page.get_by_test_id("stSidebar")
    return sidebar.count() > 0 and sidebar.first.is_visible()


def settle(page) -> bool:
    """Wait for the script run to end (its status widget goes), then for the charts to draw; a
    page that keeps polling never ends its run: False after 45 s (a server still importing torch
    for its first run budget, under a full suite's load, took longer than 20 s to finish a page)."""
    if not settled(page, 45_000):
        return False
    page.wait_for_timeout(800)
    return True


@browser_test
@pytest.mark.browser
def test_presentation_mode_keyboard_and_export_in_chromium(served, tmp_path):
    url, _ = served
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(1600, 1000, accept_downloads=True) as page:
        page.goto(f"{url}/?present=1")
        page.get_by_role("heading", name="Multi-task learning, hands on").wait_for(timeout=30_000)
        page.get_by_role("button", name=re.compile("Exit presentation")).wait_for(timeout=15_000)
        settle(page)
        assert not sidebar_shown(page)
        assert page.evaluate("() => getComputedStyle(document.documentElement).fontSize") == "21px"
        assert "present=" not in page.url
        page.screenshot(path=ARTIFACTS / "presentation_home.png")

        # Esc leaves, Alt+P comes back: the keys a lecturer presses at the lectern
        page.keyboard.press("Escape")
        page.get_by_role("button", name=re.compile("Presentation mode")).wait_for(timeout=15_000)
        assert sidebar_shown(page)
        page.keyboard.press("Alt+P")
        page.get_by_role("button", name=re.compile("Exit presentation")).wait_for(timeout=15_000)
        assert not sidebar_shown(page)

        # Tab reaches the pages in the top bar; Enter opens one
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        presses = 0
        while presses < 40:
            page.keyboard.press("Tab")
            presses += 1
            focused = page.evaluate("() => [document.activeElement.getAttribute('data-testid'), "
                                    "document.activeElement.innerText.trim()]")
            if focused[0] == "stTopNavLink" and focused[1].endswith("Sharing"):  # after its icon's name
                break
        assert presses < 40, "Tab never reached the Sharing link"
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/sharing"), timeout=15_000)
        page.locator(".vega-embed svg").first.wait_for(timeout=20_000)
        settle(page)
        assert not sidebar_shown(page)  # still presenting on the next page
        page.screenshot(path=ARTIFACTS / "presentation_sharing.png")

        files = {}
        for fmt in ("PNG", "SVG"):
            with page.expect_download(timeout=20_000) as download:
                page.get_by_role("button", name=fmt, exact=True).first.click()
            files[fmt] = tmp_path / download.value.suggested_filename
            download.value.save_as(files[fmt])
        assert files["PNG"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = files["SVG"].read_text()
        assert svg.startswith("<svg") and "Shared layer 1" in svg  # the diagram's blocks
        print(f"\nTab presses to the Sharing link: {presses}; exported {files['PNG'].name} "
              f"({files['PNG'].stat().st_size:,} bytes) and {files['SVG'].name}")

        # the app menu offers the dark theme (a theme fixed in config.toml would hide it)
        page.get_by_test_id("stMainMenuButton").click()
        page.get_by_role("menuitemradio", name="Dark").click()
        page.wait_for_function("""() => {
            const [r, g, b] = getComputedStyle(document.querySelector('[data-testid="stApp"]'))
                .backgroundColor.match(/\\d+/g).map(Number);
            return r + g + b < 150;
        }""", timeout=10_000)


@browser_test
@pytest.mark.browser
def test_every_page_is_readable_in_the_dark_theme(served):
    """Every page in Streamlit's dark theme (the app follows the system's: a dark one here), a run's
    dashboard included: the charts' titles, axis titles, labels and legends contrast with the page
    by at least 3:1. Saves dark_<page>.png."""
    url, store_path = served
    store = Store(store_path)
    config = RunConfig.parse(RUN)
    run_id = store.create_run(config, name="dark theme run")
    assert execute_run(store, run_id, stop=threading.Event()).status == "done"
    visits = [(page.removeprefix("pages/").removesuffix(".py"), path)
              for page, path in zip(NAVIGATION, URL_PATHS, strict=True)]
    visits.append(("train_run", f"train?{urlencode(config.to_query() | {'run': run_id})}"))
    ARTIFACTS.mkdir(exist_ok=True)
    faint, seen = [], {}
    with chromium_page(1600, 1100, color_scheme="dark") as page:
        for name, path in visits:
            page.goto(f"{url}/{path}")
            page.get_by_test_id("stMainBlockContainer").wait_for(timeout=30_000)
            page.wait_for_timeout(1500)
            if not settle(page):
                print(f"\n{name}: still running after 45 s (a polling page?)")
            texts = page.evaluate(CHART_TEXT_JS)
            background = rgb(texts["background"])
            assert contrast(background, (255, 255, 255)) > 10, texts["background"]  # dark indeed
            seen[name] = len(texts["fills"])
            faint += [f"{name}: '{text}' in {fill}" for text, fill in texts["fills"]
                      if contrast(rgb(fill), background) < 3]
            page.screenshot(path=ARTIFACTS / f"dark_{name}.png")
    print("\nchart texts checked per page:", seen)
    assert seen["train_run"] >= 30 and seen["sharing"] >= 1, seen
    assert not faint, faint


def test_long_titles_wrap_and_charts_grow_while_presenting():
    title = "How the update treats each task (below 0: it hurts)"
    lines = wrapped_title({"title": title})["title"]["text"]
    assert " ".join(lines) == title and all(len(line) <= TITLE_LINE for line in lines) and len(lines) == 2
    assert wrapped_title({"title": "Task weights"}) == {"title": "Task weights"}
    assert title_lines("a " * 3, width=1) == ["a", "a", "a"]
    assert presented_spec({"height": 250, "mark": "line"})["height"] == round(250 * HEIGHT_SCALE)
