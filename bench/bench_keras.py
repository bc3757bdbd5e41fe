"""dlcore's Trainer against the tutorial's own Keras models (TensorFlow, CPU), when tensorflow is installed.

The Keras models are the ones the seed presets reproduce: the TensorFlow CNN tutorial's
Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10 (93,322 parameters) and LSTM(128) → LSTM(128) → Dense(10).
Both sides use the tutorial's settings: Adam at 1e-3, constant, batch 32, the same mnist5k split, a
validation pass per epoch and a test pass, the same thread count; rounds are interleaved.

tensorflow is not a dependency of this project; without it this benchmark prints why and exits 0.

    pip install tensorflow-cpu && python bench/bench_keras.py [--epochs 2] [--repeats 3]
    python bench/bench_keras.py --threads 0 --hogs 2 --epochs 1   # each side's own threading, beside two CPU hogs

``--threads 0`` leaves each framework its own choice: TensorFlow's default pools, and dlcore's thread rule
(``configure_threads``: passive waiting, the cores a job may have) — what a user of each gets. ``--hogs N``
runs N busy processes during the measured rounds (a shared classroom machine).
"""
from __future__ import annotations

import argparse
import os
import time

from _common import cpu_hogs, interleaved, median, save, table  # noqa: I001  (bench/ is the script's folder)

CASES = [("seed-cnn", "mnist5k"), ("seed-lstm", "mnist-rows")]


def keras_model(preset: str):
    from tensorflow import keras
    from tensorflow.keras import layers

    if preset == "seed-cnn":
        return keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                                 layers.MaxPooling2D(2), layers.Conv2D(64, 3, activation="relu"),
                                 layers.MaxPooling2D(2), layers.Conv2D(64, 3, activation="relu"), layers.Flatten(),
                                 layers.Dense(64, activation="relu"), layers.Dense(10)])
    return keras.Sequential([keras.Input((28, 28)), layers.LSTM(128, return_sequences=True), layers.LSTM(128),
                             layers.Dense(10)])


def run_keras(preset: str, ds, epochs: int, seed: int = 0) -> dict:
    import tensorflow as tf

    t0 = time.perf_counter()
    tf.keras.utils.set_random_seed(seed)
    model = keras_model(preset)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    to_np = (lambda t: t.numpy().transpose(0, 2, 3, 1)) if preset == "seed-cnn" else (lambda t: t.numpy())  # NHWC
    (x, y), (xv, yv), (xt, yt) = ds.train, ds.val, ds.test
    model.fit(to_np(x), y.numpy(), batch_size=32, epochs=epochs, shuffle=True, verbose=0,
              validation_data=(to_np(xv), yv.numpy()))
    _, acc = model.evaluate(to_np(xt), yt.numpy(), batch_size=128, verbose=0)
    params = model.count_params()
    return {"seconds": time.perf_counter() - t0, "test_accuracy": float(acc), "params": params}


def run_dlcore(preset: str, ds, epochs: int, seed: int = 0) -> dict:
    from dlcore import Trainer, TrainSpec, get_preset, summarize
    from dlcore.models import for_data

    t0 = time.perf_counter()
    spec = TrainSpec(epochs=epochs, batch_size=32, lr=1e-3, optimizer="adam", schedule="constant", seed=seed)
    summary = Trainer(get_preset(preset), ds, spec).fit()
    params = summarize(for_data(get_preset(preset), ds.info)).params
    return {"seconds": time.perf_counter() - t0, "test_accuracy": summary["test_accuracy"], "params": params}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1,
                   help="threads for both frameworks (see bench_trainer.py); 0: each framework's own default")
    p.add_argument("--hogs", type=int, default=0, help="CPU-bound processes running beside the measured rounds")
    p.add_argument("--quick", action="store_true", help="1 epoch, 1 round")
    args = p.parse_args()
    if args.quick:
        args.epochs, args.repeats = 1, 1
    if args.threads == 0:  # dlcore's own rule, set before torch loads (passive waiting is read at load time)
        from dlcore.config import configure_threads

        configure_threads("train", cap=1)
    try:
        import tensorflow as tf
    except ImportError:
        print("bench_keras: skipped — tensorflow is not installed (pip install tensorflow-cpu to compare with the "
              "tutorial's Keras models)")
        return 0
    import torch

    from dlcore import DataSpec, load_dataset

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        torch.set_num_threads(args.threads)
    results, rows = [], []
    for preset, data in CASES:
        ds = load_dataset(DataSpec(name=data))
        run_keras(preset, ds, 1)  # warm-up: TensorFlow's graph tracing and kernels
        run_dlcore(preset, ds, 1)
        with cpu_hogs(args.hogs):
            runs = interleaved({"dlcore": lambda: run_dlcore(preset, ds, args.epochs),
                                "keras": lambda: run_keras(preset, ds, args.epochs)}, args.repeats)
        n = len(ds.train[0]) * args.epochs
        sps = {k: [n / r["seconds"] for r in v] for k, v in runs.items()}
        ratio = median([a / b for a, b in zip(sps["dlcore"], sps["keras"])])
        results.append({"preset": preset, "data": data, "epochs": args.epochs, "ratio_dlcore_over_keras": ratio,
                        "samples_per_s": {k: median(v) for k, v in sps.items()}, "samples_per_s_all": sps,
                        "test_accuracy": {k: v[-1]["test_accuracy"] for k, v in runs.items()},
                        "params": {k: v[-1]["params"] for k, v in runs.items()}})
        for k in ("dlcore", "keras"):
            rows.append([f"{preset} on {data}", k, results[-1]["params"][k], median(sps[k]),
                         f"{ratio:.3f}x" if k == "keras" else "-", f"{runs[k][-1]['test_accuracy']:.4f}"])
    threads = f"{args.threads} threads" if args.threads else "each framework's own threads"
    print(f"Adam 1e-3, batch 32, {args.epochs} epoch(s), median of {args.repeats} interleaved rounds, "
          f"{threads}, {args.hogs} CPU hogs beside, tensorflow {tf.__version__}")
    print(table(["case", "framework", "params", "samples/s", "dlcore/keras", "test acc"], rows))
    command = (f"python bench/bench_keras.py --epochs {args.epochs} --repeats {args.repeats} --threads {args.threads}"
               f" --hogs {args.hogs}")
    path = save("keras" if not args.hogs else "keras-hogs", {"command": command, "tensorflow": tf.__version__,
                                                              "hogs": args.hogs, "cases": results},
                latest=not args.quick)
    print(f"\nwrote {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
