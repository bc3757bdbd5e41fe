"""What gets explained: a model, one input and one output, seen as ``scores = forward(inputs)`` over a float
input tensor that attribution methods can differentiate and perturb.

Images, feature sequences and table rows are their own attribution space. Token ids are not differentiable,
so for token models the attribution space is the token embedding (T, E): ``forward`` swaps the embedding
layer's output for the given vectors with a temporary forward hook (what captum's LayerIntegratedGradients
does), and attributions are summed over E to give one score per token. Per-step models (tagging, language
models) explain one output position.

Example:
    >>> s = Subject.build(model, info, x)              # x: one example, numpy
    >>> s.forward(s.inputs).shape                      # (1, classes)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dlcore.data.base import DatasetInfo
from dlcore.inspect._hooks import is_token_model, model_lock, to_batch


def _embedding_layer(model: nn.Module) -> nn.Embedding | None:
    for name in ("tok", "embed"):
        m = getattr(model, name, None)
        if isinstance(m, nn.Embedding):
            return m
    return None


@dataclass
class Subject:
    """A model + one example + the output to explain, in a differentiable attribution space.

    Attributes:
        model: the model (eval mode).
        info: the dataset description (input kind, class names, vocab).
        x: the raw model input, a batch of one (token ids stay long).
        target: the output index to explain (class, vocabulary id or forecast step).
        position: for per-step outputs, the step whose output is explained (None otherwise).
        kind: "image" | "sequence" | "tokens" | "tabular" — how attributions are reduced and displayed.
        background: raw inputs used as a reference distribution (shap's GradientExplainer, GradientSHAP).

    Every pass through the model (``forward``, ``to_space``, ``build``) holds the model's inspection lock
    (``dlcore.inspect.model_lock``): a model cached for all Streamlit sessions may be explained in one thread
    while another hooks it to capture attention, and the token path swaps the embedding output with a hook.
    """
    model: nn.Module
    info: DatasetInfo
    x: torch.Tensor
    target: int
    position: int | None = None
    kind: str = "image"
    background: torch.Tensor | None = None
    _embedding: nn.Embedding | None = field(default=None, repr=False)

    @classmethod
    def build(cls, model: nn.Module, info: DatasetInfo, x, target: int | None = None, position: int | None = None,
              background=None) -> "Subject":
        """Wrap one example (numpy or tensor, without batch dimension).

        Args:
            target: output to explain; default: the predicted class (classification) or step 0 (regression).
            position: per-step models: which step's output (default: the last step).
            background: a few raw inputs (N, ...) from the training set, for methods that need a reference set.
        """
        xb = to_batch(x, model, single=True)
        tokens = is_token_model(model)
        emb = _embedding_layer(model) if tokens else None
        if tokens and emb is None:
            raise TypeError(f"{type(model).__name__} reads tokens but has no embedding layer to attribute to")
        kind = "tokens" if tokens else info.input_kind
        per_step = bool(getattr(model.config, "per_step", False))
        if per_step:
            T = xb.shape[1]
            position = T - 1 if position is None else int(position)
            if not 0 <= position < T:
                raise ValueError(f"position must be 0..{T - 1}, got {position}")
        else:
            position = None
        bg = None if background is None else to_batch(background, model, single=False)
        s = cls(model=model, info=info, x=xb, target=0, position=position, kind=kind, background=bg, _embedding=emb)
        with model_lock(model):
            model.eval()
            if target is None:
                with torch.no_grad():
                    scores = s.forward(s.inputs)
                target = int(scores[0].argmax()) if info.loss == "ce" else 0
        n_out = model.config.num_outputs
        if not 0 <= int(target) < n_out:
            raise ValueError(f"target must be 0..{n_out - 1}, got {target}")
        s.target = int(target)
        return s

    # ------------------------------------------------------------------ attribution space
    def to_space(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw model inputs (B, ...) into the attribution space (embeddings for tokens)."""
        if self._embedding is None:
            return raw.float()
        with model_lock(self.model), torch.no_grad():
            return self._embedding(raw).float()  # (B, T, E)

    @property
    def inputs(self) -> torch.Tensor:
        """The example in attribution space, (1, ...) float."""
        return self.to_space(self.x)

    def baseline(self, kind: str = "zero") -> torch.Tensor:
        """A reference input in attribution space: "zero" (black image, zero embedding, mean of z-scored series)
        or "mean" (the background's mean)."""
        if kind == "mean" and self.background is not None:
            return self.to_space(self.background).mean(0, keepdim=True)
        return torch.zeros_like(self.inputs)

    def background_inputs(self, n: int, seed: int = 0) -> torch.Tensor:
        """n background examples in attribution space (zeros if the subject has no background)."""
        if self.background is None or len(self.background) == 0:
            return torch.zeros((1,) + tuple(self.inputs.shape[1:]))
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self.background), generator=g)[:n]
        return self.to_space(self.background[idx])

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """Scores (B, outputs) for inputs in attribution space: logits, or regression outputs."""
        with model_lock(self.model):
            out = self._forward(inp)
        if self.position is not None:
            out = out[:, self.position]  # (B, outputs) of the explained step
        return out

    def _forward(self, inp: torch.Tensor) -> torch.Tensor:
        """The model's output (B, ...) for inputs in attribution space; callers hold the lock."""
        if self._embedding is None:
            return self.model(inp)[0]
        B = inp.shape[0]
        ids = self.x.expand(B, *self.x.shape[1:])

        def swap(_mod, _inp, _out):
            return inp.to(_out.dtype)

        handle = self._embedding.register_forward_hook(swap)
        try:
            return self.model(ids)[0]
        finally:
            handle.remove()

    def __call__(self, inp: torch.Tensor) -> torch.Tensor:
        return self.forward(inp)

    def probability(self, inp: torch.Tensor) -> torch.Tensor:
        """The explained output as a probability (classification) or raw value (regression): (B,)."""
        out = self.forward(inp)
        if self.info.loss == "ce":
            out = out.softmax(-1)
        return out[:, self.target]

    # ------------------------------------------------------------------ display
    def reduce(self, attr: torch.Tensor | np.ndarray) -> np.ndarray:
        """Attributions of one example (same shape as ``inputs`` without batch) to a display map:
        image (H, W) summed over channels, tokens (T,) summed over E, sequence (T, F), tabular (F,)."""
        a = torch.as_tensor(np.asarray(attr) if not isinstance(attr, torch.Tensor) else attr).detach().float()
        if a.dim() == self.inputs.dim():
            a = a[0]
        if self.kind == "image":
            return a.sum(0).cpu().numpy()
        if self.kind == "tokens":
            return a.sum(-1).cpu().numpy()
        return a.cpu().numpy()

    def display_input(self) -> np.ndarray:
        """The example as it is shown: image (H, W) or (H, W, 3); token ids (T,); sequence (T, F); row (F,)."""
        x = self.x[0].detach().cpu()
        if self.kind == "image":
            return x[0].numpy() if x.shape[0] == 1 else x[:3].permute(1, 2, 0).numpy()
        return x.numpy()

    def feature_mask(self, groups: np.ndarray | None = None) -> torch.Tensor:
        """Integer feature ids in attribution space (1, ...) that group inputs into interpretable features:
        one per pixel group (``groups`` (H, W), e.g. superpixels), token, time step, or table column."""
        shape = tuple(self.inputs.shape)
        if self.kind == "image":
            g = torch.as_tensor(groups if groups is not None else np.arange(shape[2] * shape[3]).reshape(shape[2:]))
            return g.long().expand(shape[1], *g.shape).unsqueeze(0).contiguous()
        if self.kind in ("tokens", "sequence"):
            t = torch.arange(shape[1]).view(1, -1, 1)
            return t.expand(*shape).contiguous()
        return torch.arange(int(np.prod(shape[1:]))).view(shape).contiguous()


def subject_for(model: nn.Module, ds, x, target: int | None = None, position: int | None = None,
                n_background: int = 200, seed: int = 0) -> Subject:
    """A :class:`Subject` for one example with a seeded random background of ``n_background`` training examples.

    Args:
        ds: the run's :class:`dlcore.Dataset`.
        x: one example (numpy or tensor), e.g. from :func:`dlcore.inspect.example`.
    """
    xtr = ds.train[0]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(xtr), generator=g)[:n_background]
    return Subject.build(model, ds.info, x, target=target, position=position, background=xtr[idx])
