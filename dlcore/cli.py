"""Command line: ``python -m dlcore train|bench|export|compress|generate|ablate|runs|show|cancel|resume|presets|datasets``.

Example:
    python -m dlcore train --data mnist5k --model seed-cnn --epochs 5 --batch-size 32 --seed 0 --json
    torchrun --standalone --nproc_per_node=2 -m dlcore train --model seed-cnn --batch-size 64
    python -m dlcore resume RUN_ID --nproc 2
    python -m dlcore export RUN_ID --format onnx --out model.onnx
    python -m dlcore generate RUN_ID --prompt "The " --max-new-tokens 40 --temperature 0 --json
    python -m dlcore ablate RUN_ID --heads 1.1,1.2 --table
    python -m dlcore train --init-from RUN_ID --classes 5 6 7 8 9 --per-class 20 --freeze body
    python -m dlcore compress RUN_ID --method prune --sparsity 0.5 --json
"""
from __future__ import annotations

import argparse
import json
import os
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


TRAIN_FLAGS = ("epochs", "batch_size", "seed", "device", "lr", "optimizer", "schedule", "max_steps", "weight_decay",
               "grad_accum", "log_every", "precision", "compile", "checkpointing", "warmup_steps", "grad_clip")


def _specs(args):
    """(data, model, train) specs from the command line: a preset, its recommended settings, then overrides."""
    from dlcore.models import PRESETS, get_preset
    from dlcore.specs import DataSpec, TrainSpec

    init_from = getattr(args, "init_from", None)
    parent = None
    if init_from and args.model is None:  # fine-tuning: the parent's model (and its data, unless --data)
        from dlcore.runs.store import RunStore

        parent = RunStore().get(init_from)
        model, preset = parent.model, None
        args.model = parent.family
    else:
        args.model = args.model or "seed-cnn"
        preset = PRESETS.get(args.model)
        model = get_preset(args.model)
    if args.model_set:
        model = model.replace(**_kv(args.model_set, "--model-set"))
    if parent is not None and not args.data:
        data = parent.data.replace(classes=(), per_class=0)
    else:
        data = DataSpec(name=args.data or (preset.data if preset else "mnist5k"))
    if preset is not None and data.name == preset.data:  # e.g. a language model's context (window)
        data = data.replace(**preset.data_set)
    data = data.replace(**_kv(args.data_set, "--data-set"))
    for key in ("classes", "per_class"):  # train's --classes / --per-class
        if getattr(args, key, None) is not None:
            data = data.replace(**{key: getattr(args, key)})
    train_fields = dict(preset.train if preset else {})
    for key in (*TRAIN_FLAGS, "init_from", "freeze"):
        value = getattr(args, key, None)
        if value is not None:
            train_fields[key] = value
    train_fields.update(_kv(args.train_set, "--train-set"))
    return data, model, TrainSpec().replace(**train_fields)


