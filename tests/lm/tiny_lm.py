"""Fixtures for the language-model and typed-input tests: a random tiny decoder over a small character
vocabulary, and a transformer-tiny trained on reverse (seeded, ~5 s of training)."""
from __future__ import annotations

import pytest
import torch

import dlcore
from dlcore.data.base import DatasetInfo
from dlcore.models import build_model

CHARS = tuple(sorted(set("abcdefgh ().\n")))


def lm_info(max_len: int = 16) -> DatasetInfo:
    return DatasetInfo("tiny-lm", "tiny", "", "char-lm", "tokens", (max_len,), len(CHARS), vocab=CHARS,
                       metric="perplexity")


@pytest.fixture
def lm():
    """(random decoder, its info): context 16, 2 layers × 4 heads."""
    torch.manual_seed(1234)
    cfg = dlcore.TransformerConfig(kind="decoder", vocab_size=len(CHARS), num_outputs=len(CHARS), max_len=16,
                                   d_model=32, n_heads=4, n_layers=2, d_ff=64, per_step=True)
    return build_model(cfg).eval(), lm_info(16)


@pytest.fixture(scope="session")
def reverse_model():
    """(transformer-tiny trained on reverse to ~1.0 token accuracy, its dataset)."""
    ds = dlcore.load_dataset(dlcore.DataSpec(name="reverse", max_train=2000))
    trainer = dlcore.Trainer(dlcore.get_preset("transformer-tiny"), ds,
                             dlcore.TrainSpec(epochs=2, batch_size=32, lr=3e-3, seed=0, device="cpu"))
    trainer.fit()
    return trainer.raw_model.eval(), ds
