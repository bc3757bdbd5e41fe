"""Model compression: magnitude pruning, int8 quantization (onnxruntime), knowledge distillation.

Each method turns a finished run into a new run with its lineage (see ``_core``'s docstring). Names are
resolved on first use, so ``dlcore.compress.cli`` (the command's parser) imports no torch.

Example:
    >>> from dlcore.compress import compress_run
    >>> compress_run(run_id, "prune", sparsity=0.5, finetune_epochs=1)["nonzero_params"]
    46778
"""
from __future__ import annotations

import importlib

_CORE = ("CompressionError", "compress_run", "prune_global", "make_pruning_permanent", "prunable", "weight_sparsity",
         "count_params", "state_bytes", "quantize_onnx", "dequantized_weights", "ort_session", "ort_outputs",
         "distillation_loss", "teacher_loss", "LossWrapper", "wrap_training_loss", "latency_ms", "accuracy",
         "torch_outputs", "save_run", "lineage", "descendants", "pareto_front")
_CLI = ("METHODS", "QUANT_MODES", "add_cli", "run_cli")

__all__ = sorted(_CORE + _CLI)


def __getattr__(name: str):
    if name in _CLI:
        module = "dlcore.compress.cli"
    elif name in _CORE:
        module = "dlcore.compress._core"
    else:
        raise AttributeError(f"module 'dlcore.compress' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