def _train(args) -> int:
    """Train in the foreground. Under torchrun every rank runs this (each checks the run the same way);
    rank 0 alone records it."""
    from tqdm import tqdm

    from dlcore.runs.store import RunStore
    from dlcore.train import distributed
    from dlcore.train.prepare import prepare_run

    prepared = prepare_run(*_specs(args), nproc=distributed.env().world_size)
    data, train = prepared.data, prepared.train
    dist_env = distributed.init_from_env(train.device)
    main = dist_env.is_main
    try:
        # rank 0 creates the store and the run; the others open the store only then (two processes turning a
        # new SQLite file to WAL mode at once make one fail with 'database is locked')
        store = RunStore() if main else None
        run_id = store.create(data, prepared.model, train, name=args.name or prepared.default_name,
                              params=prepared.fit.params, parent=train.init_from) if main else ""
        run_id = distributed.broadcast_text(run_id)
        store = store or RunStore()
        bar = tqdm(total=1.0, unit="", bar_format="{l_bar}{bar}| {postfix}", disable=args.quiet or not main,
                   file=sys.stderr, desc=f"{args.model} on {data.name}")

        def on_step(t, row):
            bar.n = round(row["progress"], 4)
            mfu = f" · MFU {row['mfu']:.1%}" if row.get("mfu") is not None else ""
            bar.set_postfix_str(f"loss {row['loss']:.4f} · {row['samples_per_s']:,.0f} samples/s{mfu} · "
                                f"ETA {row['eta_s']:.0f}s")

        def on_epoch(t, row):
            if bar.disable:
                return
            keys = [k for k in row if k.startswith("val_")]
            bar.write(f"epoch {row['epoch']}: train_loss {row['train_loss']:.4f} " +
                      " ".join(f"{k} {row[k]:.4f}" for k in keys))

        t0 = time.time()
        try:
            callbacks = [("on_step_end", on_step), ("on_epoch_end", on_epoch)]
            status = distributed.run_rank(run_id, store, callbacks=callbacks)
        except KeyboardInterrupt:
            if main:
                store.update(run_id, status="cancelled", finished=time.time(), error="interrupted from the keyboard")
            bar.close()
            print(f"interrupted; resume with: python -m dlcore resume {run_id}", file=sys.stderr)
            return 130
        bar.close()
    finally:
        distributed.destroy()
    if not main:
        return 0 if status in ("completed", "cancelled") else 1
    run = store.get(run_id)
    summary = run.summary
    if status != "completed":
        print(f"run {run_id} {status}: {run.error}", file=sys.stderr)
    result = {"run_id": run_id, "status": status, "data": data.name, "model": args.model,
              "params": run.params or prepared.fit.params,
              "seconds": round(time.time() - t0, 2), "train_seconds": round(summary.get("train_seconds", 0.0), 2),
              "samples_per_s": round(summary.get("samples_per_s", 0.0), 1),
              "model_tflops": round(summary.get("model_flops_per_s", 0.0) / 1e12, 4), "mfu": summary.get("mfu"),
              "world_size": dist_env.world_size, "device": run.device}
    result.update({k: v for k, v in summary.items() if k.startswith("test_")})
    if args.json:
        print(json.dumps(result))
    else:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k.startswith("test_"))
        print(f"run {run_id} {status} in {result['seconds']:.1f}s · {result['params']:,} params · {metrics}")
    return 0 if status == "completed" else 1


def _export(args) -> int:
    from dlcore.export import export_run

    report = export_run(args.run_id, args.format, args.out, check=not args.no_check)
    if args.json:
        print(json.dumps(report))
        return 0
    for path in report["files"]:
        print(f"wrote {path}")
    if report.get("max_abs_diff") is not None:
        print(f"checked against PyTorch with {report['checked_with']}: max |difference| {report['max_abs_diff']:.2e}")
    return 0


