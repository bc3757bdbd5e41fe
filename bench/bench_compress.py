"""The advanced chapter's measurements: pruning, int8 quantization, distillation, transfer, overfitting.

Every study trains what it needs from scratch in a temporary run store (nothing touches the app's data),
on the CPU with one thread, and prints a table; the JSON goes to bench/results/latest-compress-<study>.json.

    python bench/bench_compress.py prune        # seed-cnn 5 epochs, then 50/70/90 % sparsity ± 1 epoch fine-tune
    python bench/bench_compress.py quantize     # int8 static QDQ vs dynamic: bytes, accuracy, latency side by side
    python bench/bench_compress.py distill      # seed-cnn teacher → cnn-tiny student, with and without, seeds 0-2
    python bench/bench_compress.py transfer     # pretrain on digits 0-4, fine-tune on 5-9 with 10/20/50 per class
    python bench/bench_compress.py overfit      # seed-cnn on 200 images, 30 epochs: each remedy, seeds 0-2
    python bench/bench_compress.py all --quick  # one seed, fewer epochs: a smoke run
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time

from _common import save, table  # noqa: I001  (bench/ is the script's folder)

import torch

from dlcore import PRESETS, DataSpec, RunStore, TrainSpec, get_preset, load_dataset


def _spec(preset: str, epochs: int, seed: int = 0, **changes) -> TrainSpec:
    return TrainSpec(epochs=epochs, seed=seed, device="cpu", precision="fp32").replace(
        **{**PRESETS[preset].train, **changes})


def _parent(store, preset: str = "seed-cnn", epochs: int = 5, seed: int = 0) -> tuple[str, float]:
    """Train a preset on mnist5k with its own recipe and record it; (run id, test accuracy)."""
    from dlcore.transfer import fine_tune

    res = fine_tune(None, _spec(preset, epochs, seed), data=DataSpec(name="mnist5k"), model=get_preset(preset),
                    store=store, name=f"{preset} on mnist5k")
    return res["run_id"], res["test_accuracy"]


def _mean_sd(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"


# ---------------------------------------------------------------------------------------------- studies
def study_prune(store, quick: bool) -> dict:
    from dlcore.compress import compress_run

    parent, acc = _parent(store, epochs=2 if quick else 5)
    lr = store.get(parent).train.lr
    rows, out = [["seed-cnn (parent)", "0 %", "-", "-", None, acc, 0.0, None]], []
    for sparsity in (0.5,) if quick else (0.5, 0.7, 0.8, 0.9):
        for ft, factor in ((0, None), (1, 0.1), (1, 1.0)):
            r = compress_run(parent, "prune", store=store, sparsity=sparsity, finetune_epochs=ft,
                             finetune_lr=lr * factor if factor else None, measure_latency=False)
            out.append(r)
            val = store.metrics(r["run_id"], "epoch")[-1].get("val_accuracy") if ft else None
            rows.append([f"pruned {sparsity:.0%}", f"{r['zero_share']:.1%}", ft, f"{factor:g}×" if factor else "-",
                         val, r["test_accuracy"], r["test_accuracy"] - acc, r["nonzero_params"]])
    print(table(["model", "zero weights", "fine-tune ep", "fine-tune lr", "val acc", "test acc", "Δ vs parent",
                 "non-zero params"], rows))
    return {"parent_test_accuracy": acc, "results": out}


def study_quantize(store, quick: bool) -> dict:
    from dlcore.compress import compress_run, latency_ms, ort_session
    from dlcore.export import to_onnx
    from dlcore.runs import load_run_model

    parent, acc = _parent(store, epochs=2 if quick else 5)
    res = {m: compress_run(parent, "quantize", store=store, mode=m, measure_latency=False)
           for m in ("static", "dynamic")}
    # latency of all contenders in one interleaved measurement, at batch 1 and batch 256, one thread
    _, model = load_run_model(parent, store)
    x = load_dataset(DataSpec(name="mnist5k")).test[0]
    tmp = tempfile.mkdtemp()
    fp32 = to_onnx(model, model.config, os.path.join(tmp, "fp32.onnx"))
    paths = {"onnx fp32": fp32, **{f"onnx int8 {m}": store.run_dir(r["run_id"]) / "model.int8.onnx"
                                   for m, r in res.items()}}
    lat = {}
    torch.set_num_threads(1)
    for batch in (1, 256):
        xb = x[:batch].contiguous()
        sessions = {k: ort_session(p) for k, p in paths.items()}
        fns = {"torch fp32": lambda xb=xb: model(xb)}
        fns.update({k: (lambda s=s, xn=xb.numpy(): s.run(None, {s.get_inputs()[0].name: xn}))
                    for k, s in sessions.items()})
        with torch.no_grad():
            lat[batch] = latency_ms(fns, batch, rounds=3 if quick else 9, min_seconds=0.1 if quick else 0.3)
    size32 = fp32.stat().st_size
    rows = [["torch fp32 (safetensors)", res["static"]["parent_bytes"], None, acc, lat[1]["torch fp32"],
             lat[256]["torch fp32"]],
            ["onnx fp32", size32, 1.0, res["static"]["onnx_fp32_test_accuracy"], lat[1]["onnx fp32"],
             lat[256]["onnx fp32"]]]
    for m, r in res.items():
        k = f"onnx int8 {m}"
        rows.append([k, r["bytes"], r["bytes"] / size32, r["test_accuracy"], lat[1][k], lat[256][k]])
    print(table(["model", "bytes", "× onnx fp32", "test acc", "ms/example b=1", "ms/example b=256"], rows))
    return {"parent_test_accuracy": acc, "results": res, "latency_ms": lat, "onnx_fp32_bytes": size32}


def study_distill(store, quick: bool) -> dict:
    from dlcore.compress import compress_run

    parent, acc = _parent(store, epochs=2 if quick else 5)
    seeds = (0,) if quick else (0, 1, 2)
    settings = [(4.0, 0.5)] if quick else [(4.0, 0.5), (2.0, 0.5), (4.0, 0.9), (8.0, 0.9)]
    results, rows = [], []
    base_acc: list[float] = []
    for T, alpha in settings:
        accs, val = [], []
        for s in seeds:
            r = compress_run(parent, "distill", store=store, student="cnn-tiny", temperature=T, alpha=alpha,
                             seed=s, baseline=(T, alpha) == settings[0], measure_latency=False)
            results.append(r)
            accs.append(r["test_accuracy"])
            val.append(store.metrics(r["run_id"], "epoch")[-1].get("val_accuracy"))
            if "baseline" in r:
                base_acc.append(r["baseline"]["test_accuracy"])
        rows.append([f"cnn-tiny distilled T={T:g} α={alpha:g}", results[-1]["params"], _mean_sd(val), _mean_sd(accs)])
    rows.insert(0, ["cnn-tiny alone (same epochs, seeds)", results[0]["params"], "-", _mean_sd(base_acc)])
    if not quick:  # a longer budget, the same for both: does the teacher help a student trained to the end?
        long, long_base = [], []
        for s in seeds:
            r = compress_run(parent, "distill", store=store, student="cnn-tiny", temperature=4.0, alpha=0.5, seed=s,
                             epochs=15, baseline=True, measure_latency=False)
            results.append({**r, "epochs": 15})
            long.append(r["test_accuracy"])
            long_base.append(r["baseline"]["test_accuracy"])
        rows += [["cnn-tiny alone, 15 epochs", results[0]["params"], "-", _mean_sd(long_base)],
                 ["cnn-tiny distilled T=4 α=0.5, 15 epochs", results[0]["params"], "-", _mean_sd(long)]]
    rows.insert(0, ["seed-cnn teacher", results[0]["teacher_params"], "-", f"{acc:.3f}"])
    print(table(["model", "params", "val acc", "test acc (mean ± sd over seeds)"], rows))
    return {"teacher_test_accuracy": acc, "baseline_test_accuracy": base_acc, "results": results}


def study_transfer(store, quick: bool) -> dict:
    from dlcore.transfer import fine_tune

    data = DataSpec(name="mnist5k")
    pre = fine_tune(None, _spec("seed-cnn", 2 if quick else 5), classes=(0, 1, 2, 3, 4), data=data,
                    model=get_preset("seed-cnn"), store=store, name="seed-cnn on digits 0-4")
    print(f"pretrained on digits 0-4: test accuracy {pre['test_accuracy']:.3f} (5 classes)")
    new = (5, 6, 7, 8, 9)
    epochs = 10 if quick else 30
    seeds = (0,) if quick else (0, 1, 2)
    modes = {"from scratch": None, "fine-tune all": (), "freeze conv blocks": ("features",),
             "freeze all but the output layer": ("body",)}
    rows, results = [], []
    for per_class in (10,) if quick else (10, 20, 50):
        row = [per_class]
        for mode, groups in modes.items():
            accs = []
            for s in seeds:
                spec = _spec("seed-cnn", epochs, s)
                if groups is None:
                    r = fine_tune(None, spec, classes=new, per_class=per_class, data=data, model=get_preset("seed-cnn"),
                                  store=store)
                else:
                    r = fine_tune(pre["run_id"], spec, classes=new, per_class=per_class, groups=groups, store=store)
                accs.append(r["test_accuracy"])
                results.append({"per_class": per_class, "mode": mode, "seed": s, **{k: v for k, v in r.items()
                                                                                     if k != "history"},
                                "curve": [(h["epoch"], h.get("val_loss"), h.get("val_accuracy"))
                                          for h in r["history"]]})
            row.append(_mean_sd(accs))
        rows.append(row)
    if not quick:  # the same at 10 labels per class with higher peak rates: freezing wants a faster head
        for lr in (1e-2, 3e-2):
            row = [f"10 (lr {lr:g})"]
            for mode, groups in modes.items():
                accs = []
                for s in seeds:
                    spec = _spec("seed-cnn", epochs, s, lr=lr)
                    r = fine_tune(None, spec, classes=new, per_class=10, data=data, model=get_preset("seed-cnn"),
                                  store=store) if groups is None else \
                        fine_tune(pre["run_id"], spec, classes=new, per_class=10, groups=groups, store=store)
                    accs.append(r["test_accuracy"])
                    results.append({"per_class": 10, "lr": lr, "mode": mode, "seed": s,
                                    "test_accuracy": r["test_accuracy"]})
                row.append(_mean_sd(accs))
            rows.append(row)
    print(table(["labels/class", *modes], rows))
    return {"pretrain_test_accuracy": pre["test_accuracy"], "epochs": epochs, "results": results}


def study_overfit(store, quick: bool) -> dict:
    from dlcore.compress._core import _raw, _to_contiguous
    from dlcore.overfitting import REMEDIES, Remedy, detect_overfitting, remedy_specs
    from dlcore.train import Trainer

    base_data = DataSpec(name="mnist5k", max_train=200, val_fraction=0.2)
    epochs = 10 if quick else 30
    seeds = (0,) if quick else (0, 1, 2)
    candidates = [Remedy("none", "no remedy")] + ([] if quick else [
        Remedy("dropout-0.1", "dropout 0.1", model={"dropout": 0.1}),
        Remedy("dropout-0.25", "dropout 0.25", model={"dropout": 0.25}),
        Remedy("dropout-0.5", "dropout 0.5", model={"dropout": 0.5}),
        Remedy("wd-0.01", "weight decay 0.01", train={"weight_decay": 0.01}),
        Remedy("wd-0.1", "weight decay 0.1", train={"weight_decay": 0.1}),
        Remedy("wd-0.5", "weight decay 0.5", train={"weight_decay": 0.5}),
        Remedy("wd-1", "weight decay 1.0", train={"weight_decay": 1.0}),
        Remedy("adam-l2-1e-3", "Adam, coupled L2 1e-3", train={"optimizer": "adam", "weight_decay": 1e-3}),
        Remedy("adam-l2-1e-2", "Adam, coupled L2 1e-2", train={"optimizer": "adam", "weight_decay": 1e-2}),
        Remedy("adam-l2-1e-1", "Adam, coupled L2 1e-1", train={"optimizer": "adam", "weight_decay": 1e-1}),
        Remedy("l1-1e-5", "L1 1e-5", train={"l1": 1e-5}),
        Remedy("l1-1e-4", "L1 1e-4", train={"l1": 1e-4}),
        Remedy("early-3", "early stopping, patience 3", train={"early_stop_patience": 3}),
        Remedy("early-5", "early stopping, patience 5", train={"early_stop_patience": 5}),
        Remedy("augment-1-5", "shift ±1 px, rotate ±5°", train={"augment_shift": 1.0, "augment_degrees": 5.0}),
        Remedy("augment-2-10", "shift ±2 px, rotate ±10°", train={"augment_shift": 2.0, "augment_degrees": 10.0}),
        Remedy("augment-3-15", "shift ±3 px, rotate ±15°", train={"augment_shift": 3.0, "augment_degrees": 15.0}),
        Remedy("augment+dropout", "shift ±2 px, rotate ±10°, dropout 0.25", model={"dropout": 0.25},
               train={"augment_shift": 2.0, "augment_degrees": 10.0}),
        Remedy("data-2x", "2× data", data={"max_train": 2}),
        Remedy("data-4x", "4× data", data={"max_train": 4}),
    ]) + [REMEDIES["augment"]] * quick
    rows, results = [], []
    for rem in candidates:
        accs, best_accs, gaps, flagged, stopped = [], [], [], [], []
        for s in seeds:
            data, model, train = remedy_specs(rem, base_data, get_preset("seed-cnn"), _spec("seed-cnn", epochs, s))
            trainer = Trainer(model, load_dataset(data), train)
            best: dict = {}

            def keep_best(t, row, best=best):  # the weights of the best validation epoch, to score them too
                if t.best_epoch == row["epoch"]:
                    best["state"] = copy.deepcopy(_raw(t).state_dict())

            trainer.add_callback("on_epoch_end", keep_best)
            fit = trainer.fit()
            h = trainer.history
            m = _to_contiguous(_raw(trainer)).eval()
            x, y = trainer.dataset.train
            tr = _evaluate_on(m, x, y, trainer.dataset.info)
            last_state = copy.deepcopy(m.state_dict())
            m.load_state_dict(best["state"])
            best_accs.append(_evaluate_on(m, *trainer.dataset.test, trainer.dataset.info)["accuracy"])
            m.load_state_dict(last_state)
            gaps.append(tr["accuracy"] - h[-1]["val_accuracy"])
            accs.append(fit["test_accuracy"])
            flag = detect_overfitting(h)
            flagged.append(flag[0] if flag else None)
            stopped.append(len(h))
            results.append({"remedy": rem.name, "seed": s, "test_accuracy": fit["test_accuracy"],
                            "best_epoch_test_accuracy": best_accs[-1], "gap": gaps[-1],
                            "overfit_epoch": flagged[-1], "epochs_done": len(h),
                            "curve": [(r["epoch"], r["train_loss"], r.get("val_loss"), r.get("val_accuracy"))
                                      for r in h]})
        rows.append([rem.label, _mean_sd(accs), _mean_sd(best_accs), _mean_sd(gaps),
                     ",".join("-" if f is None else str(f) for f in flagged), ",".join(map(str, stopped))])
    print(table(["remedy", "test acc", "test acc, best val epoch", "train−val acc gap", "overfit flagged at epoch",
                 "epochs run"], rows))
    return {"data": base_data.to_dict(), "epochs": epochs, "results": results}


def _evaluate_on(model, x, y, info) -> dict:
    """Loss and accuracy of a model on (x, y) in eval mode (the final train accuracy, without dropout)."""
    from dlcore.compress import accuracy, torch_outputs

    out = torch_outputs(model, x)
    return {"loss": float(torch.nn.functional.cross_entropy(out, y)), "accuracy": accuracy(out, y)}


STUDIES = {"prune": study_prune, "quantize": study_quantize, "distill": study_distill, "transfer": study_transfer,
           "overfit": study_overfit}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", choices=[*STUDIES, "all"])
    p.add_argument("--quick", action="store_true", help="one seed, fewer epochs (a smoke run; not saved as latest)")
    args = p.parse_args()
    torch.set_num_threads(1)
    for name in STUDIES if args.study == "all" else [args.study]:
        with tempfile.TemporaryDirectory() as root:
            os.environ["DLE_DATA_DIR"] = root
            t0 = time.time()
            print(f"== {name}")
            result = STUDIES[name](RunStore(root), args.quick)
            result["seconds"] = time.time() - t0
            print(f"({result['seconds']:.0f} s) saved to {save(f'compress-{name}', result, latest=not args.quick)}")


if __name__ == "__main__":
    main()
