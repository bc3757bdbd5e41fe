"""A multi-layer perceptron over flattened inputs (tabular CSVs; the TensorFlow-Playground baseline)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlcore.models._common import ACTIVATIONS, ModelConfig, compute_loss, keras_init
from dlcore.specs import spec_field


@dataclass(frozen=True)
class MLPConfig(ModelConfig):
    family = "mlp"
    in_features: int = spec_field(64, range=(1, 10_000_000), help="input features (set from the data)")
    num_outputs: int = spec_field(10, range=(1, 100_000), help="classes or targets (set from the data)")
    hidden: tuple[int, ...] = spec_field((128, 64), range=(1, 65_536), help="width of each hidden layer")
    dropout: float = spec_field(0.0, range=(0.0, 0.9), help="dropout after each hidden layer")
    activation: str = spec_field("relu", choices=tuple(ACTIVATIONS), help="non-linearity")
    loss: str = spec_field("ce", choices=("ce", "mse"), help="loss (set from the task)")


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
