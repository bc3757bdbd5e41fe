"""Pages in a second: each page's first render in a fresh browser session on a warm server (Chromium).

A real ``streamlit run app.py`` with one finished run (the tutorial CNN); a first visitor warms the server
(its imports, caches). Then, page by page, a new browser context (a new Streamlit session) opens the page's
URL; timed are the moment its title shows and the moment nothing on it is still drawing (no skeleton,
spinner or running indicator; the 0.5 s of quiet that proves it is not counted). Median of the rounds,
pages interleaved. Target: every page ≤ 1.5 s on 2 cores.

Beside them, the floor: a one-line Streamlit app (``st.title``) on its own server, opened the same way.

Also timed: listing the runs as the sidebar does, with 200 runs in the store, by the query
(``dlcore.list_runs(status=ACTIVE)``) and the way it was before issue 11 (every row decoded, filtered in
Python).

    python bench/bench_pages.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _app import (CHROMIUM, CHROMIUM_ARGS, PAGES, WIDTH, AppServer, bare_server, finished_run, have_chromium,
                  open_page, wait_http)
from _common import ROOT, median, save, table  # noqa: I001


def _listing(n: int = 200, repeats: int = 20) -> dict:
    """Seconds to list the active runs among n stored ones: the query against decoding every row."""
    import dlcore
    from dlcore.runs.store import RunStore
    from dlcore.specs import DataSpec, TrainSpec

    store = RunStore(tempfile.mkdtemp(prefix="dle-bench-list-"))
    model = dlcore.get_preset("cnn-tiny").replace(padding="same")
    ids = [store.create(DataSpec(name="digits", seed=i % 20), model, TrainSpec(seed=i)) for i in range(n)]
    for run_id in ids[2:]:
        store.update(run_id, status="completed")

    def before():  # the method before issue 11: decode every row, filter in Python
        with store._connect() as con:
            rows = con.execute("SELECT * FROM runs ORDER BY created DESC").fetchall()
        return [r for r in (_decode_all(row) for row in rows) if r["status"] in ("queued", "running")]

    def query():
        return dlcore.list_runs(store, status=("queued", "running"))

    out = {}
    for name, fn in (("decode every run", before), ("query (list_runs(status=...))", query)):
        fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        out[name] = (time.perf_counter() - t0) / repeats
    return out


def _decode_all(row) -> dict:
    import json

    from dlcore.specs import DataSpec, TrainSpec

    return {"status": row["status"], "data": DataSpec.from_json(row["data_spec"]),
            "train": TrainSpec.from_json(row["train_spec"]), "model": json.loads(row["model_spec"])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one round")
    p.add_argument("--server-threads", choices=("app", "rule"), default="app",
                   help="app: whatever app.py sets; rule: start the server with the environment that "
                        "dlcore.configure_threads(role='server') sets before torch loads")
    args = p.parse_args()
    if args.quick:
        args.rounds = 1
    sys.path.insert(0, str(ROOT))
    listing = _listing()
    why = have_chromium()
    if why:
        print(f"bench_pages: page renders skipped — {why}")
    data_dir = Path(tempfile.mkdtemp(prefix="dle-bench-pages-"))
    os.environ.setdefault("DLE_WARM_WORKER_IDLE_S", "120")
    if args.server_threads == "rule":
        from dlcore.config import thread_env

        os.environ.update(thread_env("server"))  # inherited by the server (and by this process's runs)
    times: dict[str, list[dict]] = {path: [] for path, _ in PAGES}
    baseline: list[dict] = []  # a one-line Streamlit app: the floor of any first render here
    if not why:
        from playwright.sync_api import sync_playwright

        run_id = finished_run(data_dir)
        server = AppServer(data_dir)
        try:
            server.wait_ready(timeout=120)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for path, title in PAGES:  # warm: the first visitor pays the server's imports and caches
                    ctx = browser.new_context(viewport={"width": WIDTH, "height": 900})
                    open_page(ctx.new_page(), server.url + path, title, timeout=300)
                    ctx.close()
                bare, bare_url = bare_server(data_dir)
                try:
                    wait_http(bare_url, bare)
                    ctx = browser.new_context(viewport={"width": WIDTH, "height": 900})
                    open_page(ctx.new_page(), bare_url + "/", "Bare", timeout=300)  # warm
                    ctx.close()
                    for r in range(args.rounds):
                        for path, title in (PAGES if r % 2 == 0 else PAGES[::-1]):
                            ctx = browser.new_context(viewport={"width": WIDTH, "height": 900})
                            times[path].append(open_page(ctx.new_page(), server.url + path, title))
                            ctx.close()
                        ctx = browser.new_context(viewport={"width": WIDTH, "height": 900})
                        baseline.append(open_page(ctx.new_page(), bare_url + "/", "Bare"))
                        ctx.close()
                finally:
                    bare.terminate()
                    bare.wait(10)
                browser.close()
        finally:
            server.stop()
    rows, pages = [], []
    for path, title in PAGES:
        if not times[path]:
            continue
        drawn = median([t["drawn_s"] for t in times[path]])
        shown = median([t["title_s"] for t in times[path]])
        errors = sorted({e for t in times[path] for e in t["errors"]})
        pages.append({"path": path, "title": title, "title_s": shown, "drawn_s": drawn,
                      "all_drawn_s": [t["drawn_s"] for t in times[path]], "errors": errors})
        rows.append([f"{title} ({path})", shown, drawn, "yes" if drawn <= 1.5 else "NO", "; ".join(errors)[:60] or "-"])
    if baseline:
        rows.append(["(bare Streamlit app: st.title only)", median([t["title_s"] for t in baseline]),
                     median([t["drawn_s"] for t in baseline]), "-", "-"])
    if rows:
        print(f"first render in a fresh session on a warm server (server threads: {args.server_threads}), "
              f"median of {args.rounds} round(s), "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(table(["page", "title shown s", "drawn s", "≤ 1.5 s", "errors"], rows))
    print(f"\nlisting the active runs among 200 (the sidebar, every rerun):")
    print(table(["method", "ms"], [[k, v * 1000] for k, v in listing.items()]))
    command = f"python bench/bench_pages.py --rounds {args.rounds} --server-threads {args.server_threads}"
    path = save("pages", {"command": command, "server_threads": args.server_threads, "pages": pages,
                          "skipped": why, "listing_s": listing, "target_s": 1.5,
                          "bare_streamlit_s": median([t["drawn_s"] for t in baseline]) if baseline else None}, latest=not args.quick)
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
