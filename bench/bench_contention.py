"""Training beside other busy processes: samples/s of the seed CNN idle and beside two CPU hogs.

A classroom server is never idle. This benchmark trains seed-cnn for one epoch of mnist5k (batch 32, CPU,
the command of issue 11: ``python -m dlcore train --data mnist5k --model seed-cnn --epochs 1 --batch-size
32 --device cpu --json``), each time in a fresh process, under these thread settings:

  default      torch's own: one OpenMP thread per core, spinning while it waits (no OMP_* variables)
  passive-1    OMP_WAIT_POLICY=PASSIVE, one thread
  passive-2    OMP_WAIT_POLICY=PASSIVE, two threads
  rule         what a training process gets (``dlcore.config.thread_env("train")``: see the rule there)
  job          the same rule through the job system: ``dlcore.start_run`` on the warm worker

— first with nothing of ours beside it ("idle"), then beside two ``python -c "while True: pass"``
processes ("2 hogs"). Rounds are interleaved (ABBA). Printed: samples/s (training only, from the run's
summary), the ratio hogs/idle of each setting (target for the rule: ≥ 0.4; three busy processes on 2 cores
leave a one-thread process 2/3 of a core, a two-thread one half of its idle speed), and each setting
against the default under hogs. Every process (hogs, training) runs in a session of its own, as the
job system starts runs, so the kernel's autogroup scheduler treats them alike. Against Keras under the
same load: only when tensorflow is installed (else: skipped).

    python bench/bench_contention.py [--repeats 2] [--settings default,rule,job] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, cpu_hogs, median, save, table  # noqa: I001  (bench/ is the script's folder)

SETTINGS = ("default", "passive-1", "passive-2", "rule", "job")
_OMP = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def _env(setting: str, data_dir: str) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from dlcore.config import thread_env

    env = {k: v for k, v in os.environ.items() if k not in _OMP}
    env["DLE_DATA_DIR"] = data_dir
    env["PYTHONPATH"] = str(ROOT)
    if setting.startswith("passive-"):
        n = setting.split("-")[1]
        env.update(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
    elif setting == "rule":
        env.update(thread_env("train"))
    return env


def _cli(setting: str, data_dir: str, args) -> dict:
    cmd = [sys.executable, "-m", "dlcore", "train", "--data", "mnist5k", "--model", "seed-cnn", "--epochs", "1",
           "--batch-size", "32", "--device", "cpu", "--json", "--quiet"]
    if args.max_steps:
        cmd += ["--max-steps", str(args.max_steps)]
    out = subprocess.run(cmd, env=_env(setting, data_dir), cwd=ROOT, capture_output=True, text=True, timeout=900,
                         start_new_session=True)  # like a job: see _with_hogs
    if out.returncode:
        raise RuntimeError(f"{setting}: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"samples_per_s": result["samples_per_s"], "test_accuracy": result.get("test_accuracy")}


def _job(data_dir: str, args) -> dict:
    """The same training through dlcore.start_run (the warm worker of this benchmark's store)."""
    import dlcore

    store = dlcore.RunStore(data_dir)
    train = dlcore.TrainSpec(epochs=1, batch_size=32, device="cpu", max_steps=args.max_steps or 0)
    run_id = dlcore.start_run(dlcore.DataSpec(name="mnist5k"), dlcore.get_preset("seed-cnn"), train, store=store)
    run = dlcore.wait(run_id, timeout=900, store=store)
    if run.status != "completed":
        raise RuntimeError(f"job: {run.status}: {run.error}")
    return {"samples_per_s": run.summary["samples_per_s"], "test_accuracy": run.summary.get("test_accuracy")}


def _with_hogs(n: int, fn):
    with cpu_hogs(n):
        return fn()


def _keras_ratio(args) -> str:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return "skipped — tensorflow is not installed (pip install tensorflow-cpu, then bench/bench_keras.py beside hogs)"
    return "tensorflow is installed: run `python bench/bench_keras.py --threads 0 --hogs 2 --epochs 1`"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--settings", default="default,passive-1,passive-2,rule,job")
    p.add_argument("--hogs", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=0, help="stop each run after this many steps (0: the epoch)")
    p.add_argument("--quick", action="store_true", help="one round of default, rule and job, 60 steps")
    args = p.parse_args()
    if args.quick:
        args.repeats, args.settings, args.max_steps = 1, "default,rule,job", 60
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    bad = set(settings) - set(SETTINGS)
    if bad:
        p.error(f"unknown settings {sorted(bad)}; choose from {', '.join(SETTINGS)}")
    data_dir = tempfile.mkdtemp(prefix="dle-bench-contention-")
    sys.path.insert(0, str(ROOT))
    from dlcore.config import thread_plan

    plan = thread_plan()
    os.environ["DLE_DATA_DIR"] = data_dir
    if "job" in settings:
        _job(data_dir, argparse.Namespace(max_steps=1))  # start the warm worker (its imports are not timed)
    samples: dict[tuple[str, str], list[float]] = {}
    loads: list[float] = []
    for r in range(args.repeats):
        order = settings if r % 2 == 0 else settings[::-1]
        for setting in order:
            run = (lambda s=setting: _job(data_dir, args)) if setting == "job" else \
                (lambda s=setting: _cli(s, data_dir, args))
            for condition in (("idle", "hogs") if r % 2 == 0 else ("hogs", "idle")):
                loads.append(os.getloadavg()[0])
                res = run() if condition == "idle" else _with_hogs(args.hogs, run)
                samples.setdefault((setting, condition), []).append(res["samples_per_s"])
                print(f"  round {r + 1} {setting:9s} {condition:5s} {res['samples_per_s']:8,.0f} samples/s "
                      f"(load {loads[-1]:.1f})", flush=True)
    rows, cases = [], []
    default_hogs = median(samples.get(("default", "hogs"), []))
    for setting in settings:
        idle, hogs = median(samples[(setting, "idle")]), median(samples[(setting, "hogs")])
        ratios = [h / i for i, h in zip(samples[(setting, "idle")], samples[(setting, "hogs")])]
        case = {"setting": setting, "idle_samples_per_s": idle, "hogs_samples_per_s": hogs,
                "ratio_hogs_over_idle": median(ratios), "all": {c: samples[(setting, c)] for c in ("idle", "hogs")},
                "vs_default_under_hogs": hogs / default_hogs if default_hogs == default_hogs else None}
        cases.append(case)
        rows.append([setting, idle, hogs, f"{case['ratio_hogs_over_idle']:.2f}x",
                     "-" if case["vs_default_under_hogs"] is None else f"{case['vs_default_under_hogs']:.1f}x"])
    print(f"\nseed-cnn on mnist5k, batch 32, CPU, {args.hogs} hogs, median of {args.repeats} interleaved rounds; "
          f"{plan['cores']} cores, DLE_MAX_CONCURRENT_RUNS={plan['cap']} → rule: {plan['train']} thread(s) per run; "
          f"background load average {min(loads):.1f}–{max(loads):.1f}")
    print(table(["threads", "idle samples/s", f"{args.hogs} hogs samples/s", "hogs / idle", "vs default (hogs)"],
                rows))
    rule = next((c for c in cases if c["setting"] == "rule"), None)
    if rule:
        ok = rule["ratio_hogs_over_idle"] >= 0.4
        print(f"rule under {args.hogs} hogs: {rule['ratio_hogs_over_idle']:.2f}x its idle throughput "
              f"({'meets' if ok else 'misses'} the 0.4x target)")
    keras = _keras_ratio(args)
    print(f"against Keras under the same load: {keras}")
    command = (f"python bench/bench_contention.py --repeats {args.repeats} --settings {','.join(settings)}"
               + (f" --max-steps {args.max_steps}" if args.max_steps else ""))
    path = save("contention", {"command": command, "plan": plan, "hogs": args.hogs, "cases": cases,
                               "load_avg_1m": loads, "keras": keras}, latest=not args.quick)
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
