"""Click → first metric: seconds from ``dlcore.start_run(...)`` to the run's first metric row in the store.

That is what a user waits for after pressing Train, on a warm server (one that has already started runs).
Measured both ways, in the same process, interleaved:

  warm worker        the default: the store's warm worker (imported once) forks a process for the run
  process per run    DLE_WARM_WORKER=0: a fresh ``python dlcore/train/worker.py`` per run, which imports
                     torch, torch._dynamo and dlcore before it can train (the design before issue 11)

and for a *queued* run (DLE_MAX_CONCURRENT_RUNS=1, one run ahead of it): seconds from the moment the run
ahead ends to the queued run's first row — what a queued run pays when its turn comes. Target: ≤ 1.0 s
for the warm worker's click → first metric. Each run is cancelled once its first row is seen.

The breakdown times what a process per run pays, each part in a fresh process (median of the repeats):
  python         interpreter start-up (python -c pass, wall time)
  import torch   import torch
  import dlcore  the worker's imports after torch (dlcore.train.trainer, dlcore.data)
  torch._dynamo  imported by the optimizer's first step (torch.optim wraps step/zero_grad with it)
  dataset        loading the dataset (torch and dlcore already imported)
  first step     Trainer construction + first optimizer step, everything above already done

    python bench/bench_startup.py [--data mnist-rows] [--model rnn-tiny] [--max-train 256] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, median, save, table  # noqa: I001  (bench/ is the script's folder)

MODES = {"warm worker": "1", "process per run": "0"}


def _proc_seconds(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - t0


def _timed(setup: str, code: str) -> float:
    """Seconds ``code`` takes in a fresh process after ``setup`` ran."""
    script = f"{setup}\nimport time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _specs(args, epochs: int = 1):
    import dlcore

    return (dlcore.DataSpec(name=args.data, max_train=args.max_train), dlcore.get_preset(args.model),
            dlcore.TrainSpec(epochs=epochs, device="cpu"))


def _first_row(store, run_id: str, t0: float, timeout: float = 180.0) -> float:
    import dlcore

    while True:
        if store.metrics(run_id, "step"):
            return time.perf_counter() - t0
        run = dlcore.get_run(run_id, store)
        if run.status not in ("queued", "running") or time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"run {run_id} {run.status} before its first row: {run.error}")
        time.sleep(0.005)


def _stop(store, run_id: str) -> None:
    import dlcore

    dlcore.cancel_run(run_id, store)
    dlcore.wait(run_id, timeout=180, store=store, poll=0.02)


def _click_to_first_row(args, mode: str) -> dict:
    import dlcore

    os.environ["DLE_WARM_WORKER"] = MODES[mode]
    store = dlcore.RunStore()
    t0 = time.perf_counter()
    run_id = dlcore.start_run(*_specs(args), store=store)
    t_started = time.perf_counter() - t0
    first = _first_row(store, run_id, t0)
    _stop(store, run_id)
    return {"start_run_s": t_started, "first_row_s": first}


def _queued_turn_to_first_row(args, mode: str) -> float:
    """A run queued behind another (cap 1): seconds from the end of the run ahead to its own first row."""
    import dlcore

    os.environ["DLE_WARM_WORKER"] = MODES[mode]
    os.environ["DLE_MAX_CONCURRENT_RUNS"] = "1"
    try:
        store = dlcore.RunStore()
        ahead = dlcore.start_run(*_specs(args, epochs=1000), store=store)
        _first_row(store, ahead, time.perf_counter())
        queued = dlcore.start_run(*_specs(args), store=store)
        time.sleep(1.0 if mode == "warm worker" else 6.0)  # a process per run has imported nothing yet: let it wait
        dlcore.cancel_run(ahead, store)
        while dlcore.get_run(ahead, store).status in ("queued", "running"):
            time.sleep(0.005)
        t_free = time.perf_counter()
        first = _first_row(store, queued, t_free)
        _stop(store, queued)
        return first
    finally:
        os.environ.pop("DLE_MAX_CONCURRENT_RUNS", None)


def _first_step_in_process(args) -> float:
    import dlcore

    data, model, train = _specs(args)
    ds = dlcore.load_dataset(data)
    t0 = time.perf_counter()
    t = dlcore.Trainer(model, ds, train.replace(max_steps=1))
    seen = []
    t.add_callback("on_step_end", lambda tr, row: seen.append(time.perf_counter() - t0))
    t.fit()
    return seen[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist-rows")
    p.add_argument("--model", default="rnn-tiny")
    p.add_argument("--max-train", type=int, default=256, help="training examples (0: all)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-part timings of a fresh process")
    p.add_argument("--quick", action="store_true", help="one repeat, no breakdown")
    args = p.parse_args()
    if args.quick:
        args.repeats, args.no_breakdown = 1, True
    os.environ["DLE_DATA_DIR"] = tempfile.mkdtemp(prefix="dle-bench-")  # an empty store; caches stay warm
    os.environ.setdefault("DLE_WARM_WORKER_IDLE_S", "120")
    sys.path.insert(0, str(ROOT))
    import dlcore

    dlcore.configure_threads(role="server")
    for mode in MODES:  # warm-up: the server's own imports, the warm worker, page cache, dataset caches
        _click_to_first_row(args, mode)
    clicks: dict[str, list[dict]] = {m: [] for m in MODES}
    queued: dict[str, list[float]] = {m: [] for m in MODES}
    parts: dict[str, list[float]] = {k: [] for k in ("python", "import torch", "import dlcore", "torch._dynamo",
                                                   "dataset", "first step")}
    for r in range(args.repeats):
        for mode in (list(MODES) if r % 2 == 0 else list(MODES)[::-1]):
            clicks[mode].append(_click_to_first_row(args, mode))
            queued[mode].append(_queued_turn_to_first_row(args, mode))
        if not args.no_breakdown:
            parts["python"].append(_proc_seconds("pass"))
            parts["import torch"].append(_timed("", "import torch"))
            parts["import dlcore"].append(_timed("import torch", "import dlcore.train.trainer, dlcore.data, dlcore.runs"))
            parts["torch._dynamo"].append(_timed("import torch", "import torch._dynamo"))
            parts["dataset"].append(_timed("import torch, dlcore.data as d",
                                           f"d.load_dataset(d.DataSpec(name={args.data!r}, max_train={args.max_train}))"))
            parts["first step"].append(_first_step_in_process(args))
    os.environ.pop("DLE_WARM_WORKER", None)
    summary = {m: {"start_run_s": median([c["start_run_s"] for c in clicks[m]]),
                   "first_row_s": median([c["first_row_s"] for c in clicks[m]]),
                   "queued_turn_to_first_row_s": median(queued[m]), "runs": clicks[m], "queued_all": queued[m]}
               for m in MODES}
    warm = summary["warm worker"]["first_row_s"]
    result = {"command": f"python bench/bench_startup.py --data {args.data} --model {args.model} "
                         f"--max-train {args.max_train} --repeats {args.repeats}",
              "data": args.data, "model": args.model, "max_train": args.max_train, "target_s": 1.0,
              "first_row_s": warm, "modes": summary, "load_avg_1m": os.getloadavg()[0],
              "breakdown_s": {k: median(v) for k, v in parts.items() if v}}
    print(f"{args.model} on {args.data} ({args.max_train or 'all'} examples), CPU: median of {args.repeats}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(table(["", "start_run() returns", "click → first metric", "queued: turn → first metric"],
                [[m, s["start_run_s"], s["first_row_s"], s["queued_turn_to_first_row_s"]] for m, s in summary.items()]))
    if result["breakdown_s"]:
        print("\nwhat a process per run pays before its first step (each in a fresh process):")
        print(table(["part", "seconds"], [[k, v] for k, v in result["breakdown_s"].items()]))
    print("warm worker: " + ("meets the 1.0 s target" if warm <= 1.0 else f"misses the 1.0 s target by {warm - 1.0:.2f} s"))
    path = save("startup", result, latest=not args.quick)
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
