"""Run store and checkpoints.

Names are resolved on first use (like ``dlcore/__init__.py``): ``import dlcore.runs.store`` — what a
queued worker does — imports no torch; checkpoints (safetensors, the models) are loaded when first asked for.
"""
from __future__ import annotations

from dlcore._lazy import lazy_exports

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "CheckpointError": "dlcore.runs.checkpoint",
    "import_checkpoint": "dlcore.runs.checkpoint",
    "load_checkpoint": "dlcore.runs.checkpoint",
    "load_run_model": "dlcore.runs.checkpoint",
    "model_from_tensors": "dlcore.runs.checkpoint",
    "read_safetensors": "dlcore.runs.checkpoint",
    "resume_state": "dlcore.runs.checkpoint",
    "weights_checksum": "dlcore.runs.checkpoint",
    "save_checkpoint": "dlcore.runs.checkpoint",
    "ACTIVE": "dlcore.runs.store",
    "STATUSES": "dlcore.runs.store",
    "Run": "dlcore.runs.store",
    "RunNotFound": "dlcore.runs.store",
    "RunStateError": "dlcore.runs.store",
    "StoreError": "dlcore.runs.store",
    "RunStore": "dlcore.runs.store",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
