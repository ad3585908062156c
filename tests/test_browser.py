"""The served app in a real headless Chromium: the first curve's latency, live updates, a page that
stays responsive while a run trains, and Stop. Prints what it measured; saves a screenshot of the
Train page during a run to test-artifacts/train_running.png.

AppTest cannot see any of this (JavaScript, chart rendering, the browser's event loop).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from benchmarks.served_app import CHROMIUM, ROOT, chromium_page
from mtl_core.config import RunConfig
from mtl_core.runs.store import TERMINAL, Store
from mtl_core.runs.worker import execute_run
from pages._polling import POLL_S

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
LINE = ".vega-embed g.mark-line path"  # an altair line that vega has drawn
# The new run's step counter reads "N / <total>" (N >= 1) and a curve is drawn.
FIRST_CURVE_JS = """total => {
    const counter = [...document.querySelectorAll('[data-testid="stMetric"]')]
        .some(metric => new RegExp("[1-9][\\d,]* / " + total).test(metric.innerText));
    return counter && document.querySelector('.vega-embed g.mark-line path') !== null;
}"""
SEED_VISIBLE_JS = """() => [...document.querySelectorAll('label')]
    .some(label => label.innerText.trim() === 'Seed' && label.offsetParent !== null)"""

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api")


def train_url(url: str, config: RunConfig) -> str:
    return f"{url}/train?{urlencode(config.to_query())}"


def steps_done(page) -> int:
    """The dashboard's "Steps" counter, e.g. "1,234 / 20,000" -> 1234."""
    label = page.get_by_test_id("stMetricLabel").get_by_text("Steps", exact=True)
    text = page.get_by_test_id("stMetric").filter(has=label).inner_text()
    return int(re.search(r"([\d,]+)\s*/", text).group(1).replace(",", ""))


