"""Pieces shared by every model family: the loss, the activation table and the config base."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlcore.specs import SpecError, _SpecMixin

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class ModelConfig(_SpecMixin):
    """Base of the per-family configs; subclasses are frozen dataclasses with a ``family`` tag."""
    family: str = ""


def compute_loss(output: torch.Tensor, targets: torch.Tensor | None, loss: str) -> torch.Tensor | None:
    """Cross-entropy (per example or per step) or mean-squared error; None without targets."""
    if targets is None:
        return None
    if loss == "ce":
        return F.cross_entropy(output.reshape(-1, output.size(-1)), targets.reshape(-1))
    if loss == "mse":
        return F.mse_loss(output.reshape(targets.shape), targets)
    raise SpecError("loss", f"loss must be ce or mse, got {loss!r}")


def keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for conv/dense layers, as Keras does: the tutorial models
    reach their published accuracy in fewer epochs with it than with PyTorch's default init."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
