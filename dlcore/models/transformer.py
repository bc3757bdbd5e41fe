"""Transformers: an encoder over tokens or feature vectors (classifier or per-token outputs), a ViT
over image patches, and a small decoder-only character language model — one module, three ``kind``s.

Attention has two paths (STYLE.md, example 4): training uses ``F.scaled_dot_product_attention``
(fused/flash kernels, no weights); for inspection ``explicit=True`` computes ``softmax(QKᵀ/√d)``
through the named submodule ``attend`` so that a recorder can hook it. Both give the same output.
``seed-transformer`` is the base model of "Attention Is All You Need": 6 layers, 8 heads, d_model 512.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from dlcore.models._common import (ModelConfig, compute_loss, data_name, pixel_stats, read_as_sequence, refuse_tables,
                                   sequence_steps)
from dlcore.models.registry import register_family
from dlcore.specs import SpecError, spec_field


@register_family("transformer", label="Transformer", module="Transformer")
@dataclass(frozen=True)
class TransformerConfig(ModelConfig):
    kind: str = spec_field("encoder", choices=("encoder", "vit", "decoder"),
                           help="encoder (classify or tag a sequence), vit (image patches) or decoder (language model)")
    vocab_size: int = spec_field(0, range=(0, 1_000_000), from_data=True, help="token vocabulary; 0 for real-valued inputs")
    input_size: int = spec_field(28, range=(1, 1_000_000), from_data=True, help="features per step for real-valued inputs")
    max_len: int = spec_field(64, range=(1, 65_536), from_data=True, help="longest sequence (positions)")
    image_size: int = spec_field(28, range=(4, 2048), from_data=True, help="image height and width, ViT")
    in_channels: int = spec_field(1, range=(1, 64), from_data=True, help="image channels, ViT")
    patch_size: int = spec_field(7, range=(1, 256), help="ViT patch size; must divide the image size (lowered to a divisor)")
    num_outputs: int = spec_field(10, range=(1, 1_000_000), from_data=True, help="classes, targets or vocabulary")
    d_model: int = spec_field(64, range=(8, 16_384), help="embedding width")
    n_heads: int = spec_field(4, range=(1, 256), help="attention heads; must divide d_model")
    n_layers: int = spec_field(2, range=(1, 128), help="transformer blocks")
    d_ff: int = spec_field(128, range=(8, 65_536), help="feed-forward width")
    dropout: float = spec_field(0.0, range=(0.0, 0.9), help="dropout")
    per_step: bool = spec_field(False, from_data=True, help="an output per token (tagging, sequence-to-sequence, LM)")
    loss: str = spec_field("ce", choices=("ce", "mse"), from_data=True, help="loss (from the task)")
    input_mean: float = spec_field(0.0, range=(-1e6, 1e6), from_data=True, help="pixel mean subtracted inside a ViT")
    input_std: float = spec_field(1.0, range=(1e-6, 1e6), from_data=True, help="pixel std divided inside a ViT")

    def _check(self) -> None:
        if self.d_model % self.n_heads:
            raise SpecError("n_heads", f"n_heads must divide d_model ({self.d_model}), got {self.n_heads}")
        if self.kind == "vit" and self.image_size % self.patch_size:
            raise SpecError("patch_size", f"patch_size must divide image_size ({self.image_size}), got {self.patch_size}")
        if self.kind == "decoder" and self.vocab_size < 1:
            raise SpecError("vocab_size", "a decoder language model needs token inputs (vocab_size ≥ 1)")

    @property
    def seq_len(self) -> int:
        """Positions the model holds: patches + [CLS] for a ViT, else max_len."""
        return (self.image_size // self.patch_size) ** 2 + 1 if self.kind == "vit" else self.max_len

    def _fit_patch(self, size: int) -> int:
        """The largest patch size up to the chosen one that divides the image size."""
        return max(p for p in range(1, min(self.patch_size, size) + 1) if size % p == 0)

    def adapt(self, info) -> TransformerConfig:
        refuse_tables(self, info)
        if self.kind == "vit":
            if info.input_kind != "image":
                raise SpecError("kind", f"a ViT needs images; {data_name(info)!r} holds {info.input_kind} data: "
                                        "use kind 'encoder'")
            c, size, _ = info.input_shape
            return self.replace(in_channels=c, image_size=size, patch_size=self._fit_patch(size),
                                **pixel_stats(info), **self._outputs(info))
        if info.task == "char-lm" and self.kind != "decoder":
            raise SpecError("kind", "a language model must not read the future: use kind 'decoder'")
        if self.kind == "decoder" and info.task != "char-lm":
            raise SpecError("kind", f"a decoder only sees the past, which suits language modelling; use 'encoder' "
                                    f"for {info.task}")
        return self.replace(**read_as_sequence(info), **self._outputs(info))

    def with_data_of(self, other: ModelConfig) -> TransformerConfig:
        fitted = super().with_data_of(other)
        return fitted.unchecked_replace(patch_size=fitted._fit_patch(fitted.image_size)) if self.kind == "vit" \
            else fitted

    def example_input(self, batch=1, device="cpu", seq_len=None) -> torch.Tensor:
        if self.kind == "vit":
            return torch.zeros(batch, self.in_channels, self.image_size, self.image_size, device=device)
        length = seq_len or self.max_len
        if self.vocab_size > 0:
            return torch.zeros(batch, length, dtype=torch.long, device=device)
        return torch.zeros(batch, length, self.input_size, device=device)

    def sequence_length(self, info) -> int | None:
        """Positions read: patches + [CLS] for a ViT, else the tokens, steps or image rows of the data."""
        if self.kind == "vit" and info.input_kind == "image":
            size = info.input_shape[1]
            return (size // self._fit_patch(size)) ** 2 + 1
        return sequence_steps(info)

    def views(self) -> frozenset[str]:
        return super().views() | {"attention"} | ({"filters"} if self.kind == "vit" else set())


class KVCache:
    """One attention layer's keys and values for the positions read so far: generation feeds one new token
    per step and reuses them instead of recomputing the whole context (``Transformer.new_cache()``)."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None  # (B, nh, positions, hs)
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.size(2)

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's keys and values (B, nh, T, hs); returns all of them (B, nh, past + T, hs)."""
        if self.k is not None:
            k, v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        self.k, self.v = k, v
        return k, v


