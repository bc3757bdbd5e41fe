"""Shared helpers of the benchmarks: machine description, tables, JSON results, interleaved timing."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def table(headers: list[str], rows: list[list]) -> str:
    """A plain-text table with right-aligned numbers."""
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    return "-" if v is None else str(v)


def save(name: str, result: dict, latest: bool = True) -> Path:
    """Write ``bench/results/<name>-<time>.json`` and, unless ``latest`` is False (smoke runs),
    ``latest-<name>.json``, the one kept in git and quoted in bench/README.md. Returns the file written last."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"bench": name, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **result}
    text = json.dumps(result, indent=1, default=str)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(text)
    if latest:
        path = RESULTS / f"latest-{name}.json"
        path.write_text(text)
    return path


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def interleaved(fns: dict, repeats: int) -> dict[str, list]:
    """Run each named callable ``repeats`` times, alternating the order every round (ABBA...), so drift in
    machine load hits every contender alike. Returns name -> list of results."""
    out: dict[str, list] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            out[name].append(fns[name]())
    return out


@contextlib.contextmanager
def cpu_hogs(n: int):
    """``n`` CPU-bound processes for the duration of the block, each in a session of its own, as independent
    programs are: with the kernel's autogroup scheduling (sched_autogroup_enabled=1 here) CPU time is shared
    between sessions first, so hogs sharing the benchmark's session would compete with a job (own session)
    less than with a CLI child (same session)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(n)]
    try:
        if n:
            time.sleep(0.5)  # let them reach full speed
        yield
    finally:
        for h in hogs:
            h.kill()
            h.wait()
