"""The Gradient lab in a real headless Chromium: the toy's trajectories are drawn, ▶ Play animates
them (the slider's step and the methods' current points move, the contours stay), ❚❚ Pause stops
them, and a click on the plot adds a start point. Saves
screenshots to test-artifacts/gradient_lab_playing.png (mid-animation) and
test-artifacts/gradient_lab_end.png (the paper's 100,000 steps, at the end).

AppTest checks the page's figures as specs (tests/test_app_gradient_lab.py); plotly's animation
runs only in a browser.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from benchmarks.served_app import CHROMIUM, ROOT, chromium_page

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
PLOT = '[data-testid="stPlotlyChart"] .js-plotly-plot'
# The animation's figure: the one with frames. Its current points: one marker trace per method.
HEADS_JS = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')].find(p => p._transitionData
        && p._transitionData._frames && p._transitionData._frames.length > 0);
    if (!plot) return null;
    const data = plot._fullData;  // decoded arrays (plot.data keeps the base64 form)
    return data.filter(t => t.mode === "markers" && t.legendgroup).map(t => [Array.from(t.x), Array.from(t.y)]);
}"""
CONTOUR_JS = "() => document.querySelectorAll('.js-plotly-plot .imagelayer image').length"
STARTS_JS = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')].find(p => p._transitionData
        && p._transitionData._frames && p._transitionData._frames.length > 0);
    const starts = plot && plot._fullData.find(t => t.name === 'start points');
    return starts ? Array.from(starts.x).map((x, i) => [x, starts.y[i]]) : null;
}"""
SLIDER_VALUE_JS = """() => {
    const label = [...document.querySelectorAll('.js-plotly-plot .slider-container text.slider-label')]
        .find(t => t.textContent.startsWith('Adam step'));
    return label ? label.textContent : null;
}"""

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api")


def slider_step(page) -> int:
    text = page.evaluate(SLIDER_VALUE_JS) or ""
    match = re.search(r"([\d,]+)\s*$", text)
    return int(match.group(1).replace(",", "")) if match else -1


def test_gradient_lab_animates_the_toy_in_chromium(served):
    url, _ = served
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(1600, 1300) as page:
        began = time.perf_counter()
        # Through the navigation, as a person would: the default set-up is the paper's experiment.
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Gradient lab").click(timeout=60_000)
        page.wait_for_function("() => document.querySelector('.js-plotly-plot .updatemenu-button') !== null",
                               timeout=180_000)
        page.wait_for_function(f"() => ({HEADS_JS})() !== null", timeout=30_000)
        print(f"\nthe paper's experiment simulated and drawn {time.perf_counter() - began:.1f} s after opening")
        end_heads = page.evaluate(HEADS_JS)
        assert len(end_heads) == 4 and all(len(x) == 3 for x, _ in end_heads)  # 4 methods x 3 starts
        assert slider_step(page) == 100_000  # shown as at the last step until played
        # CAGrad (the last method) ends at the mean's minimum from all three starts.
        cagrad_x, cagrad_y = end_heads[-1]
        assert max(abs(x) for x in cagrad_x) < 0.05 and all(abs(y + 8.3552) < 0.05 for y in cagrad_y)
        page.locator(PLOT).first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "gradient_lab_end.png"), full_page=False)

        page.locator(".js-plotly-plot .updatemenu-button").filter(has_text="Play").first.click()
        page.wait_for_function(f"() => {{ const s = ({SLIDER_VALUE_JS})(); return s && /step 0$/.test(s) === false"
                               f" && !/100,000$/.test(s); }}", timeout=10_000)
        first = slider_step(page), page.evaluate(HEADS_JS)
        assert page.evaluate(CONTOUR_JS) == 1  # the contour picture stays under the moving points
        time.sleep(1.0)
        second = slider_step(page), page.evaluate(HEADS_JS)
        page.screenshot(path=str(ARTIFACTS / "gradient_lab_playing.png"), full_page=False)
        print(f"playing: slider at step {first[0]:,}, then {second[0]:,} one second later")
        assert 0 <= first[0] < second[0] < 100_000
        assert first[1] != second[1]  # the current points moved
        page.locator(".js-plotly-plot .updatemenu-button").filter(has_text="Pause").first.click()
        time.sleep(0.5)
        paused = slider_step(page)
        time.sleep(1.0)
        assert slider_step(page) == paused  # paused stays put

        # A click on the plot adds a start point there (a short run keeps this quick).
        page.goto(f"{url}/gradient_lab?steps=2000", wait_until="domcontentloaded")
        page.wait_for_function(f"() => ({STARTS_JS})() !== null && ({STARTS_JS})().length === 3", timeout=120_000)
        box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        x, y = box["x"] + box["width"] * 11 / 22, box["y"] + box["height"] * (11 - 5) / 22  # (0, 5)
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        page.wait_for_function(f"() => ({STARTS_JS})() !== null && ({STARTS_JS})().length === 4", timeout=120_000)
        added = page.evaluate(STARTS_JS)[-1]
        print(f"clicked at (0, 5): a start added at ({added[0]:g}, {added[1]:g})")
        assert abs(added[0]) <= 0.5 and abs(added[1] - 5) <= 0.5  # the click targets are 0.5 apart