class Attention(nn.Module):
    """Multi-head self-attention with a fast (SDPA) and an explicit, hookable path; a decoder can also read
    earlier positions' keys and values from a :class:`KVCache`."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.causal = config.kind == "decoder"
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.attend = nn.Softmax(dim=-1)  # used (and hooked) on the explicit path only
        self.drop = config.dropout
        self.explicit = False

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 × (B, T, C)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        past = 0
        if cache is not None:
            past = len(cache)
            k, v = cache.update(k, v)  # (B, nh, S = past + T, hs)
        p = self.drop if self.training else 0.0
        # queries sit at positions past..past+T-1 and see the keys up to their own (one new token sees them all)
        mask = None
        if self.causal and T > 1 and (past or self.explicit):
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)  # (T, S)
        if self.explicit:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # (B, nh, T, S)
            if mask is not None:
                att = att.masked_fill(~mask, float("-inf"))
            att = self.attend(att)  # (B, nh, T, S)
            y = F.dropout(att, p, self.training) @ v  # (B, nh, T, hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                               is_causal=self.causal and T > 1 and mask is None)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), x + mlp(ln(x))."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = Attention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.d_ff), nn.GELU(),
                                 nn.Linear(config.d_ff, config.d_model), nn.Dropout(config.dropout))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """``forward(x, targets=None) -> (output, loss)``; x is (B, T) tokens, (B, T, F) features or (B, C, H, W)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        if config.kind == "vit":
            self.patch = nn.Conv2d(config.in_channels, d, config.patch_size, stride=config.patch_size)
            self.cls = nn.Parameter(torch.zeros(1, 1, d))
        elif config.vocab_size > 0:
            self.tok = nn.Embedding(config.vocab_size, d)
            # same scale as the positions (nanoGPT): N(0, 1) token vectors drown the 0.02-sized position signal,
            # and position-only tasks (reverse) then stall at ~30% token accuracy
            nn.init.normal_(self.tok.weight, std=0.02)
        else:
            self.inp = nn.Linear(config.input_size, d)
        self.pos = nn.Parameter(torch.zeros(1, config.seq_len, d))
        nn.init.normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.num_outputs)
        self.grad_checkpointing = False

    def set_explicit_attention(self, on: bool) -> None:
        """Switch every block between the fused (fast) and the explicit (inspectable) attention path."""
        for b in self.blocks:
            b.attn.explicit = on

    def new_cache(self) -> list[KVCache]:
        """Empty key/value caches, one per block, for feeding a decoder one token at a time."""
        if self.config.kind != "decoder":
            raise ValueError("only a decoder can be fed one token at a time (an encoder's tokens see the future)")
        return [KVCache() for _ in self.blocks]

    def embed(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Input vectors plus positions ``start..start+T-1`` (start > 0 after cached positions)."""
        c = self.config
        if c.kind == "vit":
            x = (x - c.input_mean) / c.input_std
            h = self.patch(x).flatten(2).transpose(1, 2)  # (B, nP, d)
            h = torch.cat([self.cls.expand(h.size(0), -1, -1), h], dim=1)  # (B, 1 + nP, d)
        elif c.vocab_size > 0:
            h = self.tok(x)  # (B, T, d)
        else:
            if x.dim() == 4:
                x = x.permute(0, 2, 1, 3).flatten(2)  # image (B, C, H, W) as a sequence of rows -> (B, H, C*W)
            h = self.inp(x)  # (B, T, d)
        T = h.size(1)
        if start + T > self.pos.size(1):
            raise ValueError(f"sequence of {start + T} steps is longer than the model's max_len {self.pos.size(1)}")
        return self.drop(h + self.pos[:, start: start + T])  # (B, T, d)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None, cache: list[KVCache] | None = None):
        """Args: cache: from :meth:`new_cache`; x then holds only the positions after the cached ones."""
        h = self.embed(x, len(cache[0]) if cache else 0)
        for i, block in enumerate(self.blocks):
            if cache is not None:
                h = block(h, cache[i])
            elif self.grad_checkpointing and self.training:
                h = checkpoint(block, h, use_reentrant=False)
            else:
                h = block(h)
        h = self.ln_f(h)  # (B, T, d)
        if not self.config.per_step:
            h = h[:, 0] if self.config.kind == "vit" else h.mean(dim=1)  # (B, d): [CLS] or mean pool
        out = self.head(h)  # (B, [T,] num_outputs)
        return out, compute_loss(out, targets, self.config.loss)
