"""dlcore — the engine of Deep Learning Explorer: specs, datasets, models, training jobs, the run store.

Everything a page or a script needs is re-exported here; the rest of the package is implementation.

Example:
    >>> import dlcore
    >>> run_id = dlcore.start_run(dlcore.DataSpec(name="mnist5k"), dlcore.get_preset("cnn-tiny"),
    ...                           dlcore.TrainSpec(epochs=1))
"""
from dlcore.config import LIMITS, data_dir
from dlcore.data import (TASKS, DataError, Dataset, DatasetInfo, dataset_info, dataset_names, delete_user,
                         import_image_zip, import_table_csv, import_text_corpus, import_text_csv, list_user,
                         load_dataset)
from dlcore.errors import USER_ERRORS, describe_failure
from dlcore.models import (FAMILIES, PRESETS, CNNConfig, MLPConfig, ModelConfig, ModelSummary, Preset, RNNConfig,
                           TransformerConfig, build_model, family_of, for_data, get_preset, model_from_dict,
                           model_to_dict, summarize)
from dlcore.resources import FitReport, ResourceError, check_fit
from dlcore.runs import (CheckpointError, Run, RunNotFound, RunStore, import_checkpoint, load_checkpoint,
                         load_run_model)
from dlcore.specs import DataSpec, SpecError, TrainSpec, field_specs
from dlcore.train import (Trainer, TrainingError, cancel_run, device_description, evaluate, get_run, list_runs,
                          pick_device, predict, queue_position, resume_run, start_run, wait)

from dlcore.export import export_run  # noqa: E402
from dlcore.train.distributed import start_distributed_run  # noqa: E402
from dlcore import evaluation, explain, inspect, viz  # noqa: E402  (modules: evaluation, explanations, inspection, figures)

__all__ = [
    "evaluation", "explain", "inspect", "viz", "export_run", "start_distributed_run",
    "LIMITS", "data_dir", "TASKS", "DataError", "Dataset", "DatasetInfo", "dataset_info", "dataset_names",
    "delete_user", "import_image_zip", "import_table_csv", "import_text_corpus", "import_text_csv", "list_user",
    "load_dataset", "USER_ERRORS", "describe_failure", "FAMILIES", "PRESETS", "CNNConfig", "MLPConfig",
    "ModelConfig", "ModelSummary", "Preset", "RNNConfig", "TransformerConfig", "build_model", "family_of",
    "for_data", "get_preset", "model_from_dict", "model_to_dict", "summarize", "CheckpointError", "Run",
    "RunNotFound", "RunStore", "import_checkpoint", "load_checkpoint", "load_run_model", "DataSpec", "SpecError",
    "TrainSpec", "field_specs", "Trainer", "TrainingError", "cancel_run", "device_description", "evaluate",
    "get_run", "list_runs", "FitReport", "ResourceError", "check_fit", "pick_device", "predict", "queue_position", "resume_run", "start_run", "wait",
]
