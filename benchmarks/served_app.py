"""The app served (``python -m mtl_core serve``: ``streamlit run app.py`` once the settings are
checked) on a free local port, and the headless Chromium that drives it: the harness the browser
test and ``ui_overhead`` share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_app(store_path: Path, log_path: Path, *, env: dict[str, str] | None = None,
               start_timeout: float = 30) -> Iterator[str]:
    """Serve the app with its own run store; yields its URL once it answers its health check.
    Raises RuntimeError with the server's log when it does not start."""
    port = free_port()
    env = {**(env or os.environ), "MTL_STORE": str(store_path)}
    with open(log_path, "w+") as log:
        server = subprocess.Popen(
            # As a classroom's server starts: `serve` checks the MTL_* settings, then runs streamlit
            # from the project's root, whose .streamlit/config.toml sets the upload limit.
            [sys.executable, "-m", "mtl_core", "serve", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"streamlit did not start:\n{log.read()}") from None
                    time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


@contextmanager
def chromium_page(width: int, height: int, **options: object) -> Iterator[object]:
    """A page of a fresh headless Chromium (Debian's, with the project's flags), ``width`` x
    ``height`` CSS pixels; ``options`` go to ``new_page`` (e.g. ``accept_downloads=True``). The
    browser closes on the way out, whatever happened inside."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height}, **options)
        finally:
            browser.close()
