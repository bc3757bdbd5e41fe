"""Logit lens (nostalgebraist 2020): what a Transformer would output if it stopped after each block.

Each block's residual stream is put through the model's own final LayerNorm and output head. The last block's
lens is the model's output; earlier rows show at which depth the prediction forms. Per-step models (language
models, sequence-to-sequence) get a prediction per position; a classifier pools the positions as it does
itself, so it gets one column.

Example:
    >>> lens = logit_lens(model, ids, info)           # ids: (T,) token ids
    >>> lens.top_tokens[-1], lens.top_probs[-1]        # the model's own prediction at every position
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dlcore.data.base import DatasetInfo
from dlcore.inspect._hooks import capture_outputs, model_lock, to_batch


@dataclass(frozen=True)
class LogitLens:
    """The lens of one input.

    Attributes:
        rows: row labels: "embedding" (when included), then "block 1" … "block L".
        probs: (rows, positions, outputs) softmax of each row's logits.
        top_ids: (rows, positions) most likely output per row and position; top_probs its probability.
        top_tokens: the same as strings (vocabulary characters or class names).
        final_probs: (rows, positions) the probability each row gives to the model's final prediction.
    """
    rows: list[str]
    probs: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    top_tokens: list[list[str]]
    final_probs: np.ndarray


def _output_names(model: nn.Module, info: DatasetInfo | None) -> tuple[str, ...]:
    n = model.config.num_outputs
    if info is not None and info.task == "char-lm" and len(info.vocab) == n:
        return tuple(info.vocab)
    if info is not None and len(info.class_names) == n:
        return tuple(info.class_names)
    if info is not None and len(info.vocab) == n:
        return tuple(info.vocab)
    return tuple(str(i) for i in range(n))


def logit_lens(model: nn.Module, x, info: DatasetInfo | None = None, include_embedding: bool = False) -> LogitLens:
    """Each block's residual stream through the final norm and the output head.

    Args:
        model: a dlcore Transformer over tokens (encoder or decoder; ``model.blocks``, ``ln_f``, ``head``).
        x: one input: (T,) token ids (numpy, list or tensor).
        info: the dataset's description, to name the outputs (vocabulary or classes).
        include_embedding: add a first row for the input embedding (before any block).

    Returns:
        A :class:`LogitLens`; its last row equals the model's own softmax output.
    """
    for name in ("blocks", "ln_f", "head"):
        if not hasattr(model, name):
            raise TypeError(f"{type(model).__name__} has no {name!r}: the logit lens needs a dlcore Transformer")
    cfg = model.config
    if getattr(cfg, "kind", "") == "vit" or getattr(cfg, "vocab_size", 0) < 1:
        raise TypeError("the logit lens here reads token models (a Transformer with a vocabulary)")
    xb = to_batch(x, model, single=True)  # (1, T)
    modules = {f"block {i + 1}": b for i, b in enumerate(model.blocks)}
    with model_lock(model), torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            with capture_outputs(modules) as acts:
                h0 = model.embed(xb)  # (1, T, d): the stream before the first block
                model(xb)
            streams = ([h0] if include_embedding else []) + [acts[k] for k in modules]
            h = model.ln_f(torch.cat(streams))  # (rows, T, d)
            if not cfg.per_step:
                h = h.mean(dim=1, keepdim=True)  # (rows, 1, d): pooled after the norm, as the classifier does
            logits = model.head(h).double()  # (rows, T', V)
        finally:
            model.train(was_training)
    probs = torch.softmax(logits, -1).cpu().numpy()
    names = _output_names(model, info)
    top_ids = probs.argmax(-1)
    final = top_ids[-1]  # (T',): the last block's lens is the model's own prediction
    rows = (["embedding"] if include_embedding else []) + list(modules)
    return LogitLens(rows=rows, probs=probs, top_ids=top_ids, top_probs=probs.max(-1),
                     top_tokens=[[names[i] for i in row] for row in top_ids.tolist()],
                     final_probs=np.take_along_axis(probs, final[None, :, None], -1)[..., 0])


__all__ = ["LogitLens", "logit_lens"]