def _bench(args) -> int:
    """Training throughput of a preset on this machine's device: samples/s, model FLOP/s, MFU."""
    from dlcore.data import load_dataset
    from dlcore.train.trainer import Trainer

    data, model, train = _specs(args)
    train = train.replace(max_steps=args.steps, epochs=10_000, log_every=max(1, args.steps // 5))
    trainer = Trainer(model, load_dataset(data), train)
    rows = []
    trainer.add_callback("on_step_end", lambda t, row: rows.append(row))
    trainer.fit()
    steady = rows[2:] or rows  # the first windows include start-up and, with compile, compilation
    sps = sum(r["samples_per_s"] for r in steady) / len(steady)
    result = {"model": args.model, "data": data.name, "device": str(trainer.device), "batch_size": train.batch_size,
              "steps": args.steps, "params": sum(p.numel() for p in trainer.raw_model.parameters()),
              "samples_per_s": round(sps, 1), **trainer.throughput(sps)}
    if args.json:
        print(json.dumps(result))
    else:
        mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a (no peak known for this device)"
        print(f"{args.model} on {data.name} · {result['device']} · batch {train.batch_size}: {sps:,.0f} samples/s · "
              f"{result['model_flops_per_s'] / 1e12:.3f} model TFLOP/s · MFU {mfu}")
    return 0


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

    for name in BUILTIN:
        print(f"{name:18} built-in")
    for name, (_, title, desc, _) in TV_SETS.items():
        print(f"{name:18} optional  {desc}")
    for info in list_user():
        print(f"{info.name:18} upload    {info.description}")
    return 0


def _spec_args(p: argparse.ArgumentParser) -> None:
    """Flags that build the specs of a run (shared by train and bench)."""
    p.add_argument("--data", default=None, help="dataset name (default: the preset's)")
    p.add_argument("--model", default=None, help="model preset (default: seed-cnn; with --init-from: that run's model)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int,
                   help="examples per forward/backward pass, in total over all processes of a torchrun launch")
    p.add_argument("--grad-accum", dest="grad_accum", type=int, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer")
    p.add_argument("--schedule")
    p.add_argument("--weight-decay", dest="weight_decay", type=float)
    p.add_argument("--warmup-steps", dest="warmup_steps", type=int)
    p.add_argument("--grad-clip", dest="grad_clip", type=float)
    p.add_argument("--max-steps", dest="max_steps", type=int)
    p.add_argument("--log-every", dest="log_every", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--precision", help="auto (bf16 on CUDA), fp32 or bf16")
    p.add_argument("--compile", action="store_const", const=True, help="torch.compile the model")
    p.add_argument("--checkpointing", action="store_const", const=True, help="activation checkpointing (Transformers)")
    p.add_argument("--model-set", nargs="*", metavar="KEY=VALUE", help="override model fields, e.g. hidden_size=64")
    p.add_argument("--data-set", nargs="*", metavar="KEY=VALUE", help="override data fields, e.g. seq_len=10")
    p.add_argument("--train-set", nargs="*", metavar="KEY=VALUE",
                   help="override any TrainSpec field, e.g. eval_max=500")


def _lm_parsers(sub) -> None:
    """generate and ablate (issue 13): sample from a language-model run; knock out attention heads."""
    g = sub.add_parser("generate", help="continue a prompt with a language-model run (e.g. lm-tiny on pydoc-lm)")
    g.add_argument("run_id")
    g.add_argument("--prompt", required=True, help="text to continue")
    g.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=100)
    g.add_argument("--temperature", type=float, default=1.0, help="divide the logits by this; 0 = greedy")
    g.add_argument("--top-k", dest="top_k", type=int, default=0, help="keep the k most likely tokens (0 = all)")
    g.add_argument("--top-p", dest="top_p", type=float, default=1.0,
                   help="keep the fewest most likely tokens whose probability reaches p (1 = all)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-cache", dest="no_cache", action="store_true", help="re-read the whole context every step")
    g.add_argument("--json", action="store_true", help="one JSON object: prompt, text, steps, tokens_per_s")
    a = sub.add_parser("ablate", help="knock out attention heads of a Transformer run and re-measure its test metric")
    a.add_argument("run_id")
    a.add_argument("--heads", required=True, help="LAYER.HEAD[,LAYER.HEAD...] counted from 1, e.g. 1.2,2.1")
    a.add_argument("--mode", choices=("zero", "mean"), default="zero",
                   help="zero the heads' outputs or replace them by their mean over training inputs")
    a.add_argument("--table", action="store_true", help="also knock out every head alone and list the drops")
    a.add_argument("--limit", type=int, help="evaluate on at most this many test examples")
    a.add_argument("--json", action="store_true", help="one JSON object: metric, before, after, drop")


def main(argv: list[str] | None = None) -> int:
    from dlcore.config import configure_threads

    words = sys.argv[1:] if argv is None else argv
    if words and words[0] in ("train", "resume", "compress", "bench"):
        # before torch loads (dlcore.errors imports it): one job in the foreground, its torchrun ranks on this
        # machine sharing the cores, with passive waiting so it does not spin against a busy machine
        configure_threads("train", cap=max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))
    from dlcore.errors import USER_ERRORS
    from dlcore.runs.store import RunNotFound

    p = argparse.ArgumentParser(prog="python -m dlcore", description="Deep Learning Explorer engine")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a model in the foreground and record it in the run store "
                                     "(under torchrun: data-parallel over the processes)")
    _spec_args(t)
    t.add_argument("--name")
    t.add_argument("--json", action="store_true", help="end with one JSON line of results")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--init-from", dest="init_from", metavar="RUN",
                   help="start from this finished run's weights (a new output layer when the classes differ)")
    t.add_argument("--freeze", nargs="+", metavar="GROUP",
                   help="layers not trained: body (all but the output layer), all, or names such as features.0")
    t.add_argument("--classes", nargs="+", type=int, metavar="N", help="keep only these classes (relabelled 0..k-1)")
    t.add_argument("--per-class", dest="per_class", type=int, metavar="N",
                   help="at most N labelled examples per class, validation included")
    b = sub.add_parser("bench", help="measure training throughput (samples/s, model FLOP/s, MFU) of a preset here")
    _spec_args(b)
    b.add_argument("--steps", type=int, default=50, help="optimizer steps to time")
    b.add_argument("--json", action="store_true")
    e = sub.add_parser("export", help="export a trained run: ONNX, TorchScript or safetensors + JSON spec")
    e.add_argument("run_id")
    e.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors"))
    e.add_argument("--out", required=True, help="output file (.onnx, .pt or .safetensors; a .json spec is written "
                                               "next to safetensors)")
    e.add_argument("--no-check", action="store_true", help="skip comparing the exported model with PyTorch")
    e.add_argument("--json", action="store_true")
    r = sub.add_parser("runs", help="list runs")
    r.add_argument("--json", action="store_true")
    s = sub.add_parser("show", help="show one run")
    s.add_argument("run_id")
    c = sub.add_parser("cancel", help="cancel a background run (it checkpoints and can be resumed)")
    c.add_argument("run_id")
    c = sub.add_parser("resume", help="continue a failed or cancelled run in the background from its checkpoint")
    c.add_argument("run_id")
    c.add_argument("--nproc", type=int, default=1,
                   help="processes to continue on (data-parallel with torchrun when more than one)")
    from dlcore.compress.cli import add_cli as add_compress_cli

    add_compress_cli(sub)
    sub.add_parser("presets", help="list model presets")
    sub.add_parser("datasets", help="list datasets")
    _lm_parsers(sub)
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

            if args.cmd == "cancel":
                cancel_run(args.run_id)
            else:
                resume_run(args.run_id, nproc=args.nproc)
            print(f"{args.cmd} requested for {args.run_id}")
            return 0
        if args.cmd == "generate":
            from dlcore.generation import run_cli

            return run_cli(args)
        if args.cmd == "ablate":
            from dlcore.inspect.ablation import run_cli

            return run_cli(args)
        if args.cmd == "presets":
            return _presets(args)
        if args.cmd == "export":
            return _export(args)
        if args.cmd == "bench":
            return _bench(args)
        if args.cmd == "compress":
            from dlcore.compress.cli import run_cli

            return run_cli(args)
        return _datasets(args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (RunNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path that cannot be written or read: --out under a file, a read-only folder, ...
        print(f"error: {_os_error(e)}", file=sys.stderr)
        return 2


def _os_error(e: OSError) -> str:
    """A file-system error as one line: what failed, on which path (never a traceback)."""
    import errno
    import os

    where = f" ({e.filename})" if e.filename else ""
    why = {errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EEXIST: "a file is in the way",
           errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS: "the disk is read-only",
           errno.ENOSPC: "the disk is full", errno.ENOENT: "no such file or folder"}.get(e.errno)
    custom = e.strerror and e.errno and e.strerror != os.strerror(e.errno)  # our own words (dlcore.config)
    return f"{e.strerror if custom else why or e.strerror or e}{where}"
