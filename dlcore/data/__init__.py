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


def dataset_names() -> list[str]:
    """Every dataset the registry can load: built-in, optional torchvision, then uploads."""
    return list(BUILTIN) + list(TV_SETS) + [i.name for i in list_user()]


def load_dataset(spec: DataSpec) -> Dataset:
    """Load a dataset's tensors and info for a DataSpec.

    Raises:
        DataError: unknown name, missing optional package, failed download, or a damaged upload.
    """
    if spec.name in BUILTIN:
        return BUILTIN[spec.name](spec)
    if spec.name in TV_SETS:
        return load_torchvision(spec.name, spec)
    if spec.name.startswith("user-"):
        return load_user(spec)
    raise DataError(f"unknown dataset {spec.name!r}; known: {', '.join(dataset_names())}")


def dataset_info(spec: DataSpec | str) -> DatasetInfo:
    """The info of a dataset (loads it: built-in sets are small and cached)."""
    if isinstance(spec, str):
        spec = DataSpec(name=spec)
    if spec.name.startswith("user-"):
        return user_info(spec.name, spec)
    return load_dataset(spec).info


__all__ = ["TASKS", "DataError", "Dataset", "DatasetInfo", "BUILTIN", "TV_SETS", "dataset_names", "load_dataset",
           "dataset_info", "import_image_zip", "import_table_csv", "import_text_csv", "import_text_corpus",
           "list_user", "delete_user"]
