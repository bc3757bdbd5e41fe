"""A recurrent model: an RNN, LSTM or GRU stack over feature vectors or tokens, with either one output
per sequence (the last step) or one per step. ``seed-lstm`` is LSTM(128) → LSTM(128) → Dense(10)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlcore.models._common import ModelConfig, compute_loss
from dlcore.specs import spec_field

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class RNNConfig(ModelConfig):
    family = "rnn"
    input_size: int = spec_field(28, range=(1, 1_000_000), help="features per time step (set from the data)")
    vocab_size: int = spec_field(0, range=(0, 1_000_000), help="token vocabulary; 0 for real-valued inputs (set from the data)")
    embed_dim: int = spec_field(32, range=(1, 8192), help="token embedding size (token inputs only)")
    num_outputs: int = spec_field(10, range=(1, 1_000_000), help="classes or targets (set from the data)")
    cell: str = spec_field("lstm", choices=tuple(CELLS), help="recurrent cell")
    hidden_size: int = spec_field(128, range=(1, 8192), help="units per layer")
    num_layers: int = spec_field(2, range=(1, 32), help="stacked layers")
    bidirectional: bool = spec_field(False, help="read the sequence both ways")
    dropout: float = spec_field(0.0, range=(0.0, 0.9), help="dropout between layers")
    per_step: bool = spec_field(False, help="an output at every step (sequence-to-sequence, language model)")
    loss: str = spec_field("ce", choices=("ce", "mse"), help="loss (set from the task)")


class RNN(nn.Module):
    def __init__(self, config: RNNConfig):
        super().__init__()
        self.config = config
        in_size = config.input_size
        self.embed = None
        if config.vocab_size > 0:
            self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
            in_size = config.embed_dim
        self.rnn = CELLS[config.cell](in_size, config.hidden_size, num_layers=config.num_layers,
                                      batch_first=True, bidirectional=config.bidirectional,
                                      dropout=config.dropout if config.num_layers > 1 else 0.0)
        width = config.hidden_size * (2 if config.bidirectional else 1)
        self.head = nn.Linear(width, config.num_outputs)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):
        if self.embed is not None:
            x = self.embed(x)  # (B, T) -> (B, T, E)
        elif x.dim() == 4:
            x = x.permute(0, 2, 1, 3).flatten(2)  # image (B, C, H, W) read row by row -> (B, H, C*W)
        h, _ = self.rnn(x)  # (B, T, H * directions)
        if not self.config.per_step:
            H = self.config.hidden_size
            # forward direction ends at the last step, the backward one at the first
            h = h[:, -1] if not self.config.bidirectional else torch.cat([h[:, -1, :H], h[:, 0, H:]], -1)  # (B, H*dirs)
        out = self.head(h)  # (B, [T,] num_outputs)
        return out, compute_loss(out, targets, self.config.loss)
