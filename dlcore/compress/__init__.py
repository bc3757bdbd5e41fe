"""Model compression: magnitude pruning, int8 quantization (onnxruntime), knowledge distillation.

Each method turns a finished run into a new run with its lineage (see ``_core``'s docstring). Names are
resolved on first use, so ``dlcore.compress.cli`` (the command's parser) imports no torch.

Example:
    >>> from dlcore.compress import compress_run
    >>> compress_run(run_id, "prune", sparsity=0.5, finetune_epochs=1)["nonzero_params"]
    46778
"""
from __future__ import annotations

from dlcore._lazy import lazy_exports

_CORE = ("CompressionError", "compress_run", "prune_global", "make_pruning_permanent", "prunable", "weight_sparsity",
         "count_params", "state_bytes", "quantize_onnx", "dequantized_weights", "ort_session", "ort_outputs",
         "distillation_loss", "teacher_loss", "LossWrapper", "wrap_training_loss", "latency_ms", "accuracy",
         "torch_outputs", "save_run", "lineage", "descendants", "pareto_front")
_CLI = ("METHODS", "QUANT_MODES", "add_cli", "run_cli")

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, {**{n: "dlcore.compress._core" for n in _CORE}, **{n: "dlcore.compress.cli" for n in _CLI}})
