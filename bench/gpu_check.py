"""One-call GPU check: ``python bench/gpu_check.py`` (≤ 8 minutes on one H100/H200) prints a table and
writes its full output as JSON (``bench/results/latest-gpu_check.json``).

  (a) seed-cnn and cnn-medium: samples/s of dlcore's Trainer (data resident on the GPU, bf16 autocast,
      fused AdamW, channels-last; with and without torch.compile, the better counts) against a naive
      loop on the same GPU — ``DataLoader(TensorDataset(x, y), shuffle=True)``, a host→device copy per
      batch, fp32, the default AdamW. Target ≥ 3×.
  (b) the largest Transformer and LM presets (transformer-xl, lm-xl) in bf16: tokens/s and MFU against
      the bf16 matmul peak this script measures on the GPU (8192² matmuls), beside the data-sheet peak.
      Target ≥ 45% of the measured peak.
  (c) a run started through the job system (``dlcore.start_run``, the warm worker's forked child) on
      CUDA ends 'completed'.
  (d) the CUDA-only tests (the test files that skip without a GPU, run with ``-k cuda``).

``--dry-run`` runs the same code on the CPU with tiny sizes (tiny presets, a few steps, 256² matmuls) in
under two minutes; CI runs it (tests/bench/test_gpu_check.py). The exit status is 0 when every part ran
(targets missed are reported, not failed), 1 when a part failed.

    python bench/gpu_check.py [--dry-run] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from _common import ROOT, machine, save, table  # noqa: I001  (bench/ is the script's folder)

FULL = {
    "device": "cuda",
    "cnn": [("seed-cnn", "mnist5k", 512), ("cnn-medium", "mnist5k", 256)],
    "lm": [("transformer-xl", "sentiment-synth", 64), ("lm-xl", "pydoc-lm", 32)],
    "steps": 120, "naive_steps": 60, "lm_steps": 40, "compile": (False, True), "matmul": 8192,
    "job": ("mnist5k", "seed-cnn", 1),
}
DRY = {
    "device": "cpu",
    "cnn": [("seed-cnn", "mnist5k", 32), ("cnn-medium", "mnist5k", 8)],
    "lm": [("transformer-tiny", "reverse", 16), ("lm-tiny", "pydoc-lm", 4)],
    "steps": 6, "naive_steps": 4, "lm_steps": 4, "compile": (False,), "matmul": 256,
    "job": ("digits", "cnn-tiny", 1),
}


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(size: int, device_name: str) -> dict:
    """Measured dense bf16 matmul FLOP/s: the median of timed batches of ``size``² × ``size``² products."""
    import torch

    device = torch.device(device_name)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    rates = []
    iters = 20 if device.type == "cuda" else 3
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(iters):
            a @ b
        _sync(device)
        rates.append(2 * size**3 * iters / (time.perf_counter() - t0))
    rates.sort()
    return {"size": size, "flops_per_s": rates[len(rates) // 2], "best_flops_per_s": rates[-1]}


def trainer_throughput(preset: str, data: str, batch: int, steps: int, device: str, compile_: bool) -> dict:
    """Steady-state samples/s of the Trainer (its step reports after the first two windows)."""
    import torch

    from dlcore import DataSpec, Trainer, TrainSpec, get_preset, load_dataset

    ds = load_dataset(DataSpec(name=data))
    spec = TrainSpec(epochs=10_000, max_steps=steps, batch_size=batch, log_every=max(1, steps // 6),
                     compile=compile_, eval_max=1, device=device)
    t = Trainer(get_preset(preset), ds, spec)
    rows = []
    t.add_callback("on_step_end", lambda tr, row: rows.append(row))
    t0 = time.perf_counter()
    t.fit()
    steady = rows[2:] or rows
    sps = sum(r["samples_per_s"] for r in steady) / len(steady)
    seq = t.config.sequence_length(t.info)
    out = {"preset": preset, "data": data, "batch_size": batch, "compile": compile_, "steps": steps,
           "samples_per_s": sps, "seq_len": seq, "flops_per_sample": t.flops_per_sample,
           "model_flops_per_s": 3.0 * t.flops_per_sample * sps, "mfu_datasheet": t.throughput(sps)["mfu"],
           "params": sum(p.numel() for p in t.raw_model.parameters()), "wall_s": time.perf_counter() - t0,
           "precision": str(t.autocast_dtype or "fp32")}
    if t.device.type == "cuda":
        out["max_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    return out


def naive_throughput(preset: str, data: str, batch: int, steps: int, device: str) -> dict:
    """The tutorial loop: DataLoader over CPU tensors, a copy per batch, fp32, torch.optim.AdamW defaults."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from dlcore import DataSpec, build_model, for_data, get_preset, load_dataset

    dev = torch.device(device)
    ds = load_dataset(DataSpec(name=data))
    torch.manual_seed(0)
    model = build_model(for_data(get_preset(preset), ds.info)).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(*ds.train), batch_size=batch, shuffle=True, drop_last=True)

    def batches():
        while True:
            yield from loader

    it = batches()

    def step():
        xb, yb = next(it)
        xb, yb = xb.to(dev), yb.to(dev)
        _, loss = model(xb, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):  # warm-up: cuDNN autotuning, allocator
        step()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()
    _sync(dev)
    return {"preset": preset, "data": data, "batch_size": batch, "steps": steps,
            "samples_per_s": steps * batch / (time.perf_counter() - t0)}


