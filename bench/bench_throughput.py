"""Training throughput, model FLOP/s and MFU of presets from small to xl on this machine's device.

MFU = 3 × forward FLOPs per sample (dlcore.summarize) × samples/s / the device's peak (bf16 on CUDA, see
dlcore.device.PEAK_FLOPS); a CPU has no peak in the table, so only FLOP/s are shown. Throughput is
the trainer's own steady-state figure (its step reports after the first two windows). On CUDA every case
runs with and without torch.compile.

    python bench/bench_throughput.py [--steps 60]
"""
from __future__ import annotations

import argparse

from _common import save, table  # noqa: I001  (bench/ is the script's folder)

import torch

from dlcore import DataSpec, TrainSpec, Trainer, get_preset, load_dataset

# (preset, dataset, batch size): CPU-sized, then the GPU-only xl presets
SMALL = [("seed-cnn", "mnist5k", 32), ("seed-lstm", "mnist-rows", 32), ("transformer-tiny", "reverse", 64),
         ("lm-tiny", "pydoc-lm", 32)]
LARGE = [("seed-cnn", "mnist5k", 512), ("cnn-xl", "mnist5k", 64), ("rnn-xl", "mnist-rows", 64),
         ("transformer-xl", "sentiment-synth", 64), ("lm-xl", "pydoc-lm", 32)]


def measure(preset: str, data: str, batch: int, steps: int, compile_: bool = False) -> dict:
    ds = load_dataset(DataSpec(name=data))
    spec = TrainSpec(epochs=10_000, max_steps=steps, batch_size=batch, log_every=max(1, steps // 6),
                     compile=compile_, eval_max=1)
    t = Trainer(get_preset(preset), ds, spec)
    rows = []
    t.add_callback("on_step_end", lambda tr, row: rows.append(row))
    t.fit()
    steady = rows[2:] or rows
    sps = sum(r["samples_per_s"] for r in steady) / len(steady)
    out = {"preset": preset, "data": data, "batch_size": batch, "compile": compile_, "device": str(t.device),
           "params": sum(p.numel() for p in t.raw_model.parameters()), "flops_per_sample": t.flops_per_sample,
           "samples_per_s": sps, **t.throughput(sps)}
    if t.device.type == "cuda":
        out["max_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--quick", action="store_true", help="20 steps, small presets only")
    args = p.parse_args()
    cuda = torch.cuda.is_available()
    cases = SMALL if args.quick or not cuda else [*SMALL, *LARGE]
    steps = 20 if args.quick else args.steps
    results = []
    for preset, data, batch in cases:
        for compile_ in ((False, True) if cuda and not args.quick else (False,)):
            results.append(measure(preset, data, batch, steps, compile_))
    rows = [[r["preset"], r["batch_size"], "on" if r["compile"] else "off", f"{r['params']:,}", r["samples_per_s"],
             r["model_flops_per_s"] / 1e12, None if r["mfu"] is None else f"{r['mfu']:.1%}"] for r in results]
    print(f"device: {results[0]['device']}" + (f" ({torch.cuda.get_device_name()})" if cuda else ""))
    print(table(["preset", "batch", "compile", "params", "samples/s", "model TFLOP/s", "MFU"], rows))
    command = f"python bench/bench_throughput.py --steps {steps}" + (" --quick" if args.quick else "")
    path = save("throughput", {"command": command, "cases": results}, latest=not args.quick)
    print(f"\nwrote {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
