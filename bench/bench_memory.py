"""Server memory: the RSS of ``streamlit run app.py`` idle after start, and after 5 and 20 browser sessions.

A real server with one finished run (the tutorial CNN). Each session is a Chromium context that opens Home,
goes to Train and then to an inspection page (Filters & feature maps) through the sidebar, and stays open.
Measured: the server process's RSS (VmRSS) right after start (no session yet: nothing imported), after the
first session (everything a session needs is loaded: torch, the model cache), after 5 and after 20; the
cost per extra session is (RSS at 20 − RSS at 5) / 15. Targets: idle ≤ 700 MB, ≤ 50 MB per extra session
(cached models count once). The warm worker (a process of its own) is reported beside it.

    python bench/bench_memory.py [--sessions 20]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _app import CHROMIUM, CHROMIUM_ARGS, WIDTH, AppServer, app_pages, finished_run, have_chromium, open_page, rss_bytes
from _common import ROOT, save, table  # noqa: I001

MB = 2**20
HEADING = {path: (label, heading) for path, label, heading in app_pages()}
ROUTE = [(*HEADING[p], p) for p in ("/train", "/filters")]  # (navigation label, <h1>, path)


def _session(browser, url: str):
    """Open Home, then Train and Filters through the sidebar; returns the context (left open)."""
    ctx = browser.new_context(viewport={"width": WIDTH, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(180_000)
    open_page(page, url + "/", HEADING["/"][1], timeout=300)
    for link, title, path in ROUTE:
        page.locator('[data-testid="stSidebarNav"]').get_by_text(link, exact=True).click()
        page.wait_for_url(f"**{path}*")
        page.get_by_role("heading", name=title, level=1, exact=True).wait_for()
        page.wait_for_timeout(300)
        while page.locator('[data-testid="stSkeleton"], [data-testid="stSpinner"], '
                           '[data-testid="stStatusWidget"]').count():
            page.wait_for_timeout(100)
    return ctx


def _warm_worker_rss(data_dir: Path) -> int | None:
    out = subprocess.run(["pgrep", "-f", f"worker.py --serve --root {data_dir}"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    return sum(rss_bytes(p) for p in pids) if pids else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="5 sessions")
    args = p.parse_args()
    if args.quick:
        args.sessions = 5
    sys.path.insert(0, str(ROOT))
    why = have_chromium()
    if why:
        print(f"bench_memory: skipped — {why}")
        return 0
    from playwright.sync_api import sync_playwright

    data_dir = Path(tempfile.mkdtemp(prefix="dle-bench-memory-"))
    os.environ.setdefault("DLE_WARM_WORKER_IDLE_S", "300")
    finished_run(data_dir)
    marks = sorted({1, min(5, args.sessions), args.sessions})
    points: list[dict] = []
    server = AppServer(data_dir)
    try:
        server.wait_ready(timeout=120)
        time.sleep(2.0)
        points.append({"sessions": 0, "rss_bytes": rss_bytes(server.proc.pid)})
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            contexts = []
            for i in range(1, args.sessions + 1):
                contexts.append(_session(browser, server.url))
                if i in marks:
                    time.sleep(2.0)
                    points.append({"sessions": i, "rss_bytes": rss_bytes(server.proc.pid)})
                    print(f"  {i:2d} sessions: {points[-1]['rss_bytes'] / MB:,.0f} MB", flush=True)
            warm = _warm_worker_rss(data_dir)
            for ctx in contexts:
                ctx.close()
            browser.close()
    finally:
        server.stop()
    by = {pt["sessions"]: pt["rss_bytes"] for pt in points}
    lo, hi = min(5, args.sessions), args.sessions
    per = (by[hi] - by[lo]) / (hi - lo) if hi > lo else None
    rows = [[f"{pt['sessions']} session(s)" if pt["sessions"] else "idle after start", pt["rss_bytes"] / MB]
            for pt in points]
    print(f"server RSS (streamlit run app.py), load average {os.getloadavg()[0]:.1f}")
    print(table(["", "MB"], rows))
    if per is not None:
        print(f"per extra session ({lo} → {hi}): {per / MB:.1f} MB (target ≤ 50)")
    after_one = by.get(1, 0)
    print(f"idle server after its first session: {after_one / MB:,.0f} MB (target ≤ 700)")
    if warm:
        print(f"the warm worker (a process of its own, shared by every run): {warm / MB:,.0f} MB")
    path = save("memory", {"command": f"python bench/bench_memory.py --sessions {args.sessions}",
                           "points": points, "per_session_bytes": per, "warm_worker_rss_bytes": warm,
                           "targets": {"idle_mb": 700, "per_session_mb": 50}}, latest=not args.quick)
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
