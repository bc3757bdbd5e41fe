"""A configurable convolutional classifier: conv blocks (conv, batch-norm, activation, pool, dropout)
then a dense head. ``seed-cnn`` is the Keras tutorial model, 93,322 parameters on 28×28×1."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlcore.models._common import (ACTIVATIONS, ModelConfig, compute_loss, data_name, keras_init, pixel_stats,
                                   refuse)
from dlcore.models.registry import register_family
from dlcore.specs import SpecError, spec_field


@register_family("cnn", label="CNN", module="CNN")
@dataclass(frozen=True)
class CNNConfig(ModelConfig):
    in_channels: int = spec_field(1, range=(1, 64), from_data=True, help="input image channels")
    image_size: int = spec_field(28, range=(4, 2048), from_data=True, help="input height and width")
    num_outputs: int = spec_field(10, range=(1, 100_000), from_data=True, help="classes")
    channels: tuple[int, ...] = spec_field((32, 64, 64), range=(1, 8192), max_items=64, help="output channels of each conv block")
    pools: tuple[int, ...] = spec_field((2, 2, 1), range=(1, 8), max_items=64, help="max-pool size after each block (1 = none)")
    kernel_size: int = spec_field(3, range=(1, 15), help="conv kernel size")
    padding: str = spec_field("valid", choices=("valid", "same"), help="'valid' shrinks the image, 'same' keeps it")
    batch_norm: bool = spec_field(False, help="batch-norm after each conv")
    dropout: float = spec_field(0.0, range=(0.0, 0.9), help="dropout after each block and dense layer")
    hidden: tuple[int, ...] = spec_field((64,), range=(1, 65_536), max_items=32, help="dense layers before the output")
    activation: str = spec_field("relu", choices=tuple(ACTIVATIONS), help="non-linearity")
    loss: str = spec_field("ce", choices=("ce", "mse"), from_data=True, help="loss (from the task)")
    input_mean: float = spec_field(0.0, range=(-1e6, 1e6), from_data=True, help="pixel mean subtracted inside the model")
    input_std: float = spec_field(1.0, range=(1e-6, 1e6), from_data=True, help="pixel std divided inside the model")

    def _check(self) -> None:
        if not self.channels:
            raise SpecError("channels", "channels must list at least one conv block")
        if len(self.pools) != len(self.channels):
            raise SpecError("pools", f"pools must have one entry per conv block ({len(self.channels)}), got {len(self.pools)}")
        self.feature_size()

    def feature_size(self) -> int:
        """Spatial size after the conv stack; raises SpecError if the image vanishes."""
        size = self.image_size
        for i, (k, p) in enumerate(zip([self.kernel_size] * len(self.channels), self.pools)):
            if self.padding == "valid":
                size = size - k + 1
            size = size // p
            if size < 1:
                raise SpecError("channels", f"the {self.image_size}px image shrinks to nothing at conv block {i + 1}; "
                                            "use padding 'same', fewer blocks or smaller pools")
        return size

    def adapt(self, info) -> CNNConfig:
        if info.input_kind != "image":
            refuse(f"a CNN needs image data; {data_name(info)!r} holds {info.input_kind} data", info)
        c, size, _ = info.input_shape
        return self.replace(in_channels=c, image_size=size, **pixel_stats(info), **self._outputs(info))

    def example_input(self, batch=1, device="cpu", seq_len=None) -> torch.Tensor:
        return torch.zeros(batch, self.in_channels, self.image_size, self.image_size, device=device)

    def views(self) -> frozenset[str]:
        return super().views() | {"filters"}


class CNN(nn.Module):
    """Conv blocks → flatten → dense head; ``forward(x, targets=None) -> (logits, loss)``."""

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        act = ACTIVATIONS[config.activation]
        blocks, c_in = [], config.in_channels
        for c_out, pool in zip(config.channels, config.pools):
            layers = [nn.Conv2d(c_in, c_out, config.kernel_size, padding=0 if config.padding == "valid" else "same")]
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(act())
            if pool > 1:
                layers.append(nn.MaxPool2d(pool))
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        head, width = [nn.Flatten()], c_in * config.feature_size() ** 2
        for h in config.hidden:
            head += [nn.Linear(width, h), act()] + ([nn.Dropout(config.dropout)] if config.dropout > 0 else [])
            width = h
        head.append(nn.Linear(width, config.num_outputs))
        self.head = nn.Sequential(*head)
        keras_init(self)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):
        x = (x - self.config.input_mean) / self.config.input_std  # inputs stay in pixel units outside
        h = self.features(x)  # (B, C, H', W')
        logits = self.head(h)  # (B, num_outputs)
        return logits, compute_loss(logits, targets, self.config.loss)
