"""Model families, their size presets, and what a model costs before it is trained.

Each family is one module (``cnn.py``, ``rnn.py``, ``transformer.py``, ``mlp.py``) whose config class
registers itself with ``@register_family`` and says how it adapts to a dataset, what it reads and which
inspection views apply; this package only imports them. A new family is one new module imported here.

Example:
    >>> cfg = get_preset("seed-cnn")
    >>> summarize(cfg).params
    93322
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from dlcore.data.base import DatasetInfo
from dlcore.models._common import VIEWS, ModelConfig
from dlcore.models.registry import FAMILIES, Family, get_family, list_families, register_family, unregister_family
from dlcore.models.summary import ModelSummary, build_model, count_params, summarize
from dlcore.specs import SpecError, build

# the families: importing a module registers it (order = the order the app lists them in)
from dlcore.models.cnn import CNN, CNNConfig
from dlcore.models.rnn import RNN, RNNConfig
from dlcore.models.transformer import Transformer, TransformerConfig
from dlcore.models.mlp import MLP, MLPConfig


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: ModelConfig
    data: str  # the dataset it is meant for, used as the default in the app and CLI
    train: dict = dataclasses.field(default_factory=dict)  # recommended TrainSpec settings
    data_set: dict = dataclasses.field(default_factory=dict)  # recommended DataSpec settings, its own dataset


_T = TransformerConfig
# Data-dependent fields (sizes of inputs and outputs) are filled in by for_data(); the values given here
# (an ASCII vocabulary for the language models) only make each preset a valid model on its own.
PRESETS: dict[str, Preset] = {p.name: p for p in [
    # the three tutorial models our users start from
    Preset("seed-cnn", "Tutorial CNN: Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10 (93,322 params on MNIST)",
           CNNConfig(), "mnist5k", {"lr": 2e-3, "schedule": "cosine"}),
    Preset("seed-lstm", "Tutorial LSTM: LSTM(128) → LSTM(128) → Dense(10) over 28 rows of 28 pixels",
           RNNConfig(cell="lstm", hidden_size=128, num_layers=2), "mnist-rows",
           # one-cycle with clipping: ~0.945 test accuracy in 5 epochs over seeds 0-2 (cosine at 1e-3: 0.891)
           {"lr": 5e-3, "schedule": "onecycle", "grad_clip": 1.0}),
    Preset("seed-transformer", "Base Transformer encoder of 'Attention Is All You Need': 6 layers, 8 heads, d_model 512",
           _T(kind="encoder", d_model=512, n_heads=8, n_layers=6, d_ff=2048, dropout=0.1), "sentiment-synth"),
    # CNN sizes
    Preset("cnn-tiny", "Two small conv blocks, ~15K params: trains in seconds on a CPU",
           CNNConfig(channels=(8, 16), pools=(2, 2), hidden=(32,)), "mnist5k"),
    Preset("cnn-medium", "Four conv blocks with batch-norm and dropout, 'same' padding",
           CNNConfig(channels=(32, 64, 128, 128), pools=(1, 2, 2, 2), padding="same", batch_norm=True,
                     dropout=0.1, hidden=(256,)), "mnist5k"),
    Preset("cnn-xl", "Wide VGG-style CNN, ~138M params: GPU only",
           CNNConfig(channels=(256, 512, 1024, 2048, 2048), pools=(1, 2, 2, 2, 1), padding="same", batch_norm=True,
                     hidden=(4096,)), "mnist5k"),
    # RNN sizes
    Preset("rnn-tiny", "One GRU layer of 32 units, ~6K params", RNNConfig(cell="gru", hidden_size=32, num_layers=1),
           "mnist-rows"),
    Preset("rnn-forecast", "Two-layer GRU forecaster for time series", RNNConfig(cell="gru", hidden_size=64, num_layers=2),
           "sunspots"),
    Preset("rnn-seq2seq", "Bidirectional GRU tagger for the reverse/sort tasks",
           RNNConfig(cell="gru", hidden_size=64, num_layers=2, bidirectional=True), "reverse"),
    Preset("rnn-xl", "Six LSTM layers of 2,048 units, ~200M params: GPU only",
           RNNConfig(cell="lstm", hidden_size=2048, num_layers=6), "mnist-rows"),
    # Transformer sizes
    Preset("transformer-tiny", "Encoder, 2 layers × 4 heads, d_model 64: reverse/sort in a minute on a CPU",
           _T(kind="encoder", d_model=64, n_heads=4, n_layers=2, d_ff=128), "reverse"),
    Preset("vit-tiny", "Vision Transformer on 7×7 patches, 4 layers × 4 heads, d_model 64",
           _T(kind="vit", patch_size=7, d_model=64, n_heads=4, n_layers=4, d_ff=128), "mnist5k",
           {"lr": 3e-3, "schedule": "onecycle"}),  # ~0.91 test accuracy in 5 epochs (cosine at 1e-3: 0.855)
    # 3 layers, context 64, no dropout: ~1.7 bits per character on pydoc-lm's test text and Python-docs-like
    # samples after ~3 CPU-minutes of training; deeper, longer-context or dropout variants learn less in that time
    Preset("lm-tiny", "Character decoder LM, 3 layers × 4 heads, d_model 128, context 64: writes Python-docs-like "
                      "text after ~3 minutes on a CPU",
           _T(kind="decoder", vocab_size=128, num_outputs=128, d_model=128, n_heads=4, n_layers=3, d_ff=512),
           "pydoc-lm", {"epochs": 8, "batch_size": 32, "lr": 3e-3, "warmup_steps": 100, "schedule": "cosine"},
           data_set={"window": 64}),
    Preset("transformer-xl", "Encoder, 12 layers × 16 heads, d_model 1024, ~150M params: GPU only",
           _T(kind="encoder", d_model=1024, n_heads=16, n_layers=12, d_ff=4096, dropout=0.1), "sentiment-synth"),
    Preset("lm-xl", "GPT-2-sized character LM, 16 layers × 12 heads, d_model 768, ~113M params: GPU only",
           _T(kind="decoder", vocab_size=128, num_outputs=128, d_model=768, n_heads=12, n_layers=16, d_ff=3072,
              dropout=0.1), "pydoc-lm"),
    # MLP sizes: the family for tables (an uploaded CSV of numbers and a label); any image or series
    # is read flattened
    Preset("mlp-tiny", "One hidden layer of 32 units: a baseline that trains in seconds",
           MLPConfig(hidden=(32,)), "digits"),
    Preset("mlp-small", "Two hidden layers (128, 64) with ReLU: the model for tables of numbers",
           MLPConfig(hidden=(128, 64)), "digits"),
]}


def get_preset(name: str) -> ModelConfig:
    """The config of a named preset; raises SpecError listing the known names."""
    if name not in PRESETS:
        raise SpecError("model", f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name].config


def presets_of(family: str) -> list[str]:
    """Names of the presets of one family, in catalogue order."""
    return [n for n, p in PRESETS.items() if p.config.family == family]


def preset_of(config: ModelConfig) -> str:
    """The preset this config equals once both read the same data (fields set from the data, and what the
    family derives from them, such as a ViT's patch size, are ignored), else ``"custom"``.

    Example:
        >>> preset_of(for_data(get_preset("cnn-tiny"), dataset_info("digits")))
        'cnn-tiny'
    """
    for name, p in PRESETS.items():
        if type(p.config) is type(config) and p.config.with_data_of(config) == config:
            return name
    return "custom"


def family_of(config: ModelConfig) -> str:
    return type(config).family


def model_to_dict(config: ModelConfig) -> dict:
    """JSON-ready form: ``{"family": ..., "config": {...}}``."""
    return {"family": family_of(config), "config": config.to_dict()}


def model_from_dict(data: dict) -> ModelConfig:
    """Rebuild and validate a model config from :func:`model_to_dict` output."""
    if not isinstance(data, dict) or "family" not in data:
        raise SpecError("family", "model spec needs a 'family' (one of " + ", ".join(FAMILIES) + ")")
    family, config = data["family"], data.get("config") or {}
    if not isinstance(family, str):
        raise SpecError("family", f"family must be one of {', '.join(FAMILIES)}, got {type(family).__name__}")
    if not isinstance(config, dict):
        raise SpecError("config", f"a model spec's 'config' must be an object of fields, got {type(config).__name__}")
    return build(get_family(family).config, config)


def for_data(config: ModelConfig, info: DatasetInfo) -> ModelConfig:
    """Fill in the data-dependent fields (input shape, outputs, loss) so the model fits the dataset: the
    family's :meth:`ModelConfig.adapt`.

    Raises:
        SpecError: the family cannot read this kind of data, with what to choose instead.
    """
    return config.adapt(info)


def example_input(config: ModelConfig, batch: int = 1, device: str | torch.device = "cpu",
                  seq_len: int | None = None) -> torch.Tensor:
    """A zero input of the shape the model reads (tokens are long tensors): the family's
    :meth:`ModelConfig.example_input`."""
    return config.example_input(batch, device, seq_len=seq_len)


__all__ = ["FAMILIES", "Family", "register_family", "unregister_family", "list_families", "get_family", "VIEWS",
           "PRESETS", "Preset", "get_preset", "presets_of", "preset_of", "family_of", "model_to_dict",
           "model_from_dict", "build_model", "for_data", "summarize", "ModelSummary", "example_input",
           "count_params", "CNNConfig", "RNNConfig", "TransformerConfig", "MLPConfig", "ModelConfig",
           "CNN", "RNN", "Transformer", "MLP"]
