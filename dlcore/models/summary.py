"""What a model costs before it is trained: parameters, FLOPs and activations from one forward pass on the
meta device (nothing is allocated, so an XL preset is summarised instantly)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from dlcore.models._common import ModelConfig
from dlcore.models.registry import get_family


@dataclass
class ModelSummary:
    """What a model costs, computed before training on the meta device (no memory is allocated)."""
    params: int
    trainable: int
    flops_per_sample: int  # forward pass, multiply-add counted as 2
    layers: list[dict]  # name, type, output shape, params
    activation_bytes_per_sample: int

    def train_memory_bytes(self, batch_size: int, bytes_per_value: int = 4, optimizer: str = "adamw") -> int:
        """Weights + gradients + optimizer state + activations kept for backward (rough, ~±30%)."""
        state = {"adamw": 2, "adam": 2, "sgd": 1}.get(optimizer, 2)
        weights = self.params * 4 * (2 + state)
        return int(weights + batch_size * self.activation_bytes_per_sample * bytes_per_value / 4 * 1.5)


def build_model(config: ModelConfig) -> nn.Module:
    """Instantiate the module for a config (on the current default device)."""
    return get_family(config.family).module(config)


def summarize(config: ModelConfig, seq_len: int | None = None) -> ModelSummary:
    """Parameters, FLOPs per sample and a layer table, from one forward pass on the meta device.

    Args:
        config: a model config (adapted to its data, ideally).
        seq_len: steps of a sequence model's example (``config.sequence_length(info)``); None for its own.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(config)
        x = config.example_input(1, "meta", seq_len=seq_len)
    layers, act_numel, handles = [], [0], []

    def hook(name):
        def fn(mod, inp, out):
            t = out[0] if isinstance(out, tuple) else out
            if isinstance(t, torch.Tensor):
                act_numel[0] += t.numel()
                layers.append({"name": name, "type": type(mod).__name__, "output_shape": tuple(t.shape[1:]),
                               "params": sum(p.numel() for p in mod.parameters(recurse=False)),
                               # a stacked LSTM/GRU is one module: the diagram says how many layers it holds
                               **({"num_layers": mod.num_layers} if isinstance(getattr(mod, "num_layers", None), int)
                                  else {})})
        return fn

    try:
        for name, mod in model.named_modules():
            if name and not list(mod.children()):
                handles.append(mod.register_forward_hook(hook(name)))
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    # parameters not owned by a leaf module (positional embeddings, [CLS]) still count
    params = sum(p.numel() for p in model.parameters())
    return ModelSummary(params=params, trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
                        flops_per_sample=int(counter.get_total_flops()), layers=layers,
                        activation_bytes_per_sample=int(act_numel[0] * 4))


@functools.lru_cache(maxsize=64)
def forward_flops(config: ModelConfig, seq_len: int | None = None) -> int:
    """``summarize(config, seq_len).flops_per_sample``, cached per (config, length): the trainer asks once
    per run and the fit check once per form change."""
    return summarize(config, seq_len=seq_len).flops_per_sample


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
