"""A multi-layer perceptron over flattened inputs (tabular CSVs; the TensorFlow-Playground baseline)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dlcore.models._common import ACTIVATIONS, ModelConfig, compute_loss, data_name, keras_init, refuse
from dlcore.models.registry import register_family
from dlcore.specs import spec_field


@register_family("mlp", label="MLP", module="MLP")
@dataclass(frozen=True)
class MLPConfig(ModelConfig):
    in_features: int = spec_field(64, range=(1, 10_000_000), from_data=True, help="input features")
    num_outputs: int = spec_field(10, range=(1, 100_000), from_data=True, help="classes or targets")
    hidden: tuple[int, ...] = spec_field((128, 64), range=(1, 65_536), max_items=32, help="width of each hidden layer")
    dropout: float = spec_field(0.0, range=(0.0, 0.9), help="dropout after each hidden layer")
    activation: str = spec_field("relu", choices=tuple(ACTIVATIONS), help="non-linearity")
    loss: str = spec_field("ce", choices=("ce", "mse"), from_data=True, help="loss (from the task)")

    def adapt(self, info) -> MLPConfig:
        if info.input_kind == "tokens":  # token ids are names, not quantities: a Linear layer cannot weigh them
            refuse(f"an MLP reads numbers; {data_name(info)!r} holds tokens (text)", info)
        if info.per_step:
            refuse(f"an MLP gives one output per example; {data_name(info)!r} needs one at every step", info)
        return self.replace(in_features=math.prod(info.input_shape), **self._outputs(info))  # any input, flattened

    def example_input(self, batch=1, device="cpu", seq_len=None) -> torch.Tensor:
        return torch.zeros(batch, self.in_features, device=device)


class MLP(nn.Module):
    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        layers, width = [nn.Flatten()], config.in_features
        for h in config.hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[config.activation]()]
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            width = h
        layers.append(nn.Linear(width, config.num_outputs))
        self.net = nn.Sequential(*layers)
        keras_init(self)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):
        out = self.net(x)  # (B, num_outputs)
        return out, compute_loss(out, targets, self.config.loss)
