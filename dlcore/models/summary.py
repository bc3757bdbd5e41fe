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


# weight-initialisation writes: on meta tensors they have nothing to write, and the decomposition some of them
# use there (normal_) imports torch._dynamo on first use (~2 s: the first Transformer a server summarised)
_INIT_WRITES = frozenset({"normal_", "uniform_", "erfinv_", "clamp_", "zero_", "fill_", "mul_", "add_", "copy_",
                          "exponential_", "bernoulli_"})


class _SkipMetaInit(torch.overrides.TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _INIT_WRITES:
            target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))  # torch.nn.init passes tensor=
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


def build_meta_model(config: ModelConfig) -> nn.Module:
    """The module for a config on the meta device (shapes and dtypes, no memory, no initial values): for
    summaries and for checking weights against a spec."""
    with torch.device("meta"), _SkipMetaInit():
        return build_model(config)


_SHORT = 7  # the two lengths a recurrent model is measured at (COST_LINEAR_IN_LENGTH); see summarize


def summarize(config: ModelConfig, seq_len: int | None = None) -> ModelSummary:
    """Parameters, FLOPs per sample and a layer table, from one forward pass on the meta device.

    A model whose config says ``COST_LINEAR_IN_LENGTH`` (recurrent networks: every step costs the same) is
    measured at two short lengths and its FLOPs and activations extrapolated to ``seq_len`` — exact for such a
    model, and bounded in time whatever the length and depth.

    Args:
        config: a model config (adapted to its data, ideally).
        seq_len: steps of a sequence model's example (``config.sequence_length(info)``); None for its own.
    """
    if seq_len and seq_len > 2 * _SHORT and getattr(config, "COST_LINEAR_IN_LENGTH", False):
        a, b = _measure(config, _SHORT), _measure(config, 2 * _SHORT)
        k = (seq_len - _SHORT) / _SHORT

        def at_length(u: int, v: int) -> int:
            return int(round(u + (v - u) * k))

        layers = [{**lb, "output_shape": tuple(seq_len if da != db else db
                                               for da, db in zip(la["output_shape"], lb["output_shape"]))}
                  for la, lb in zip(a.layers, b.layers)]
        return ModelSummary(params=b.params, trainable=b.trainable,
                            flops_per_sample=at_length(a.flops_per_sample, b.flops_per_sample), layers=layers,
                            activation_bytes_per_sample=at_length(a.activation_bytes_per_sample,
                                                                  b.activation_bytes_per_sample))
    return _measure(config, seq_len)


def _measure(config: ModelConfig, seq_len: int | None) -> ModelSummary:
    """One forward pass on the meta device, counted (:func:`summarize`)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_meta_model(config)
    with torch.device("meta"):
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
