"""Projector-proof layout in a real headless Chromium: every page at 1280x720 and 1440x900 in the
light theme, and at 1280x720 in the dark one, in the normal and the presentation mode, keeps its
text whole. Fails on clipped text, measured in the page:

- page text (headings, widget labels, metric values, multiselect chips, links, buttons): an
  element whose own text is wider than its box (``scrollWidth > clientWidth``), as Streamlit's
  ellipsis ("…") hides it;
- vega charts: the title, axis titles and legend of each chart inside the chart's box, and no
  text that vega shortened with "…";
- plotly charts: title, axis titles and legend inside the chart's box, no legend that scrolls
  (entries hidden), and no slider label over an axis title.

One served app, one browser, and a small finished run (Train, Sharing, Task affinity) and a
two-method grid (Compare) in its store. Screenshots: test-artifacts/layout/<mode>_<theme>_<size>_<page>.png.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from benchmarks.served_app import CHROMIUM, ROOT, chromium_page
from mtl_core.config import RunConfig
from mtl_core.runs.baselines import missing_baselines
from mtl_core.runs.store import Store
from mtl_core.runs.sweep import make_grid, run_grid
from mtl_core.runs.worker import execute_run
from tests.browser_support import settled
from tests.compare_support import SETUP

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api")

ARTIFACTS = ROOT / "test-artifacts" / "layout"
SIZES = [(1280, 720), (1440, 900)]
THEMES = ["light", "dark"]
MODES = ["normal", "present"]
# A run that records everything the Train dashboard, Sharing and Task affinity draw.
RUN = {"suite": "synthetic", "suite_params": {"train_size": 1000}, "arch": "ple", "method": "uw",
       "steps": 30, "eval_every": 10, "probe_every": 5, "snapshot_every": 10, "affinity_every": 10,
       "batch_size": 64, "device": "cpu"}

# Every element with text of its own whose text is wider than its box; Streamlit hides the rest
# behind "…" (labels, chips, metric values) or clips it. Glide's data grid is a canvas: not here.
CLIPPED_TEXT_JS = """() => {
    const shown = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    const ownText = el => [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const out = [];
    for (const el of document.querySelectorAll('[data-testid="stApp"] *')) {
        if (!ownText(el) || !shown(el) || el.clientWidth <= 1 || el.closest('svg, .js-plotly-plot, .vega-embed, pre, code, [data-testid="stTooltipContent"]')) continue;
        const style = getComputedStyle(el);
        if (style.display === 'inline' || el.clientWidth === 0) continue;
        if (el.scrollWidth > el.clientWidth + 1 && style.overflowX !== 'auto' && style.overflowX !== 'scroll')
            out.push(`text '${el.textContent.trim().slice(0, 60)}' needs ${el.scrollWidth} px, has ${el.clientWidth}`);
    }
    for (const tags of document.querySelectorAll('[data-testid="stMultiSelectTagsContainer"]'))
        if (tags.scrollWidth > tags.clientWidth + 1 || tags.scrollHeight > tags.clientHeight + 1)
            out.push(`multiselect '${tags.innerText.trim().slice(0, 60)}' hides some of its choices`);
    return out;
}"""

# Vega: each chart's title, axis titles, axis labels and legend inside the chart's own box, none
# shortened by vega ("…"); the svg itself inside the element Streamlit gives the chart.
VEGA_JS = """() => {
    const out = [];
    const roles = ['role-title-text', 'role-title-subtitle', 'role-axis-title', 'role-axis-label',
                   'role-legend-title', 'role-legend-label'];
    for (const embed of document.querySelectorAll('.vega-embed')) {
        const svg = embed.querySelector('svg');
        if (!svg || !embed.getClientRects().length) continue;
        const box = (embed.closest('[data-testid="stVegaLiteChart"]') || embed.parentElement).getBoundingClientRect();
        const column = embed.closest('[data-testid="stColumn"], [data-testid="stMainBlockContainer"]');
        const outer = column ? column.getBoundingClientRect() : box;
        const svgBox = svg.getBoundingClientRect();
        const title = (svg.querySelector('g.role-title-text text') || {}).textContent || '(untitled)';
        const name = `chart '${title.slice(0, 50)}'`;
        if (svgBox.right > outer.right + 2 || svgBox.left < outer.left - 2)
            out.push(`${name}: ${Math.round(svgBox.width)} px wide in a ${Math.round(outer.width)} px column`);
        for (const text of svg.querySelectorAll(roles.map(r => `g.${r} text`).join(', '))) {
            const content = text.textContent.trim();
            if (!content) continue;
            const r = text.getBoundingClientRect();
            // A glyph's box reaches a little past what is inked: a third of the line is slack.
            const slack = Math.max(2, Math.min(r.width, r.height) / 3);
            if (content.endsWith('…')) out.push(`${name}: '${content}' is shortened`);
            else if (r.left < svgBox.left - slack || r.right > svgBox.right + slack || r.top < svgBox.top - slack ||
                     r.bottom > svgBox.bottom + slack || r.left < outer.left - slack || r.right > outer.right + slack)
                out.push(`${name}: '${content}' is outside the chart`);
        }
    }
    return out;
}"""

# Plotly: title, axis titles and legend inside the chart, a legend that shows every entry, and
# the slider's label clear of the x axis title.
PLOTLY_JS = """() => {
    const out = [];
    const overlap = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    for (const plot of document.querySelectorAll('.js-plotly-plot')) {
        if (!plot.getClientRects().length) continue;
        const box = plot.getBoundingClientRect();
        const title = (plot.querySelector('.gtitle') || {}).textContent || '(untitled)';
        const name = `plotly '${title.slice(0, 50)}'`;
        for (const text of plot.querySelectorAll('.gtitle, .xtitle, .ytitle, .legendtext, .slider-container text')) {
            const r = text.getBoundingClientRect();
            if (!text.textContent.trim() || !r.width) continue;
            if (r.left < box.left - 2 || r.right > box.right + 2 || r.top < box.top - 2 || r.bottom > box.bottom + 2)
                out.push(`${name}: '${text.textContent.trim()}' is outside the chart`);
        }
        for (const bar of plot.querySelectorAll('.legend .scrollbar'))
            if (bar.getBoundingClientRect().height > 0) out.push(`${name}: its legend scrolls (entries hidden)`);
        const axisTitles = [...plot.querySelectorAll('.xtitle')].map(t => t.getBoundingClientRect());
        for (const label of plot.querySelectorAll('.slider-container text, .updatemenu-container text'))
            if (axisTitles.some(t => overlap(t, label.getBoundingClientRect())))
                out.push(`${name}: '${label.textContent.trim()}' lies over the x axis title`);
    }
    return out;
}"""

RELAYOUT_MS = 700  # vega and plotly redraw to a new width on the next frames: leave them time
DARK_JS = """() => getComputedStyle(document.querySelector('[data-testid="stApp"]')).backgroundColor
    .match(/\\d+/g).slice(0, 3).map(Number).reduce((a, b) => a + b) < 150"""
HEADING = '[data-testid="stMainBlockContainer"] :is(h1, h2)'  # every page starts with one


@pytest.fixture(scope="module")
def visits(served):
    """The pages to open (name, path, action after loading), with a finished run and grid in the store."""
    url, store_path = served
    store = Store(store_path)
    config = RunConfig.parse(RUN)
    run_id = store.create_run(config, name="layout run")
    assert execute_run(store, run_id, stop=threading.Event()).status == "done"
    grid = make_grid(RunConfig.parse(SETUP), "ew,pcgrad", "hps", "0")
    configs = grid.configs()
    ids = run_grid([*missing_baselines(store, configs), *configs], store_path=store_path, workers=2)
    learned = ("sharing_run", "sharing", lambda page: page.get_by_text("What a run learned").click())
    return url, [
        ("home", "", None),
        ("train", f"train?{urlencode(config.to_query() | {'run': run_id})}", None),
        ("compare", f"compare?runs={','.join(map(str, ids))}", None),
        ("gradient_lab", "gradient_lab", None),
        ("sharing", "sharing", None),
        learned,
        ("affinity", "affinity", None),
        ("methods", "methods", None),
        ("runs", "runs", None),
    ]


def settle(page) -> None:
    """The script run has ended and the charts have had a moment to draw and lay out."""
    for _ in range(2):  # twice, apart: a rerun that starts just after the first run ends
        # A page that polls keeps running: then what is there after 20 s is measured.
        settled(page, 20_000)
        page.wait_for_timeout(400)


def test_no_page_clips_its_text(visits):
    """Each page is loaded once per mode; the theme (the system's, which the app follows) and the
    window size change in place, as a lecturer's would: that keeps 48 views fast."""
    url, pages = visits
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    started = time.monotonic()
    with chromium_page(*SIZES[0]) as page:
        # A classroom may have no internet: the app must fetch nothing from outside (a
        # ":material/...:" page icon came from Google's font server).
        outside = []
        page.on("request", lambda request: outside.append(request.url)
                if not request.url.startswith((url, "data:", "blob:")) else None)
        for mode in MODES:
            for name, path, action in pages:
                page.emulate_media(color_scheme=THEMES[0])
                page.set_viewport_size(dict(zip(("width", "height"), SIZES[0], strict=True)))
                query = (("&" if "?" in path else "?") + "present=1") if mode == "present" else ""
                page.goto(f"{url}/{path}{query}")
                page.locator(HEADING).first.wait_for(timeout=30_000)
                settle(page)
                if action:
                    action(page)
                    settle(page)
                for theme in THEMES:
                    page.emulate_media(color_scheme=theme)
                    page.wait_for_function(DARK_JS if theme == "dark" else f"() => !({DARK_JS})()", timeout=10_000)
                    # Text is as wide in either theme: the dark one is checked (and its colours
                    # looked at) at the tighter size only.
                    for width, height in (SIZES if theme == THEMES[0] else SIZES[:1]):
                        page.set_viewport_size({"width": width, "height": height})
                        page.wait_for_timeout(RELAYOUT_MS)
                        where = f"{mode} {theme} {width}x{height} {name}"
                        problems += [f"{where}: {problem}" for problem in measure(page)]
                        page.screenshot(path=ARTIFACTS / f"{mode}_{theme}_{width}x{height}_{name}.png")
                if name == "train" and mode == "normal":
                    problems += enlarge_one_chart(page)
    elapsed = time.monotonic() - started
    print(f"\n{len(pages) * (len(SIZES) + 1) * len(MODES)} page views checked in {elapsed:.0f} s")
    assert not problems, "\n".join(problems)
    assert not outside, f"fetched from outside the app: {sorted(set(outside))}"


def measure(page) -> list[str]:
    """The clipped text on the page; a problem must still be there a moment later (vega draws
    asynchronously, and a chart measured mid-redraw reads as clipped)."""
    found = page.evaluate(CLIPPED_TEXT_JS) + page.evaluate(VEGA_JS) + page.evaluate(PLOTLY_JS)
    if not found:
        return []
    page.wait_for_timeout(1500)
    again = set(page.evaluate(CLIPPED_TEXT_JS) + page.evaluate(VEGA_JS) + page.evaluate(PLOTLY_JS))
    return [problem for problem in found if problem in again]


def enlarge_one_chart(page) -> list[str]:
    """Streamlit's full-screen button (on a chart's toolbar, shown on hover) gives one chart the
    whole window; Esc brings it back."""
    chart = page.locator('[data-testid="stElementContainer"]:has([data-testid="stVegaLiteChart"])').first
    chart.evaluate("el => el.scrollIntoView({block: 'center'})")  # its toolbar clear of the top bar
    chart.hover()
    # A click event, not a pointer: where the toolbar overlaps the chart's svg, the svg takes it.
    chart.get_by_role("button", name="Fullscreen").dispatch_event("click")
    page.wait_for_timeout(RELAYOUT_MS)
    width = page.evaluate("() => document.querySelector('[data-testid=\"stVegaLiteChart\"] svg').getBoundingClientRect().width")
    viewport = page.viewport_size["width"]
    page.screenshot(path=ARTIFACTS / "normal_train_chart_fullscreen.png")
    page.keyboard.press("Escape")
    return [] if width > 0.8 * viewport else [f"full screen: the chart is {width:.0f} px wide in a {viewport} px window"]
