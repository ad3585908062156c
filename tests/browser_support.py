"""What the browser tests share about a page's state: when a page has finished drawing."""

from __future__ import annotations

# Drawn: no skeleton left, no script running (its status widget's Stop), and every chart has drawn.
# A page that has just been opened shows skeletons before its script starts: the status widget
# alone would call it settled too early.
SETTLED_JS = """() => !document.querySelector('[data-testid="stSkeleton"], [data-testid="stStatusWidget"] button')
    && [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].every(c => c.querySelector('svg'))"""


def settled(page, timeout_ms: float) -> bool:
    """Whether the page settled within ``timeout_ms`` (a page that polls a live run never does)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(SETTLED_JS, timeout=timeout_ms, polling=100)
    except PlaywrightTimeout:
        return False
    return True
