"""Attention capture, rollout and the patterns a task should show.

Training runs the fused ``F.scaled_dot_product_attention`` kernel, which returns no weights. For inspection the
recorder switches every block to the explicit path (``softmax(QKᵀ/√d)`` through the named ``attn.attend``
submodule), hooks ``attend`` and hands back ``(pred, attentions)``, then restores the fast path and removes
its hooks (vit-pytorch ``recorder.py``).

Example:
    >>> pred, attn = record_attention(model, x)     # attn: (layers, heads, T, T) numpy
    >>> roll = attention_rollout(attn)              # (T, T)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dlcore.inspect._hooks import model_lock, to_batch


def has_attention(model: nn.Module) -> bool:
    """True for models whose blocks have an explicit, hookable attention path (our Transformer family)."""
    blocks = getattr(model, "blocks", None)
    return blocks is not None and len(blocks) > 0 and all(hasattr(b, "attn") and hasattr(b.attn, "attend")
                                                         for b in blocks)


class Recorder:
    """Wraps a Transformer; calling it returns ``(pred, attentions)`` with attentions (B, layers, heads, T, T).

    Hooks live only for the duration of a call (registered in ``try``, removed in ``finally``), so a recorder
    that is never ejected leaks nothing; ``eject()`` returns the bare model as in vit-pytorch.

    Example:
        >>> rec = Recorder(model)
        >>> pred, attn = rec(x)
        >>> model = rec.eject()
    """

    def __init__(self, model: nn.Module):
        if not has_attention(model):
            raise TypeError(f"{type(model).__name__} has no inspectable attention: it needs blocks whose "
                            "'attn' has a named 'attend' softmax (a dlcore Transformer)")
        self.model = model
        self._handles: list = []
        self._store: list[torch.Tensor] = []

    def _hook(self, _mod, _inp, out):
        self._store.append(out.detach())

    def _register(self) -> None:
        for block in self.model.blocks:
            self._handles.append(block.attn.attend.register_forward_hook(self._hook))

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __call__(self, x: torch.Tensor, *args, **kwargs):
        model = self.model
        with model_lock(model):
            was = [b.attn.explicit for b in model.blocks]
            self._store = []
            try:
                self._register()
                model.set_explicit_attention(True)
                out = model(x, *args, **kwargs)
            finally:
                self._remove()
                for b, e in zip(model.blocks, was):
                    b.attn.explicit = e
            if len(self._store) != len(model.blocks):
                raise RuntimeError(f"captured {len(self._store)} attention maps for {len(model.blocks)} blocks")
            attn = torch.stack(self._store, dim=1)  # (B, layers, heads, T, T)
            self._store = []
        pred = out[0] if isinstance(out, tuple) else out
        return pred, attn

    def eject(self) -> nn.Module:
        self._remove()
        model, self.model = self.model, None
        return model


def record_attention(model: nn.Module, x) -> tuple[np.ndarray, np.ndarray]:
    """Model output and attention weights for one example.

    Args:
        model: a dlcore Transformer (encoder, ViT or decoder).
        x: one example: (T,) token ids, (T, F) features or (C, H, W) image, numpy or tensor.

    Returns:
        (pred, attn): the model output for the example (without batch) and weights (layers, heads, T, T),
        rows = queries (attending), columns = keys (attended to).
    """
    with torch.no_grad():
        pred, attn = Recorder(model)(to_batch(x, model, single=True))
    return pred[0].float().cpu().numpy(), attn[0].float().cpu().numpy()


def attention_rollout(attn: np.ndarray, head_fusion: str = "mean", residual: bool = True) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): how much each token draws on each input token through all layers.

    Args:
        attn: (layers, heads, T, T) weights from :func:`record_attention`.
        head_fusion: combine heads by "mean", "max" or "min".
        residual: add the identity for the residual stream (0.5·A + 0.5·I) before multiplying, as in the paper.

    Returns:
        (T, T) rollout, rows summing to 1.
    """
    if attn.ndim != 4:
        raise ValueError(f"attn must be (layers, heads, T, T), got shape {attn.shape}")
    fuse = {"mean": np.mean, "max": np.max, "min": np.min}.get(head_fusion)
    if fuse is None:
        raise ValueError(f"head_fusion must be mean, max or min, got {head_fusion!r}")
    T = attn.shape[-1]
    result = np.eye(T)
    for layer in attn.astype(np.float64):
        a = fuse(layer, axis=0)
        if residual:
            a = 0.5 * a + 0.5 * np.eye(T)
        a = a / a.sum(-1, keepdims=True)
        result = a @ result
    return result


def cls_rollout_grid(rollout: np.ndarray, grid: int) -> np.ndarray:
    """For a ViT: the [CLS] token's rollout over the patches as a (grid, grid) map, scaled to max 1."""
    row = rollout[0, 1:]
    if row.size != grid * grid:
        raise ValueError(f"{row.size} patch tokens do not make a {grid}×{grid} grid")
    g = row.reshape(grid, grid)
    return g / g.max() if g.max() > 0 else g


def upsample_grid(grid_map: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upsampling of a (g, g) patch map to (size, size) pixels, so it overlays the image."""
    g = grid_map.shape[0]
    rep = size // g
    return np.kron(grid_map, np.ones((rep, rep)))


def expected_attention(task: str, tokens: np.ndarray) -> np.ndarray | None:
    """The (T, T) attention a perfect model of an algorithmic task needs, rows summing to 1; None if unknown.

    reverse: output position i reads input T−1−i (the anti-diagonal); sort: output position i reads the inputs
    holding the i-th smallest value.
    """
    tokens = np.asarray(tokens).reshape(-1)
    T = tokens.size
    if task == "reverse":
        return np.fliplr(np.eye(T))
    if task == "sort":
        target = np.sort(tokens)
        e = (tokens[None, :] == target[:, None]).astype(np.float64)  # (T out, T in)
        return e / e.sum(1, keepdims=True)
    return None


def pattern_scores(attn: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per head, the mean attention mass each query puts on the expected keys: (layers, heads) in [0, 1].

    Chance (uniform attention) scores 1/T for reverse; a head that implements the task scores near 1.
    """
    mask = expected > 0
    return (attn * mask).sum(-1).mean(-1)


def token_labels(tokens, vocab: tuple[str, ...] | list[str]) -> list[str]:
    """Readable, unique axis labels for token ids: the character (spaces and control characters shown) and position."""
    shown = {" ": "␣", "\n": "⏎", "\t": "⇥"}
    out = []
    for i, t in enumerate(np.asarray(tokens).reshape(-1).tolist()):
        ch = vocab[t] if 0 <= t < len(vocab) else str(t)
        out.append(f"{i}:{shown.get(ch, ch)}")
    return out


def position_labels(model: nn.Module, n_tokens: int) -> list[str]:
    """Axis labels for non-token inputs: "CLS" and patch (row, col) for a ViT, else "t0", "t1", ..."""
    cfg = model.config
    if getattr(cfg, "kind", "") == "vit":
        g = cfg.image_size // cfg.patch_size
        return ["CLS"] + [f"p{r},{c}" for r in range(g) for c in range(g)]
    return [f"t{i}" for i in range(n_tokens)]
