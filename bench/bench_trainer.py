"""dlcore's Trainer against hand-written PyTorch loops: same model, data, batch size, optimizer, schedule, seed.

Contenders, each doing the same work (E epochs of training, a validation pass per epoch, a test pass)
with the preset's recipe (optimizer, learning rate, schedule, gradient clipping from PRESETS[...].train):
  trainer     dlcore.Trainer(...).fit()
  hand-slice  the leanest loop one can write: a seeded randperm, index slices of the in-memory tensors
  hand-loader the loop of the PyTorch tutorials: DataLoader(TensorDataset(x, y), shuffle=True)
They run in one process with the same thread count, after a warm-up, interleaved (ABC CBA ...) so that
drift in machine load hits all alike; the table shows the median samples/s and the ratio
trainer / baseline per round (median). Test accuracy is each contender's own after E epochs.
Samples/s are training examples per second of the whole job (wall clock). A second ratio uses the
process's CPU time instead, which other processes on a busy machine disturb much less. One thread by
default: on a shared machine, multi-threaded OpenMP teams swing from run to run by up to 10× (measured
on a 2-core box with other jobs), one thread by a few percent; --threads N measures with N.

    python bench/bench_trainer.py                # seed-cnn on mnist5k and seed-lstm on mnist-rows
    python bench/bench_trainer.py --quick        # one round, one epoch: a smoke run
"""
from __future__ import annotations

import argparse
import math
import os
import time

from _common import interleaved, median, save, table  # noqa: I001  (bench/ is the script's folder)

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlcore import DataSpec, PRESETS, TrainSpec, Trainer, build_model, for_data, get_preset, load_dataset

CASES = [("seed-cnn", "mnist5k"), ("seed-lstm", "mnist-rows")]


def _train_spec(preset: str, epochs: int) -> TrainSpec:
    return TrainSpec(epochs=epochs, batch_size=32, seed=0).replace(**PRESETS[preset].train)


def _timed(fn):
    """Wall and CPU seconds of one contender's whole job."""
    def run(config, ds, spec: TrainSpec) -> dict:
        w0, c0 = time.perf_counter(), time.process_time()
        acc = fn(config, ds, spec)
        return {"seconds": time.perf_counter() - w0, "cpu_seconds": time.process_time() - c0, "test_accuracy": acc}
    return run


@_timed
def run_trainer(config, ds, spec: TrainSpec) -> float:
    return Trainer(config, ds, spec).fit()["test_accuracy"]


@torch.no_grad()
def _hand_accuracy(model, x, y, batch: int = 128) -> float:
    model.eval()
    correct = sum((model(x[i: i + batch])[0].argmax(-1) == y[i: i + batch]).sum().item()
                  for i in range(0, len(x), batch))
    model.train()
    return correct / len(x)


def _hand_setup(config, spec: TrainSpec, steps: int):
    """Model, optimizer and scheduler as one writes them by hand, following the preset's recipe."""
    if spec.warmup_steps or spec.grad_accum > 1:
        raise SystemExit("the hand-written loops implement no warm-up or gradient accumulation")
    torch.manual_seed(spec.seed)
    model = build_model(config)
    if spec.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    else:
        cls = torch.optim.AdamW if spec.optimizer == "adamw" else torch.optim.Adam
        opt = cls(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    sched = {"cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps),
             "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=steps + 1),
             "constant": lambda: None}[spec.schedule]()
    return model, opt, sched


def _hand_step(model, opt, sched, loss, clip: float) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    if sched:
        sched.step()


@_timed
def run_hand_slice(config, ds, spec: TrainSpec) -> float:
    (x, y), (xv, yv), (xt, yt) = ds.train, ds.val, ds.test
    b = spec.batch_size
    model, opt, sched = _hand_setup(config, spec, spec.epochs * math.ceil(len(x) / b))
    g = torch.Generator().manual_seed(spec.seed)
    for _ in range(spec.epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), b):
            idx = order[i: i + b]
            _, loss = model(x[idx], y[idx])
            _hand_step(model, opt, sched, loss, spec.grad_clip)
        _hand_accuracy(model, xv, yv)
    return _hand_accuracy(model, xt, yt)


