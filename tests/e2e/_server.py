"""Start the real app (``streamlit run app.py``) on a free port, and wait for pages to finish drawing.

Shared by the e2e test and ``screenshots.py``.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTH = 1400


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """``streamlit run app.py`` with its own data folder; ``stop()`` ends it and any training it started."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DLE_DATA_DIR": str(self.data_dir), "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
               "--server.port", str(self.port), "--server.address", "127.0.0.1",
               "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
        self.log = open(self.data_dir / "streamlit.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {(self.data_dir / 'streamlit.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"streamlit did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop the server, then cancel the runs it started and wait for their processes to end."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        os.environ["DLE_DATA_DIR"], old = str(self.data_dir), os.environ.get("DLE_DATA_DIR")
        try:
            import dlcore

            store = dlcore.RunStore(self.data_dir)
            for run in dlcore.list_runs(store):
                if run.status in ("queued", "running"):
                    dlcore.cancel_run(run.id, store)
                    dlcore.wait(run.id, timeout=60, store=store)
        finally:
            if old is None:
                os.environ.pop("DLE_DATA_DIR", None)
            else:
                os.environ["DLE_DATA_DIR"] = old


@contextlib.contextmanager
def serving(data_dir: Path, **attrs):
    """A ready AppServer on ``data_dir`` for the block (``attrs`` set on it, e.g. the runs a test made), stopped
    afterwards."""
    srv = AppServer(data_dir)
    for k, v in attrs.items():
        setattr(srv, k, v)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def chromium_page(timeout_ms: int = 90_000, height: int = 900, **page_options):
    """One page of a headless Debian Chromium for the block (``page_options`` go to ``new_page``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": height}, **page_options)
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


def settle(page, timeout: float = 90, quiet: float = 1.0) -> float:
    """Wait until the page has drawn: no skeletons, spinners or running-script indicator for ``quiet`` s.

    Returns the seconds it took.
    """
    t0 = time.time()
    calm_since = None
    busy = '[data-testid="stSkeleton"], [data-testid="stSpinner"], [data-testid="stStatusWidget"]'
    while time.time() - t0 < timeout:
        if page.locator(busy).count() == 0 and page.locator('[data-testid="stMain"]').count():
            calm_since = calm_since or time.time()
            if time.time() - calm_since >= quiet:
                return calm_since - t0
        else:
            calm_since = None
        page.wait_for_timeout(100)
    raise TimeoutError(f"the page was still drawing after {timeout:.0f} s")


def exceptions(page) -> list[str]:
    """Texts of Streamlit's exception boxes on the page (should be none)."""
    return page.locator('[data-testid="stException"]').all_inner_texts()


def full_page_screenshot(page, path: Path) -> Path:
    """A PNG of the whole page: Streamlit scrolls inside its main block, so grow the viewport to fit it."""
    height = page.evaluate('document.querySelector(\'[data-testid="stMain"]\').scrollHeight')
    page.set_viewport_size({"width": WIDTH, "height": int(min(max(height, 900), 8000))})
    page.wait_for_timeout(600)  # plotly re-lays out its figures to the new size
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": WIDTH, "height": 900})
    return path
