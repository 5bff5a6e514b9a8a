"""Helpers of the browser tests: Debian's chromium driven by Playwright, and servers on 127.0.0.1.

Nothing is downloaded at run time: Playwright launches ``/usr/bin/chromium`` (Debian's
``chromium`` package, installed by ``.ci/run`` where apt is available and we are root);
``playwright install`` is never run. Without chromium or Playwright the tests skip with the
reason.
"""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Where screenshots are copied for people to look at (also kept in each test's tmp dir).
SHOTS = Path("/tmp/viewer_shots")


def need_browser():
    """Playwright's sync API, or skip the test with the reason."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium; .ci/run installs it as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright (Python package) not installed")
    return sync_playwright


@contextmanager
def browser_page(width: int = 1280, height: int = 800):
    """A fresh page of the system chromium and the list its console errors go to."""
    sync_playwright = need_browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            # a tile request the map cancels on zoom ends as net::ERR_ABORTED: not an error
            page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else
                    errors.append(f"request failed: {r.url} {r.failure}"))
            yield page, errors
        finally:
            browser.close()


def save_shot(page, tmp_path: Path, name: str) -> Path:
    """Screenshot into the test's tmp dir and a copy into :data:`SHOTS`."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / name)
    return path


@contextmanager
def uvicorn_server(app):
    """Run an ASGI app with uvicorn on 127.0.0.1 and a free port in a thread; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        if time.monotonic() - t0 > 30 or not thread.is_alive():
            raise RuntimeError("the viewer server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def static_server(root: Path):
    """Serve a folder (e.g. the built docs site) on 127.0.0.1 and a free port; yields the base URL."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=15)
