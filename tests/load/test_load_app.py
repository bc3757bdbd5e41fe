"""Browser-level load test (opt-in: ``DLE_LOAD_APP=1``): 20 simultaneous sessions in headless Chromium
against ONE ``streamlit run app.py`` server on 127.0.0.1, each starting a tiny run from the Train page.

Every session gets its own run in its URL and on its page, every run completes, at most
DLE_MAX_CONCURRENT_RUNS (2) train at once, and the latencies (page ready, click → run id, run
complete; p50/p95) are printed. It costs about as much CPU as 20 short trainings plus 20 browser tabs,
so it is not part of the default suite; tests/hostile/test_hostile_load.py covers the same guarantees
through the public API in every run. Only 127.0.0.1 is contacted.

    DLE_LOAD_APP=1 python -m pytest tests/load -q -s
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = int(os.environ.get("DLE_LOAD_SESSIONS", 20))
CAP = 2
DEADLINE_S = 240

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("DLE_LOAD_APP") != "1", reason="opt-in: set DLE_LOAD_APP=1"),
              pytest.mark.skipif(not shutil.which("chromium"), reason="needs /usr/bin/chromium")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _p(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2) if len(values) > 1 else values[0]


async def _session(browser, url: str, i: int, out: list) -> None:
    ctx = await browser.new_context()
    ctx.set_default_timeout(DEADLINE_S * 1000)  # twenty tabs on two cores: actions wait for the page, not a clock
    page = await ctx.new_page()
    try:
        t0, t0_wall = time.perf_counter(), time.time()
        await page.goto(url + "/train", wait_until="domcontentloaded", timeout=DEADLINE_S * 1000)
        form, opener = page.locator("[data-testid='stForm']"), page.get_by_text("Start a new run")
        await opener.wait_for(timeout=DEADLINE_S * 1000)
        if not await form.is_visible():  # collapsed once other sessions' runs exist
            await opener.click()
        await form.wait_for(timeout=DEADLINE_S * 1000)
        await page.get_by_role("spinbutton", name="epochs", exact=True).fill("1")
        await page.get_by_text("More settings").click()
        await page.get_by_role("spinbutton", name="max steps", exact=True).fill("3")
        await page.get_by_role("textbox", name="Run name (optional)").fill(f"session {i}")
        t1 = time.perf_counter()
        await page.get_by_role("button", name="Start training").click()
        await page.wait_for_url("**run=*", timeout=DEADLINE_S * 1000)
        run_id = page.url.split("run=")[1].split("&")[0]
        await page.get_by_text(run_id).first.wait_for(timeout=DEADLINE_S * 1000)  # its own run on its page
        out.append({"i": i, "run_id": run_id, "ready_s": t1 - t0, "submit_s": time.perf_counter() - t1, "t0": t0,
                    "t0_wall": t0_wall})
    finally:
        await ctx.close()


def test_twenty_browser_sessions_on_one_server(tmp_path):
    from playwright.async_api import async_playwright

    sys.path.insert(0, str(ROOT))
    data = tmp_path / "data"
    port = _free_port()
    env = {**os.environ, "DLE_DATA_DIR": str(data), "DLE_MAX_CONCURRENT_RUNS": str(CAP)}
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
                               "--server.port", str(port), "--server.headless", "true",
                               "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    started = time.time()
    sessions: list[dict] = []
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                assert time.time() - started < 60 and server.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(0.2)

        async def drive():
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
                await asyncio.gather(*(_session(browser, url, i, sessions) for i in range(SESSIONS)))
                await browser.close()

        asyncio.run(asyncio.wait_for(drive(), DEADLINE_S))
        os.environ["DLE_DATA_DIR"] = str(data)  # read the server's store (conftest restores it afterwards)
        import dlcore

        store = dlcore.RunStore(data)
        runs = {r.id: r for r in (dlcore.wait(s["run_id"], timeout=DEADLINE_S, store=store) for s in sessions)}
        done = time.perf_counter()
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    assert len(sessions) == SESSIONS and len(runs) == SESSIONS  # one distinct run per session
    assert all(r.status == "completed" for r in runs.values()), {i: r.error for i, r in runs.items()}
    events = sorted([(r.started, 1) for r in runs.values()] + [(r.finished, -1) for r in runs.values()])
    running = peak = 0
    for _, d in events:
        running += d
        peak = max(peak, running)
    assert peak <= CAP
    assert store.integrity_ok()
    complete = [runs[s["run_id"]].finished - s["t0_wall"] for s in sessions]
    stats = {"sessions": SESSIONS, "cap": CAP, "wall_s": round(time.time() - started, 1),
             "page_ready_p50_s": _p([s["ready_s"] for s in sessions], 50),
             "page_ready_p95_s": _p([s["ready_s"] for s in sessions], 95),
             "submit_p50_s": _p([s["submit_s"] for s in sessions], 50),
             "submit_p95_s": _p([s["submit_s"] for s in sessions], 95),
             "complete_p50_s": _p(complete, 50), "complete_p95_s": _p(complete, 95),
             "all_done_s": round(done - min(s["t0"] for s in sessions), 1)}
    print("app load:", json.dumps(stats))
