"""A recurrent model: an RNN, LSTM or GRU stack over feature vectors or tokens, with either one output
per sequence (the last step) or one per step. ``seed-lstm`` is LSTM(128) → LSTM(128) → Dense(10)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from dlcore.models._common import ModelConfig, compute_loss, read_as_sequence, refuse_tables, sequence_steps
from dlcore.models.registry import register_family
from dlcore.specs import SpecError, spec_field

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@register_family("rnn", label="RNN", module="RNN")
@dataclass(frozen=True)
class RNNConfig(ModelConfig):
    # every step costs the same: summarize() measures two short lengths and extrapolates (the meta device
    # unrolls a recurrence op by op, which takes seconds for a deep stack over hundreds of steps)
    COST_LINEAR_IN_LENGTH: ClassVar[bool] = True
    input_size: int = spec_field(28, range=(1, 1_000_000), from_data=True, help="features per time step")
    vocab_size: int = spec_field(0, range=(0, 1_000_000), from_data=True, help="token vocabulary; 0 for real-valued inputs")
    embed_dim: int = spec_field(32, range=(1, 8192), help="token embedding size (token inputs only)")
    num_outputs: int = spec_field(10, range=(1, 1_000_000), from_data=True, help="classes or targets")
    cell: str = spec_field("lstm", choices=tuple(CELLS), help="recurrent cell")
    hidden_size: int = spec_field(128, range=(1, 8192), help="units per layer")
    num_layers: int = spec_field(2, range=(1, 32), help="stacked layers")
    bidirectional: bool = spec_field(False, help="read the sequence both ways")
    dropout: float = spec_field(0.0, range=(0.0, 0.9), help="dropout between layers")
    per_step: bool = spec_field(False, from_data=True, help="an output at every step (sequence-to-sequence, language model)")
    loss: str = spec_field("ce", choices=("ce", "mse"), from_data=True, help="loss (from the task)")

    # an RNN reads any length; an example without one (a summary before the data is known) has MNIST's 28 rows,
    # the seed LSTM's data
    EXAMPLE_STEPS: ClassVar[int] = 28

    def adapt(self, info) -> RNNConfig:
        refuse_tables(self, info)
        if info.task == "char-lm" and self.bidirectional:
            raise SpecError("bidirectional", "a language model must not read the future: turn bidirectional off")
        seq = read_as_sequence(info)
        seq.pop("max_len")  # no positions to size: any length is read
        return self.replace(**seq, **self._outputs(info))

    def example_input(self, batch=1, device="cpu", seq_len=None) -> torch.Tensor:
        length = seq_len or self.EXAMPLE_STEPS
        if self.vocab_size > 0:
            return torch.zeros(batch, length, dtype=torch.long, device=device)
        return torch.zeros(batch, length, self.input_size, device=device)

    def sequence_length(self, info) -> int | None:
        return sequence_steps(info)  # an image is read row by row

    def flops_per_sample(self, seq_len: int | None = None) -> int:
        """Linear in the length, so counted at lengths 1 and 2 and extrapolated: exact, and ~10× faster than
        tracing an LSTM step by step on the meta device (0.4 s for seed-lstm over 28 steps)."""
        seq_len = seq_len or self.EXAMPLE_STEPS
        if seq_len <= 2:
            return super().flops_per_sample(seq_len)
        f1, f2 = super().flops_per_sample(1), super().flops_per_sample(2)
        return f1 + (seq_len - 1) * (f2 - f1)

    def views(self) -> frozenset[str]:
        return super().views() | {"rnn"}


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
