"""Run the benchmarks (bench/bench_*.py) one after another; each prints its table and writes
bench/results/latest-<name>.json. Extra flags (e.g. --quick) go to every benchmark that declares them.
At the end, a summary of the classroom figures: contention ratios, click → first metric, the page table
and the memory table.

    python bench/run_all.py                                  # every benchmark (long on a 2-core CPU)
    python bench/run_all.py --quick                          # one short round of each
    python bench/run_all.py --only contention,startup,pages,memory   # just the classroom figures
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _newest(name: str, since: float) -> dict | None:
    files = [p for p in RESULTS.glob(f"{name}-*.json")] + [RESULTS / f"latest-{name}.json"]
    files = [p for p in files if p.exists() and p.stat().st_mtime >= since]
    return json.loads(max(files, key=lambda p: p.stat().st_mtime).read_text()) if files else None


def summary(since: float) -> str:
    """The four classroom tables from the results written since ``since`` (absent ones are said so)."""
    out = []
    c = _newest("contention", since)
    if c:
        out.append("contention (seed-cnn on mnist5k, batch 32, samples/s; hogs / idle):")
        out += [f"  {x['setting']:10s} idle {x['idle_samples_per_s']:8,.0f}   2 hogs {x['hogs_samples_per_s']:8,.0f}"
                f"   {x['ratio_hogs_over_idle']:.2f}x" for x in c["cases"]]
        out.append(f"  against Keras: {c['keras']}")
    s = _newest("startup", since)
    if s:
        out.append("click → first metric (s):")
        out += [f"  {mode:16s} {m['first_row_s']:6.2f}   queued run, turn → first metric {m['queued_turn_to_first_row_s']:6.2f}"
                for mode, m in s["modes"].items()]
    p = _newest("pages", since)
    if p:
        out.append("first render of each page in a fresh session (s, target 1.5):")
        out += [f"  {x['title']:24s} {x['drawn_s']:5.2f}" for x in p["pages"]] or [f"  skipped: {p.get('skipped')}"]
        out += [f"  list runs (200 stored), {k}: {v * 1000:.1f} ms" for k, v in p["listing_s"].items()]
    m = _newest("memory", since)
    if m:
        out.append("server RSS (MB):")
        out += [f"  {x['sessions']:2d} sessions {x['rss_bytes'] / 2**20:8,.0f}" for x in m["points"]]
        if m.get("per_session_bytes") is not None:
            out.append(f"  per extra session {m['per_session_bytes'] / 2**20:.1f}")
    return "\n".join(out) or "(no classroom figures were written by this run)"


def main(argv: list[str]) -> int:
    only = None
    if "--only" in argv:
        i = argv.index("--only")
        only = set(argv[i + 1].split(","))
        argv = argv[:i] + argv[i + 2:]
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in only]
    t_start = time.time()
    failed = []
    for script in scripts:
        source = script.read_text()
        args = [a for a in argv if not a.startswith("--") or f'"{a.split("=")[0]}"' in source]
        skipped = sorted(set(argv) - set(args))
        print(f"\n=== {script.name} {' '.join(args)}" + (f"  (does not take {' '.join(skipped)})" if skipped else ""),
              flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(script), *args], cwd=HERE.parent).returncode
        print(f"=== {script.name}: {'ok' if rc == 0 else f'failed (exit {rc})'} in {time.perf_counter() - t0:.0f} s")
        if rc:
            failed.append(script.name)
    print("\n=== summary\n" + summary(t_start))
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