def wait_for_status(store: Store, run_id: int, statuses: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = store.get_run(run_id).status
        if status in statuses:
            return status
        time.sleep(0.01)
    raise TimeoutError(f"run {run_id} is still {store.get_run(run_id).status}")


def button(page, name: str):
    """A button of the app (not Streamlit's own "Stop" in its running-script indicator)."""
    return page.get_by_test_id("stMainBlockContainer").get_by_role("button", name=name, exact=True)


def test_live_dashboard_in_chromium(served):
    url, store_path = served
    store = Store(store_path)
    warm_up = RunConfig.parse({"steps": 30, "eval_every": 10, "probe_every": 10, "device": "cpu"})
    long_run = RunConfig.parse({"steps": 50_000, "eval_every": 50, "probe_every": 10, "device": "cpu"})
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium_page(1600, 1150) as page:
        # Warm up: the first page load, the worker's torch import and the chart libraries.
        page.goto(train_url(url, warm_up))
        button(page, "Train").click()
        page.wait_for_url(re.compile(r"[?&]run=\d+"), timeout=30_000)
        warm_id = int(re.search(r"[?&]run=(\d+)", page.url).group(1))
        wait_for_status(store, warm_id, TERMINAL, timeout=60)
        page.locator(LINE).first.wait_for(timeout=30_000)

        # The measured run, on the same page (as a person would do it): from the click to
        # the new run's first curve: its step counter reads "N / 50,000" and a line is drawn.
        page.goto(train_url(url, long_run) + f"&run={warm_id}")
        page.locator(LINE).first.wait_for(timeout=30_000)
        # The job manager starts its next warm worker 2 s after a run takes one, and that
        # worker then imports torch: give it time, as a person configuring a run would.
        started = store.get_run(warm_id).started_at
        page.wait_for_timeout(max(0.0, started + 7.0 - time.time()) * 1000)
        clicked = time.perf_counter()
        button(page, "Train").click()
        # Checked on every animation frame: Playwright's own locator waits poll at up to
        # 500 ms intervals, which would be measured too.
        page.wait_for_function(FIRST_CURVE_JS, arg=f"{long_run.steps:,}", polling="raf",
                               timeout=30_000)
        first_curve_s = time.perf_counter() - clicked
        page.wait_for_url(re.compile(rf"[?&]run=(?!{warm_id}\b)\d+"), timeout=10_000)
        run_id = int(re.search(r"[?&]run=(\d+)", page.url).group(1))

        # The curves keep coming.
        page.wait_for_timeout(1000)
        before = steps_done(page)
        page.wait_for_timeout(1000 * POLL_S + 500)  # at least one poll of the live view
        after = steps_done(page)

        # Responsive while training: an expander opens (the browser's event loop is free)
        # and a changed setting comes back from the server (its URL is rewritten).
        opened = time.perf_counter()
        page.get_by_text("Training settings").click()
        page.wait_for_function(SEED_VISIBLE_JS, polling="raf", timeout=5000)
        expander_s = time.perf_counter() - opened
        seed = page.get_by_label("Seed", exact=True)
        seed.fill("5")
        changed = time.perf_counter()
        seed.press("Enter")
        page.wait_for_url(re.compile(r"[?&]seed=5(&|$)"), timeout=10_000)
        round_trip_s = time.perf_counter() - changed
        page.get_by_text("Training settings").click()  # fold it again for the screenshot

        # The screenshot: once a few validation points are in (or after 10 s on a slow machine).
        deadline = time.monotonic() + 10
        while steps_done(page) < 3 * long_run.eval_every and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        page.mouse.move(5, 5)
        page.get_by_test_id("stMain").evaluate("main => main.scrollTo(0, 0)")
        page.wait_for_timeout(700)
        page.screenshot(path=ARTIFACTS / "train_running.png")

        stop_clicked = time.perf_counter()
        button(page, "Stop").click()
        status = wait_for_status(store, run_id, TERMINAL, timeout=10)
        stop_s = time.perf_counter() - stop_clicked
        page.get_by_text("stopped").first.wait_for(timeout=10_000)

    print(f"\nfirst curve after Train (warm worker): {first_curve_s:.2f} s"
          f"\nsteps counter: {before} -> {after} in {POLL_S + 0.5:.1f} s (the page polls every {POLL_S:g} s)"
          f"\nexpander opens while training: {expander_s * 1000:.0f} ms"
          f"\nsetting -> server -> URL while training: {round_trip_s * 1000:.0f} ms"
          f"\nStop -> status '{status}' in the store: {stop_s:.2f} s")
    assert after > before > 0
    assert status == "stopped"
    # The goals (a first curve and an expander within 1 s) are read from the printout above, on a
    # quiet machine: a timed assert fails on a loaded CI box (there the expander took 1.7 s while a
    # worker trained beside it). These bounds catch a page that hangs, not a slow machine.
    assert first_curve_s < 10.0
    assert stop_s < 5.0
    assert expander_s < 5.0 and round_trip_s < 5.0


def test_the_sharing_page_animates_learned_sharing_in_chromium(served):
    """A cross-stitch and an MMoE run, trained here into the served app's store, replayed with Play."""
    url, store_path = served
    store = Store(store_path)
    runs = {}
    for arch in ("cross_stitch", "mmoe"):
        config = RunConfig.parse({"suite": "multidigits", "arch": arch, "steps": 120, "snapshot_every": 10,
                                  "eval_every": 40, "device": "cpu"})
        runs[arch] = store.create_run(config, name=f"{arch} for the sharing page")
        assert execute_run(store, runs[arch], stop=threading.Event()).status == "done"
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium_page(1600, 1150) as page:
        page.goto(f"{url}/sharing")
        page.get_by_text("What a run learned").click()
        seen = {}
        for arch, title in (("cross_stitch", "cross-stitch alpha, layer 1"), ("mmoe", "MMoE gate")):
            page.get_by_test_id("stSelectbox").first.click()
            page.get_by_role("option", name=re.compile(f"#{runs[arch]} ")).click()
            page.get_by_text(title, exact=True).first.wait_for(timeout=15_000)
            caption = page.get_by_text(re.compile(r"^Step [\d,]+ of 120\.$"))
            assert caption.inner_text() == "Step 120 of 120."
            play = page.locator("label").filter(has_text=re.compile(r"^Play$")).first
            play.click()
            steps = set()
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                steps.add(caption.inner_text())
                page.wait_for_timeout(100)
            seen[arch] = steps
            page.wait_for_function("() => document.querySelectorAll('.vega-embed g.mark-rect path').length > 0")
            page.screenshot(path=ARTIFACTS / f"sharing_{arch}_playing.png")
            play.click()  # stop before switching runs
    print("\nsnapshots shown while playing for 4 s: "
          + ", ".join(f"{arch} {len(steps)}" for arch, steps in seen.items()))
    # One frame every 0.6 s: several distinct steps in 4 s, for both runs.
    assert all(len(steps) >= 3 for steps in seen.values()), seen
