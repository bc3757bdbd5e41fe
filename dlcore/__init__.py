"""dlcore — the engine of Deep Learning Explorer: specs, datasets, models, training jobs, the run store.

Everything a page or a script needs is re-exported here; the rest of the package is implementation.
Exports are resolved on first use (PEP 562 ``__getattr__``), so ``import dlcore`` costs nothing and a
process that only reads the run store (a queued worker) never imports torch.

Example:
    >>> import dlcore
    >>> run_id = dlcore.start_run(dlcore.DataSpec(name="mnist5k"), dlcore.get_preset("cnn-tiny"),
    ...                           dlcore.TrainSpec(epochs=1))
"""
from __future__ import annotations

import importlib

# public name -> the module that defines it (one line each; keep sorted by module)
_EXPORTS: dict[str, str] = {
    "LIMITS": "dlcore.config",
    "configure_threads": "dlcore.config",
    "data_dir": "dlcore.config",
    "thread_plan": "dlcore.config",
    "TASKS": "dlcore.data",
    "DataError": "dlcore.data",
    "Dataset": "dlcore.data",
    "DatasetInfo": "dlcore.data",
    "dataset_info": "dlcore.data",
    "dataset_names": "dlcore.data",
    "dataset_version": "dlcore.data.user",
    "delete_user": "dlcore.data",
    "import_image_zip": "dlcore.data",
    "import_table_csv": "dlcore.data",
    "import_text_corpus": "dlcore.data",
    "import_text_csv": "dlcore.data",
    "list_user": "dlcore.data",
    "load_dataset": "dlcore.data",
    "unpadded_length": "dlcore.data.base",
    "decode_tokens": "dlcore.data.tokens",
    "encode_text": "dlcore.data.tokens",
    "USER_ERRORS": "dlcore.errors",
    "describe_failure": "dlcore.errors",
    "export_run": "dlcore.export",
    "Generation": "dlcore.generation",
    "SamplingSpec": "dlcore.generation",
    "generate": "dlcore.generation",
    "next_token_distribution": "dlcore.generation",
    "export_run_bytes": "dlcore.export",
    "FAMILIES": "dlcore.models",
    "PRESETS": "dlcore.models",
    "CNNConfig": "dlcore.models",
    "MLPConfig": "dlcore.models",
    "ModelConfig": "dlcore.models",
    "ModelSummary": "dlcore.models",
    "Preset": "dlcore.models",
    "RNNConfig": "dlcore.models",
    "TransformerConfig": "dlcore.models",
    "build_model": "dlcore.models",
    "family_of": "dlcore.models",
    "for_data": "dlcore.models",
    "get_preset": "dlcore.models",
    "model_from_dict": "dlcore.models",
    "model_to_dict": "dlcore.models",
    "summarize": "dlcore.models",
    "Family": "dlcore.models",
    "list_families": "dlcore.models",
    "register_family": "dlcore.models",
    "preset_of": "dlcore.models",
    "presets_of": "dlcore.models",
    "FitReport": "dlcore.resources",
    "ResourceError": "dlcore.errors",
    "check_fit": "dlcore.resources",
    "CheckpointError": "dlcore.runs",
    "Run": "dlcore.runs",
    "RunNotFound": "dlcore.runs",
    "RunStateError": "dlcore.runs",
    "StoreError": "dlcore.runs",
    "RunStore": "dlcore.runs",
    "import_checkpoint": "dlcore.runs",
    "load_checkpoint": "dlcore.runs",
    "load_run_model": "dlcore.runs",
    "checkpoint_files": "dlcore.runs.checkpoint",
    "checkpoint_version": "dlcore.runs.checkpoint",
    "DataSpec": "dlcore.specs",
    "SpecError": "dlcore.specs",
    "TrainSpec": "dlcore.specs",
    "field_specs": "dlcore.specs",
    "FieldSpec": "dlcore.params",
    "Trainer": "dlcore.train",
    "TrainingError": "dlcore.errors",
    "cancel_run": "dlcore.train",
    "device_description": "dlcore.device",
    "evaluate_model": "dlcore.evaluation",
    "get_run": "dlcore.train",
    "list_runs": "dlcore.train",
    "pick_device": "dlcore.device",
    "predict": "dlcore.evaluation",
    "queue_position": "dlcore.train",
    "resume_run": "dlcore.train",
    "start_run": "dlcore.train",
    "start_warm_worker": "dlcore.train",
    "wait": "dlcore.train",
    "start_distributed_run": "dlcore.train.distributed",
    "prepare_run": "dlcore.train.prepare",
    "PreparedRun": "dlcore.train.prepare",
    "CompressionError": "dlcore.compress",
    "compress_run": "dlcore.compress",
    "descendants": "dlcore.compress",
    "pareto_front": "dlcore.compress",
    "remedy_specs": "dlcore.overfitting",
    "freeze_groups": "dlcore.transfer",
    "REMEDIES": "dlcore.overfitting",
    "detect_overfitting": "dlcore.overfitting",
    "TransferError": "dlcore.transfer",
    "check_init": "dlcore.transfer",
    "fine_tune": "dlcore.transfer",
}
_SUBMODULES = ("evaluation", "explain", "inspect", "viz")  # modules re-exported as attributes

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"dlcore.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dlcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return __all__
