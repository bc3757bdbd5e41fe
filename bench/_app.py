"""Shared by the benchmarks that drive the real app in Chromium (bench_pages.py, bench_memory.py): a data
folder with a finished run, the server (tests/e2e/_server.py's AppServer), page timing and server RSS."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from _common import ROOT

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from _server import CHROMIUM, CHROMIUM_ARGS, WIDTH, AppServer  # noqa: E402,F401

def app_pages() -> list[tuple[str, str, str]]:
    """(url path, navigation label, the page's <h1>) of every page in app.py's navigation, in its order:
    read from app.py's ``st.Page(ui.PAGE_FILES["name"], title=...)`` and each page's ``st.title(...)``."""
    app = (ROOT / "app.py").read_text()
    out = []
    for m in re.finditer(r'st\.Page\(ui\.PAGE_FILES\["(\w+)"\],\s*title="([^"]+)"([^)]*)\)', app):
        name, label, rest = m.groups()
        (file,) = ROOT.glob(f"app_pages/*/{name}.py")
        heading = re.search(r'st\.title\(\s*"([^"]+)"', file.read_text())
        out.append(("/" if "default=True" in rest else f"/{name}", label, heading.group(1) if heading else label))
    return out


PAGES = [(path, heading) for path, _, heading in app_pages()]
BUSY = '[data-testid="stSkeleton"], [data-testid="stSpinner"], [data-testid="stStatusWidget"]'


def finished_run(data_dir: Path) -> str:
    """One completed run in the data folder: the tutorial CNN, a few steps on mnist5k (the Home page's quick
    start), so the inspection pages have something to show."""
    import os

    os.environ["DLE_DATA_DIR"] = str(data_dir)
    import dlcore

    run_id = dlcore.start_run(dlcore.DataSpec(name="mnist5k"), dlcore.get_preset("seed-cnn"),
                              dlcore.TrainSpec(epochs=1, max_steps=20, eval_max=200), name="bench CNN")
    run = dlcore.wait(run_id, timeout=300)
    if run.status != "completed":
        raise RuntimeError(f"the benchmark's run {run.status}: {run.error}")
    return run_id


def have_chromium() -> str | None:
    """None when Playwright and Chromium are available, else why not."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


def open_page(page, url: str, title: str, quiet: float = 0.5, timeout: float = 120) -> dict:
    """Load a URL; seconds until its title (<h1>) shows, and until no skeleton/spinner/running indicator
    is left (the quiet time that proves it is not subtracted)."""
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.get_by_role("heading", name=title, level=1, exact=True).wait_for(timeout=timeout * 1000)
    title_s = time.perf_counter() - t0
    calm_since = None
    while True:
        now = time.perf_counter()
        if page.locator(BUSY).count() == 0:
            calm_since = calm_since or now
            if now - calm_since >= quiet:
                break
        else:
            calm_since = None
        if now - t0 > timeout:
            raise TimeoutError(f"{url} was still drawing after {timeout:.0f} s")
        page.wait_for_timeout(50)
    errors = page.locator('[data-testid="stException"]').all_inner_texts()
    return {"title_s": title_s, "drawn_s": calm_since - t0, "errors": errors}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def bare_server(folder: Path):
    """A one-line Streamlit app (``st.title("Bare")``) on a free port: the floor any page pays in a fresh
    browser session on this machine (Streamlit's page, its websocket and one script run)."""
    import os
    import subprocess

    from _server import free_port

    script = Path(folder) / "bare.py"
    script.write_text('import streamlit as st\n\nst.title("Bare")\n')
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=folder, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def wait_http(url: str, proc, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the bare streamlit server exited")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(url)
