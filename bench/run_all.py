"""Run every benchmark (bench/bench_*.py) one after another; each prints its table and writes
bench/results/latest-<name>.json. Extra flags (e.g. --quick) go to every benchmark that declares them.

    python bench/run_all.py            # full runs (several minutes on a 2-core CPU)
    python bench/run_all.py --quick    # one short round of each
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
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
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