@_timed
def run_hand_loader(config, ds, spec: TrainSpec) -> float:
    (x, y), (xv, yv), (xt, yt) = ds.train, ds.val, ds.test
    loader = DataLoader(TensorDataset(x, y), batch_size=spec.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(spec.seed))
    model, opt, sched = _hand_setup(config, spec, spec.epochs * len(loader))
    for _ in range(spec.epochs):
        for xb, yb in loader:
            logits, _ = model(xb)
            _hand_step(model, opt, sched, F.cross_entropy(logits, yb), spec.grad_clip)
        _hand_accuracy(model, xv, yv)
    return _hand_accuracy(model, xt, yt)


CONTENDERS = {"trainer": run_trainer, "hand-slice": run_hand_slice, "hand-loader": run_hand_loader}


def bench_case(preset: str, data: str, epochs: int, repeats: int) -> dict:
    ds = load_dataset(DataSpec(name=data))
    config = for_data(get_preset(preset), ds.info)
    spec = _train_spec(preset, epochs)
    warm = spec.replace(epochs=1, max_steps=20)
    for fn in CONTENDERS.values():  # warm-up: imports, allocator, kernels
        fn(config, ds, warm) if fn is run_trainer else fn(config, _head(ds, 20 * spec.batch_size), warm)
    n = len(ds.train[0]) * epochs
    runs = interleaved({k: (lambda fn=fn: fn(config, ds, spec)) for k, fn in CONTENDERS.items()}, repeats)
    sps = {k: [n / r["seconds"] for r in v] for k, v in runs.items()}
    cpu = {k: [n / r["cpu_seconds"] for r in v] for k, v in runs.items()}
    out = {"preset": preset, "data": data, "epochs": epochs, "batch_size": spec.batch_size, "repeats": repeats,
           "train_examples": len(ds.train[0]), "samples_per_s": {k: median(v) for k, v in sps.items()},
           "samples_per_s_all": sps, "samples_per_cpu_s_all": cpu,
           "test_accuracy": {k: v[-1]["test_accuracy"] for k, v in runs.items()}}
    out["ratio"] = {f"trainer/{k}": median([a / b for a, b in zip(sps["trainer"], sps[k])])
                    for k in CONTENDERS if k != "trainer"}
    out["ratio_cpu_time"] = {f"trainer/{k}": median([a / b for a, b in zip(cpu["trainer"], cpu[k])])
                             for k in CONTENDERS if k != "trainer"}
    return out


def _head(ds, n: int):
    """The dataset cut to its first n training examples (for a quick warm-up)."""
    from dlcore.data.base import Dataset

    return Dataset(ds.info, (ds.train[0][:n], ds.train[1][:n]), ds.val, ds.test)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1, help="torch threads for every contender (default 1)")
    p.add_argument("--cases", nargs="*", default=[c[0] for c in CASES], choices=[c[0] for c in CASES])
    p.add_argument("--quick", action="store_true", help="1 epoch, 1 round")
    args = p.parse_args()
    if args.quick:
        args.epochs, args.repeats = 1, 1
    torch.set_num_threads(args.threads)
    results = [bench_case(preset, data, args.epochs, args.repeats) for preset, data in CASES if preset in args.cases]
    rows = []
    for r in results:
        for k in CONTENDERS:
            ratio, ratio_cpu = r["ratio"].get(f"trainer/{k}"), r["ratio_cpu_time"].get(f"trainer/{k}")
            rows.append([f"{r['preset']} on {r['data']}", k, r["samples_per_s"][k],
                         None if ratio is None else f"{ratio:.3f}x", None if ratio is None else f"{ratio_cpu:.3f}x",
                         f"{r['test_accuracy'][k]:.4f}"])
    print(f"batch 32, {args.epochs} epoch(s), median of {args.repeats} interleaved rounds, "
          f"{torch.get_num_threads()} threads, CPU, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(table(["case", "loop", "samples/s", "trainer/this", "(CPU time)", "test acc"], rows))
    path = save("trainer", {"command": "python bench/bench_trainer.py " + " ".join(
        f"--{k}={' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items() if k != "quick"),
        "cases": results}, latest=not args.quick)
    print(f"\nwrote {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
