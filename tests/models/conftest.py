"""Fixtures for the model tests: made-up dataset descriptions (no tensors) and cached small real datasets."""
from __future__ import annotations

import functools

import pytest

from dlcore import DataSpec, DatasetInfo, load_dataset


def _info(kind: str, shape: tuple, outputs: int = 3, task: str | None = None, vocab: int = 0) -> DatasetInfo:
    task = task or {"image": "image-classification", "sequence": "sequence-classification",
                    "tokens": "sequence-classification", "tabular": "tabular-classification"}[kind]
    metric = {"char-lm": "perplexity", "seq2seq": "token_accuracy", "forecasting": "mae"}.get(task, "accuracy")
    return DatasetInfo("made-up", "made up", "", task, kind, shape, outputs,
                       vocab=tuple(chr(97 + i) for i in range(vocab)), metric=metric,
                       **({"pixel_mean": 0.5, "pixel_std": 0.25} if kind == "image" else {}))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and do not fight other processes for the cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def make_info():
    """``make_info(kind, shape, outputs=3, task=None, vocab=0)``: a DatasetInfo of any shape, for ``for_data``."""
    return _info


@functools.lru_cache(maxsize=None)
def _dataset(name: str):
    small = name in ("reverse", "sort", "sentiment-synth")  # generated sets: a few examples suffice here
    return load_dataset(DataSpec(name=name, max_train=64 if small else 0))


@pytest.fixture(scope="session")
def dataset():
    """``dataset(name)``: a built-in dataset, loaded once per session."""
    return _dataset
