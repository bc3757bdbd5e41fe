"""The dataset registry: built-in offline sets, optional torchvision sets and user uploads.

Example:
    >>> ds = load_dataset(DataSpec(name="digits"))
    >>> ds.info.task, ds.info.input_shape
    ('image-classification', (1, 8, 8))
"""
from __future__ import annotations

from dlcore.data.base import TASKS, DataError, Dataset, DatasetInfo
from dlcore.data.builtin import BUILTIN
from dlcore.data.torchvision_sets import TV_SETS, load_torchvision
from dlcore.data.user import (delete_user, import_image_zip, import_table_csv, import_text_corpus, import_text_csv,
                              list_user, load_user, user_info)
from dlcore.specs import DataSpec


def dataset_names(viewer=None) -> list[str]:
    """Every dataset the registry can load: built-in, optional torchvision, then uploads (with ``viewer``, a
    ``dlcore.access.Viewer``, only the uploads it may see)."""
    return list(BUILTIN) + list(TV_SETS) + [i.name for i in list_user(viewer)]


def load_dataset(spec: DataSpec) -> Dataset:
    """Load a dataset's tensors and info for a DataSpec.

    Raises:
        DataError: unknown name, missing optional package, failed download, or a damaged upload.
    """
    if spec.name in BUILTIN:
        _check_build_bytes(spec)
        ds = BUILTIN[spec.name](spec)
    elif spec.name in TV_SETS:
        ds = load_torchvision(spec.name, spec)
    elif spec.name.startswith("user-"):
        ds = load_user(spec)
    else:
        raise DataError(f"unknown dataset {spec.name!r}; known: {', '.join(dataset_names())}")
    if spec.classes or spec.per_class:  # a class subset and/or labels per class (transfer learning, issue 14)
        from dlcore.transfer import restrict_dataset
        ds = restrict_dataset(ds, spec.classes or range(ds.info.num_outputs), spec.per_class, spec.seed,
                              spec.val_fraction)
    return ds


def _check_build_bytes(spec: DataSpec) -> None:
    """Refuse a generated set too large for DLE_MAX_DATASET_MB before a byte of it is allocated."""
    from dlcore.config import LIMITS
    from dlcore.data.builtin import build_bytes

    need, limit = build_bytes(spec), LIMITS.dataset_bytes
    if need > limit:
        size = f"max_train={spec.max_train:,}" if spec.max_train else "the default size"
        length = f" and seq_len={spec.seq_len}" if spec.name in ("reverse", "sort") else ""
        raise DataError(f"{spec.name!r} with {size}{length} would take about {need / 2**20:,.0f} MB to build; the "
                        f"limit is {limit / 2**20:,.0f} MB (DLE_MAX_DATASET_MB): lower max_train"
                        f"{' or seq_len' if length else ''}")


def dataset_info(spec: DataSpec | str) -> DatasetInfo:
    """The info of a dataset (loads it: built-in sets are small and cached)."""
    if isinstance(spec, str):
        spec = DataSpec(name=spec)
    if spec.name.startswith("user-") and not (spec.classes or spec.per_class):
        return user_info(spec.name, spec)
    return load_dataset(spec).info  # a class subset: its info (num_outputs, class names, n_train) follows the cut


__all__ = ["TASKS", "DataError", "Dataset", "DatasetInfo", "BUILTIN", "TV_SETS", "dataset_names", "load_dataset",
           "dataset_info", "import_image_zip", "import_table_csv", "import_text_csv", "import_text_corpus",
           "list_user", "delete_user"]