def job_run(data: str, preset: str, epochs: int, device: str) -> dict:
    """A run through dlcore.start_run (the warm worker forks its process) in a store of its own."""
    import dlcore

    os.environ["DLE_DATA_DIR"] = tempfile.mkdtemp(prefix="dle-gpu-check-")
    os.environ.setdefault("DLE_WARM_WORKER_IDLE_S", "30")
    store = dlcore.RunStore()
    t0 = time.perf_counter()
    spec = dlcore.TrainSpec(epochs=epochs, device=device, max_steps=0 if device == "cuda" else 3)
    model = dlcore.get_preset(preset)
    if preset == "cnn-tiny":
        model = model.replace(padding="same")  # fits 8×8 digits
    run_id = dlcore.start_run(dlcore.DataSpec(name=data), model, spec, store=store, name="gpu check")
    run = dlcore.wait(run_id, timeout=300, store=store)
    return {"run_id": run_id, "status": run.status, "error": run.error, "device": run.device,
            "seconds": time.perf_counter() - t0, "test_accuracy": run.summary.get("test_accuracy"),
            "samples_per_s": run.summary.get("samples_per_s")}


def cuda_tests(dry: bool) -> dict:
    """The tests that skip without CUDA (files naming 'needs a CUDA GPU'), selected with -k cuda."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                   if "needs a CUDA GPU" in p.read_text(errors="replace"))
    if not files:
        return {"files": [], "returncode": 0, "summary": "no CUDA-only tests found"}
    cmd = [sys.executable, "-m", "pytest", *files, "-k", "cuda", "-q", "-rs", "-p", "no:cacheprovider"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    last = (out.stdout.strip().splitlines() or [""])[-1]
    ok = out.returncode in (0, 5)  # 5: nothing selected
    return {"files": files, "command": " ".join(cmd[1:]), "returncode": out.returncode, "summary": last,
            "ok": ok, "tail": out.stdout[-3000:] if not ok else ""}


def _part(name: str, fn, results: dict, failures: list):
    t0 = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as e:  # noqa: BLE001 - every part runs; a failure is reported with its traceback
        results[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        failures.append(name)
    print(f"  ({name}: {time.perf_counter() - t0:.0f} s)", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="the same code on the CPU with tiny sizes (< 2 min)")
    p.add_argument("--out", default=None, help="write the JSON here instead of bench/results/")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    cfg = DRY if args.dry_run else FULL
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible; run with --dry-run for the CPU smoke run")
        return 2
    device = cfg["device"]
    t_start = time.perf_counter()
    results: dict = {"dry_run": args.dry_run, "device": device}
    failures: list[str] = []
    if device == "cuda":
        results["gpu"] = torch.cuda.get_device_name(0)
        from dlcore.device import peak_flops

        results["datasheet_bf16_peak"] = peak_flops("cuda")
    _part("matmul_peak", lambda: matmul_peak(cfg["matmul"], device), results, failures)
    peak = results["matmul_peak"].get("flops_per_s")

    def cnn():
        cases = []
        for preset, data, batch in cfg["cnn"]:
            ours = [trainer_throughput(preset, data, batch, cfg["steps"], device, c) for c in cfg["compile"]]
            best = max(ours, key=lambda r: r["samples_per_s"])
            naive = naive_throughput(preset, data, batch, cfg["naive_steps"], device)
            cases.append({"preset": preset, "data": data, "batch_size": batch, "trainer": ours, "naive": naive,
                          "best_compile": best["compile"], "ratio": best["samples_per_s"] / naive["samples_per_s"]})
        return cases

    def lm():
        cases = []
        for preset, data, batch in cfg["lm"]:
            ours = [trainer_throughput(preset, data, batch, cfg["lm_steps"], device, c) for c in cfg["compile"]]
            best = max(ours, key=lambda r: r["samples_per_s"])
            tokens = best["samples_per_s"] * (best["seq_len"] or 1)
            cases.append({"preset": preset, "data": data, "batch_size": batch, "runs": ours,
                          "best_compile": best["compile"], "tokens_per_s": tokens,
                          "mfu_measured_peak": best["model_flops_per_s"] / peak if peak else None,
                          "mfu_datasheet": best["mfu_datasheet"]})
        return cases

    _part("cnn_vs_naive", cnn, results, failures)
    _part("transformers_bf16", lm, results, failures)
    _part("job_system", lambda: job_run(*cfg["job"], device), results, failures)
    if results["job_system"].get("status") not in (None, "completed"):
        failures.append("job_system")
    _part("cuda_tests", lambda: cuda_tests(args.dry_run), results, failures)
    if not results["cuda_tests"].get("ok", False):
        failures.append("cuda_tests")
    results["seconds"] = time.perf_counter() - t_start
    results["failures"] = failures

    def verdict(ok: bool, miss: str) -> str:  # CPU figures of a dry run say nothing about a GPU target
        return "(dry run)" if args.dry_run else "ok" if ok else miss

    rows = []
    mm = results["matmul_peak"]
    if "flops_per_s" in mm:
        sheet = results.get("datasheet_bf16_peak")
        rows.append(["bf16 matmul peak (measured)", f"{mm['size']}²", f"{mm['flops_per_s'] / 1e12:,.1f} TFLOP/s",
                     f"data sheet {sheet / 1e12:,.0f}" if sheet else "-", "-"])
    for c in results["cnn_vs_naive"] if isinstance(results["cnn_vs_naive"], list) else []:
        best = max(c["trainer"], key=lambda r: r["samples_per_s"])
        rows.append([f"(a) {c['preset']} trainer / naive", f"batch {c['batch_size']}",
                     f"{best['samples_per_s']:,.0f} vs {c['naive']['samples_per_s']:,.0f} samples/s",
                     f"{c['ratio']:.2f}x (compile {'on' if c['best_compile'] else 'off'})",
                     verdict(c["ratio"] >= 3, "MISSES 3x")])
    for c in results["transformers_bf16"] if isinstance(results["transformers_bf16"], list) else []:
        mfu = c["mfu_measured_peak"]
        rows.append([f"(b) {c['preset']}", f"batch {c['batch_size']}", f"{c['tokens_per_s']:,.0f} tokens/s",
                     "-" if mfu is None else f"MFU {mfu:.1%} of measured peak",
                     "-" if mfu is None else verdict(mfu >= 0.45, "MISSES 45%")])
    job = results["job_system"]
    rows.append(["(c) start_run → completed", device, job.get("status", job.get("error", "?")),
                 f"{job.get('seconds', 0):.1f} s", "ok" if job.get("status") == "completed" else "FAILED"])
    tests = results["cuda_tests"]
    rows.append(["(d) CUDA-only tests", ", ".join(Path(f).name for f in tests.get("files", [])) or "-",
                 tests.get("summary", tests.get("error", "?"))[:60], "-", "ok" if tests.get("ok") else "FAILED"])
    title = "gpu_check --dry-run (CPU, tiny sizes: no GPU figure here)" if args.dry_run else \
        f"gpu_check on {results.get('gpu')}"
    print(f"\n{title}, {results['seconds']:.0f} s")
    print(table(["check", "size", "result", "against", "target"], rows))
    if failures:
        print(f"failed: {', '.join(failures)}")
        for name in failures:
            err = results.get(name, {})
            if isinstance(err, dict) and err.get("traceback"):
                print(f"\n{name}:\n{err['traceback']}")
    results["machine"] = machine()
    if args.out:  # only there (CI's dry run leaves bench/results alone)
        path = Path(args.out)
        path.write_text(json.dumps(results, indent=1, default=str))
    else:
        path = save("gpu_check", results, latest=not args.dry_run)
    print(f"\nwrote {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
