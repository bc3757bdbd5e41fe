"""Command line: ``python -m dlcore train|runs|show|cancel|resume|presets|datasets``.

Example:
    python -m dlcore train --data mnist5k --model seed-cnn --epochs 5 --batch-size 32 --seed 0 --json
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def _kv(items: list[str], what: str) -> dict:
    """Parse ``key=value`` pairs; values are JSON when they parse as JSON (numbers, lists, true/false)."""
    from dlcore.specs import SpecError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise SpecError(what, f"{what} expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def _train(args) -> int:
    from tqdm import tqdm

    from dlcore.data import dataset_info
    from dlcore.models import PRESETS, get_preset
    from dlcore.resources import ResourceError, check_fit
    from dlcore.runs.store import RunStore
    from dlcore.specs import DataSpec, TrainSpec
    from dlcore.train.worker import run_job

    preset = PRESETS.get(args.model)
    model = get_preset(args.model)
    if args.model_set:
        model = model.replace(**_kv(args.model_set, "--model-set"))
    data = DataSpec(name=args.data or (preset.data if preset else "mnist5k")).replace(**_kv(args.data_set, "--data-set"))
    train_fields = dict(preset.train if preset else {})
    for key in ("epochs", "batch_size", "seed", "device", "lr", "optimizer", "schedule", "max_steps", "weight_decay"):
        value = getattr(args, key)
        if value is not None:
            train_fields[key] = value
    train = TrainSpec().replace(**train_fields)
    info = dataset_info(data)
    report = check_fit(model, info, train)
    if not report.fits:
        raise ResourceError(f"{report.message}. Try: {'; '.join(report.suggestions)}.")
    params = report.params
    store = RunStore()
    run_id = store.create(data, model, train, name=args.name, params=params)
    bar = tqdm(total=1.0, unit="", bar_format="{l_bar}{bar}| {postfix}", disable=args.quiet, file=sys.stderr,
               desc=f"{args.model} on {data.name}")

    def on_step(t, row):
        bar.n = round(row["progress"], 4)
        bar.set_postfix_str(f"loss {row['loss']:.4f} · {row['samples_per_s']:,.0f} samples/s · ETA {row['eta_s']:.0f}s")

    def on_epoch(t, row):
        keys = [k for k in row if k.startswith("val_")]
        bar.write(f"epoch {row['epoch']}: train_loss {row['train_loss']:.4f} " +
                  " ".join(f"{k} {row[k]:.4f}" for k in keys))

    t0 = time.time()
    try:
        status = run_job(run_id, store, callbacks=[("on_step_end", on_step), ("on_epoch_end", on_epoch)])
    except KeyboardInterrupt:
        store.update(run_id, status="cancelled", finished=time.time(), error="interrupted from the keyboard")
        bar.close()
        print(f"interrupted; resume with: python -m dlcore resume {run_id}", file=sys.stderr)
        return 130
    bar.close()
    run = store.get(run_id)
    summary = run.summary
    if status != "completed":
        print(f"run {run_id} {status}: {run.error}", file=sys.stderr)
    result = {"run_id": run_id, "status": status, "data": data.name, "model": args.model, "params": run.params or params,
              "seconds": round(time.time() - t0, 2), "train_seconds": round(summary.get("seconds", 0.0), 2),
              "samples_per_s": round(summary.get("samples_per_s", 0.0), 1), "device": run.device}
    result.update({k: v for k, v in summary.items() if k.startswith("test_")})
    if args.json:
        print(json.dumps(result))
    else:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k.startswith("test_"))
        print(f"run {run_id} {status} in {result['seconds']:.1f}s · {result['params']:,} params · {metrics}")
    return 0 if status == "completed" else 1


def _fmt_duration(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f}m"


def _runs(args) -> int:
    from dlcore.train.jobs import list_runs

    runs = list_runs()
    if args.json:
        print(json.dumps([{"id": r.id, "name": r.name, "status": r.status, "data": r.data.name, "family": r.family,
                           "params": r.params, "summary": r.summary} for r in runs]))
        return 0
    if not runs:
        print("no runs yet: python -m dlcore train --data mnist5k --model seed-cnn")
        return 0
    print(f"{'id':24} {'status':10} {'data':14} {'family':12} {'params':>11} {'best':>8} {'time':>7}  name")
    for r in runs:
        best = r.summary.get("best_metric")
        print(f"{r.id:24} {r.status:10} {r.data.name:14} {r.family:12} {r.params or 0:>11,} "
              f"{best if best is None else round(best, 4)!s:>8} {_fmt_duration(r.duration):>7}  {r.name}")
    return 0


def _show(args) -> int:
    from dlcore.runs.store import RunStore
    from dlcore.train.jobs import get_run

    run = get_run(args.run_id)
    print(f"run {run.id}: {run.name}\nstatus: {run.status}" + (f" ({run.error})" if run.error else ""))
    print(f"data: {run.data.to_json()}\nmodel: {run.family} {run.model.to_json()}\ntrain: {run.train.to_json()}")
    print(f"params: {run.params}  device: {run.device}  duration: {_fmt_duration(run.duration)}")
    for row in RunStore().metrics(run.id, "epoch"):
        print("  " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                              if k not in ("id", "time", "step")))
    for k, v in run.summary.items():
        if k.startswith("test_"):
            print(f"{k}: {v:.4f}")
    return 0


def _presets(args) -> int:
    from dlcore.models import PRESETS, summarize

    for p in PRESETS.values():
        print(f"{p.name:18} {type(p.config).family:12} {summarize(p.config).params:>13,}  {p.description}")
    return 0


def _datasets(args) -> int:
    from dlcore.data import BUILTIN, TV_SETS, list_user
    from dlcore.data.builtin import BUILTIN as B  # noqa: F401

    for name in BUILTIN:
        print(f"{name:18} built-in")
    for name, (_, title, desc, _) in TV_SETS.items():
        print(f"{name:18} optional  {desc}")
    for info in list_user():
        print(f"{info.name:18} upload    {info.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from dlcore.errors import USER_ERRORS
    from dlcore.runs.store import RunNotFound

    p = argparse.ArgumentParser(prog="python -m dlcore", description="Deep Learning Explorer engine")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a model in the foreground and record it in the run store")
    t.add_argument("--data", default=None, help="dataset name (default: the preset's)")
    t.add_argument("--model", default="seed-cnn", help="model preset")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", dest="batch_size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer")
    t.add_argument("--schedule")
    t.add_argument("--weight-decay", dest="weight_decay", type=float)
    t.add_argument("--max-steps", dest="max_steps", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--device")
    t.add_argument("--name")
    t.add_argument("--model-set", nargs="*", metavar="KEY=VALUE", help="override model fields, e.g. hidden_size=64")
    t.add_argument("--data-set", nargs="*", metavar="KEY=VALUE", help="override data fields, e.g. seq_len=10")
    t.add_argument("--json", action="store_true", help="end with one JSON line of results")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    r = sub.add_parser("runs", help="list runs")
    r.add_argument("--json", action="store_true")
    s = sub.add_parser("show", help="show one run")
    s.add_argument("run_id")
    for name in ("cancel", "resume"):
        c = sub.add_parser(name, help=f"{name} a background run")
        c.add_argument("run_id")
    sub.add_parser("presets", help="list model presets")
    sub.add_parser("datasets", help="list datasets")
    args = p.parse_args(argv)
    try:
        if args.cmd == "train":
            return _train(args)
        if args.cmd == "runs":
            return _runs(args)
        if args.cmd == "show":
            return _show(args)
        if args.cmd in ("cancel", "resume"):
            from dlcore.train.jobs import cancel_run, resume_run

            (cancel_run if args.cmd == "cancel" else resume_run)(args.run_id)
            print(f"{args.cmd} requested for {args.run_id}")
            return 0
        if args.cmd == "presets":
            return _presets(args)
        return _datasets(args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (RunNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
