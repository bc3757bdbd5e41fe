"""``python -m dlcore compress RUN --method prune|quantize|distill [options] [--json]``.

Kept apart from the methods so that building the CLI's parser imports no torch.
"""
from __future__ import annotations

import json

METHODS = ("prune", "quantize", "distill")
QUANT_MODES = ("static", "dynamic")


def add_cli(subparsers) -> None:
    """Add ``compress`` to the CLI's subparsers (``python -m dlcore compress RUN --method ...``)."""
    c = subparsers.add_parser("compress", help="prune, quantize (int8) or distill a finished run into a new run")
    c.add_argument("run_id")
    c.add_argument("--method", required=True, choices=METHODS)
    c.add_argument("--sparsity", type=float, default=0.5, help="prune: share of weights to zero (default 0.5)")
    c.add_argument("--finetune-epochs", dest="finetune_epochs", type=int, default=1,
                   help="prune: epochs of fine-tuning with the mask kept (default 1; 0 = none)")
    c.add_argument("--finetune-lr", dest="finetune_lr", type=float, help="prune: peak rate (default: the parent's)")
    c.add_argument("--mode", choices=QUANT_MODES, default="static",
                   help="quantize: static (QDQ, calibrated; default) or dynamic")
    c.add_argument("--calibration", type=int, default=256, help="quantize: training images to calibrate on")
    c.add_argument("--student", default="cnn-tiny", help="distill: the student's preset (default cnn-tiny)")
    c.add_argument("--temperature", type=float, default=4.0, help="distill: softmax temperature T (default 4)")
    c.add_argument("--alpha", type=float, default=0.5, help="distill: weight of the soft targets (default 0.5)")
    c.add_argument("--epochs", type=int, help="distill: the student's epochs (default: the teacher's)")
    c.add_argument("--baseline", action="store_true", help="distill: also train the student without the teacher")
    c.add_argument("--seed", type=int, help="training seed (default: the parent's)")
    c.add_argument("--json", action="store_true", help="print one JSON line")


def run_cli(args) -> int:
    """The ``compress`` command: one JSON line with --json, else a few readable lines."""
    from dlcore.compress._core import compress_run

    result = compress_run(args.run_id, args.method, sparsity=args.sparsity, finetune_epochs=args.finetune_epochs,
                          finetune_lr=args.finetune_lr, mode=args.mode, calibration=args.calibration,
                          student=args.student,
                          temperature=args.temperature, alpha=args.alpha, epochs=args.epochs,
                          baseline=args.baseline, seed=args.seed)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['method']}: run {result['run_id']} (from {result['parent']})")
    print(f"  test accuracy {result['test_accuracy']:.4f} (parent {result['parent_test_accuracy']:.4f})")
    print(f"  {result['bytes']:,} bytes (parent {result['parent_bytes']:,}), {result['nonzero_params']:,} of "
          f"{result['params']:,} parameters non-zero, {result['latency_ms']:.3f} ms per example on one CPU thread")
    if "baseline" in result:
        print(f"  without the teacher: test accuracy {result['baseline']['test_accuracy']:.4f}")
    return 0
