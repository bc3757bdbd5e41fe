"""Tiny seeded models shared by the inspect and explain tests (random weights: the properties tested hold for
any weights), their dataset infos, and inputs. Imported by both folders' conftest.py."""
from __future__ import annotations

import pytest
import torch

import dlcore
from dlcore.data.base import DatasetInfo
from dlcore.models import build_model

DIGITS = tuple(str(i) for i in range(10))


def image_info(size: int = 8, channels: int = 1) -> DatasetInfo:
    return DatasetInfo("tiny-images", "tiny", "", "image-classification", "image", (channels, size, size), 10, DIGITS)


def token_info(T: int = 6, task: str = "seq2seq") -> DatasetInfo:
    return DatasetInfo("tiny-tokens", "tiny", "", task, "tokens", (T,), 10, DIGITS, vocab=DIGITS,
                       metric="token_accuracy", expected_attention="reverse")


def seq_info(T: int = 7, F: int = 3) -> DatasetInfo:
    return DatasetInfo("tiny-seq", "tiny", "", "sequence-classification", "sequence", (T, F), 4, ("a", "b", "c", "d"))


def tabular_info(F: int = 5) -> DatasetInfo:
    return DatasetInfo("tiny-table", "tiny", "", "tabular-classification", "tabular", (F,), 3, ("x", "y", "z"),
                       features=tuple(f"f{i}" for i in range(F)))


def make(config, seed: int = 1234):
    torch.manual_seed(seed)
    return build_model(config).eval()


@pytest.fixture
def cnn():
    return make(dlcore.CNNConfig(in_channels=1, image_size=8, channels=(4, 6), pools=(2, 1), hidden=(12,),
                                 input_mean=0.2, input_std=0.3))


@pytest.fixture
def vit():
    return make(dlcore.TransformerConfig(kind="vit", image_size=8, patch_size=4, d_model=16, n_heads=2, n_layers=2,
                                         d_ff=32))


@pytest.fixture
def encoder():
    return make(dlcore.TransformerConfig(kind="encoder", vocab_size=10, max_len=6, d_model=16, n_heads=2, n_layers=2,
                                         d_ff=32, per_step=True))


@pytest.fixture
def decoder():
    return make(dlcore.TransformerConfig(kind="decoder", vocab_size=10, max_len=6, d_model=16, n_heads=2,
                                         n_layers=2, d_ff=32, per_step=True))


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(5, 1, 8, 8, generator=g)


@pytest.fixture
def tokens():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 10, (4, 6), generator=g)
