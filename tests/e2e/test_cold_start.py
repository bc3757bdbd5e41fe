"""A freshly started server receives ten browser sessions at the same moment, on the root URL and on deep
links (``/train?run=…``, ``/runs``, ``/attention``, …). Each renders its page under app.py's navigation —
the "Explorer" and "Look inside" sections, never Streamlit's file-name menu, not even for a moment while
loading — with no exception box and no dialog (a ``pages/`` folder next to app.py would put the first
deep-link visitors in Streamlit's legacy mode: "Page not found" over the right page).

The sidebar's navigation is recorded by a MutationObserver installed before the page's own scripts run, so
a menu that is drawn and replaced between two polls is still seen.
"""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from _server import CHROMIUM, CHROMIUM_ARGS, WIDTH, AppServer

import dlcore

pytestmark = pytest.mark.e2e
DEADLINE_S = 90
# what app.py's st.navigation declares (sections in order, page titles in order): a page added there is expected
_APP = (Path(__file__).resolve().parents[2] / "app.py").read_text()
SECTIONS = re.findall(r'^\s*"([^"]+)": \[', _APP, flags=re.M)
TITLES = re.findall(r'st\.Page\([^)]*?title="([^"]+)"', _APP, flags=re.S)
assert SECTIONS[0] == "Explorer" and "Look inside" in SECTIONS and TITLES[:2] == ["Home", "Data"]

# every change of the sidebar navigation: its section headers and its links' labels (icons left out)
RECORD_NAV = """
window.__nav = [];
const seen = new Set();
const label = (el) => {
  const copy = el.cloneNode(true);
  copy.querySelectorAll('[data-testid="stIconMaterial"]').forEach((icon) => icon.remove());
  return copy.textContent.trim();
};
const record = () => {
  const nav = document.querySelector('[data-testid="stSidebarNav"]');
  if (!nav) return;
  const headers = [...nav.querySelectorAll('[data-testid="stNavSectionHeader"]')].map(label);
  const links = [...nav.querySelectorAll('[data-testid="stSidebarNavLink"]')].map(label);
  const key = JSON.stringify([headers, links]);
  if (!seen.has(key)) { seen.add(key); window.__nav.push({headers, links}); }
};
new MutationObserver(record).observe(document, {childList: true, subtree: true, characterData: true});
"""
BUSY = '[data-testid="stSkeleton"], [data-testid="stSpinner"], [data-testid="stStatusWidget"]'


@pytest.fixture
def finished_run(tmp_path, monkeypatch) -> tuple[Path, str]:
    """A data folder holding one completed run (a tiny CNN, a few steps on the 8×8 digits)."""
    monkeypatch.setenv("DLE_DATA_DIR", str(tmp_path))
    run_id = dlcore.start_run(dlcore.DataSpec(name="digits"), dlcore.get_preset("cnn-tiny").replace(padding="same"),
                              dlcore.TrainSpec(epochs=1, max_steps=5), name="cold-start CNN")
    assert dlcore.wait(run_id, timeout=120).status == "completed"
    return tmp_path, run_id


async def _open(page, url: str, title: str, run_id: str | None) -> dict:
    """Load one URL, wait until its page has drawn and stayed quiet for a second, and report what it showed."""
    t0 = time.perf_counter()
    await page.goto(url, wait_until="commit")
    await page.get_by_role("heading", name=title, level=1, exact=True).wait_for()
    drawn = time.perf_counter() - t0
    calm_since = None
    while calm_since is None or time.perf_counter() - calm_since < 1.0:
        busy = await page.locator(BUSY).count()
        calm_since = None if busy else (calm_since or time.perf_counter())
        await page.wait_for_timeout(100)
    return {"url": url, "drawn_s": round(drawn, 1), "settled_s": round(time.perf_counter() - t0, 1),
            "nav": await page.evaluate("window.__nav"),
            "errors": await page.locator('[data-testid="stException"]').all_inner_texts(),
            "dialogs": await page.locator('[role="dialog"]').all_inner_texts(),
            "shows_run": run_id is None or await page.get_by_text(run_id).count() > 0}


def test_ten_first_sessions_on_a_fresh_server_get_the_real_navigation(finished_run):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian chromium at {CHROMIUM}")
    from playwright.async_api import async_playwright

    data, run_id = finished_run
    visits = [("/", "Deep Learning Explorer", None), (f"/train?run={run_id}", "Train", run_id),
              ("/runs", "Runs", None), ("/attention", "Attention", None), (f"/train?run={run_id}", "Train", run_id),
              ("/filters", "Filters & feature maps", None), ("/internals", "Internals", None),
              ("/data", "Data", None), (f"/runs?run={run_id}", "Runs", run_id), ("/explain", "Explain a prediction", None)]
    server = AppServer(data)
    try:
        server.wait_ready()  # the health check runs no script: the first sessions below are the server's first

        async def drive() -> list[dict]:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                pages = []
                for _ in visits:  # open every tab first, so that the ten requests leave together
                    ctx = await browser.new_context(viewport={"width": WIDTH, "height": 900})
                    ctx.set_default_timeout(DEADLINE_S * 1000)
                    await ctx.add_init_script(RECORD_NAV)
                    pages.append(await ctx.new_page())
                results = await asyncio.gather(*(_open(page, server.url + url, title, rid)
                                                 for page, (url, title, rid) in zip(pages, visits)))
                await browser.close()
                return results

        results = asyncio.run(asyncio.wait_for(drive(), DEADLINE_S))
    finally:
        server.stop()
    for r in results:
        assert not r["errors"], (r["url"], r["errors"])
        assert not r["dialogs"], (r["url"], r["dialogs"])  # e.g. "Page not found" over the right page
        assert r["shows_run"], r["url"]
        assert r["nav"], (r["url"], "no navigation was drawn")
        for nav in r["nav"]:  # every state the menu went through while the page loaded
            assert nav["headers"] == SECTIONS and nav["links"] == TITLES, (r["url"], nav)
    print("cold start, seconds to the title and to a quiet page:",
          [(r["url"].removeprefix(server.url), r["drawn_s"], r["settled_s"]) for r in results])
