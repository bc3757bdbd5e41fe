"""Run store and checkpoints."""
from __future__ import annotations

from dlcore.runs.checkpoint import (CheckpointError, import_checkpoint, load_checkpoint, model_from_tensors,
                                    read_safetensors, save_checkpoint)
from dlcore.runs.store import ACTIVE, STATUSES, Run, RunNotFound, RunStore


def load_run_model(run_id: str, store: RunStore | None = None):
    """(run, model in eval mode on the CPU) for a stored run, rebuilt from its checkpoint's own spec."""
    store = store or RunStore()
    run = store.get(run_id)
    tensors, meta = load_checkpoint(store.run_dir(run_id))
    from dlcore.models import model_from_dict

    config = model_from_dict(meta["model"]) if "model" in meta else run.model
    return run, model_from_tensors(config, tensors)


__all__ = ["ACTIVE", "STATUSES", "Run", "RunNotFound", "RunStore", "CheckpointError", "save_checkpoint",
           "load_checkpoint", "read_safetensors", "model_from_tensors", "import_checkpoint", "load_run_model"]
