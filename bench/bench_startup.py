"""App responsiveness: seconds from ``dlcore.start_run(...)`` to the first metric row in the run store.

That is what a user waits for after pressing Train: spawning the worker process (python + torch import),
loading the dataset, building the model, and the first optimizer step (the trainer reports step 1 at
once). Target: ≤ 2 s on a warm machine. The run is cancelled as soon as its first row is seen.

The breakdown times the parts, each in a fresh process (median of the repeats):
  python         interpreter start-up (python -c pass, wall time)
  import torch   import torch
  import dlcore  the worker's imports after torch (dlcore.train.trainer, dlcore.data)
  torch._dynamo  imported by the optimizer's first step (torch.optim wraps step/zero_grad with it)
  dataset        loading the dataset (torch and dlcore already imported)
  first step     Trainer construction + first optimizer step, everything above already done

    python bench/bench_startup.py [--data mnist5k] [--model seed-cnn] [--repeats 3]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

from _common import ROOT, median, save, table  # noqa: I001  (bench/ is the script's folder)


def _proc_seconds(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - t0


def _timed(setup: str, code: str) -> float:
    """Seconds ``code`` takes in a fresh process after ``setup`` ran."""
    script = f"{setup}\nimport time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _time_to_first_row(data: str, model: str, timeout: float = 120.0) -> dict:
    import dlcore

    store = dlcore.RunStore()
    t0 = time.perf_counter()
    run_id = dlcore.start_run(dlcore.DataSpec(name=data), dlcore.get_preset(model), dlcore.TrainSpec(epochs=1),
                              store=store)
    t_started = time.perf_counter() - t0
    while True:
        rows = store.metrics(run_id, "step")
        if rows:
            first = time.perf_counter() - t0
            break
        run = dlcore.get_run(run_id, store)
        if run.status not in ("queued", "running") or time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"run {run_id} {run.status} before its first row: {run.error}")
        time.sleep(0.01)
    dlcore.cancel_run(run_id, store)
    dlcore.wait(run_id, timeout=timeout, store=store)
    return {"start_run_s": t_started, "first_row_s": first, "first_row_step": rows[0]["step"]}


def _first_step_in_process(data: str, model: str) -> float:
    import dlcore

    ds = dlcore.load_dataset(dlcore.DataSpec(name=data))
    t0 = time.perf_counter()
    t = dlcore.Trainer(dlcore.get_preset(model), ds, dlcore.TrainSpec(epochs=1, max_steps=1))
    seen = []
    t.add_callback("on_step_end", lambda tr, row: seen.append(time.perf_counter() - t0))
    t.fit()
    return seen[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--model", default="seed-cnn")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one repeat")
    args = p.parse_args()
    if args.quick:
        args.repeats = 1
    import os

    os.environ["DLE_DATA_DIR"] = tempfile.mkdtemp(prefix="dle-bench-")  # an empty store; caches stay warm
    sys.path.insert(0, str(ROOT))
    parts: dict[str, list[float]] = {k: [] for k in ("python", "import torch", "import dlcore", "torch._dynamo",
                                                   "dataset", "first step")}
    _time_to_first_row(args.data, args.model)  # warm-up: page cache, any on-disk dataset cache
    runs = []
    for _ in range(args.repeats):
        runs.append(_time_to_first_row(args.data, args.model))
        parts["python"].append(_proc_seconds("pass"))
        parts["import torch"].append(_timed("", "import torch"))
        parts["import dlcore"].append(_timed("import torch", "import dlcore.train.trainer, dlcore.data, dlcore.runs"))
        parts["torch._dynamo"].append(_timed("import torch", "import torch._dynamo"))
        parts["dataset"].append(_timed("import torch, dlcore.data as d",
                                       f"d.load_dataset(d.DataSpec(name={args.data!r}))"))
        parts["first step"].append(_first_step_in_process(args.data, args.model))
    first = median([r["first_row_s"] for r in runs])
    result = {"command": f"python bench/bench_startup.py --data {args.data} --model {args.model} "
                         f"--repeats {args.repeats}",
              "data": args.data, "model": args.model, "target_s": 2.0, "first_row_s": first,
              "start_run_s": median([r["start_run_s"] for r in runs]), "runs": runs,
              "breakdown_s": {k: median(v) for k, v in parts.items()}}
    print(f"{args.model} on {args.data}: start_run → first metric row, median of {args.repeats} (target ≤ 2 s)")
    print(table(["part", "seconds"], [["start_run() returns", result["start_run_s"]],
                                      ["first metric row", first]] +
                [[f"  {k}", v] for k, v in result["breakdown_s"].items()]))
    print("meets the 2 s target" if first <= 2.0 else f"misses the 2 s target by {first - 2.0:.2f} s")
    path = save("startup", result, latest=not args.quick)
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
