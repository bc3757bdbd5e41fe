"""Filters, feature maps and activation statistics of convolutional models.

Example:
    >>> layers = conv_layers(model)                 # [("features.0.0", Conv2d(1, 32, 3)), ...]
    >>> w = kernels(model, layers[0][0])            # (32, 1, 3, 3) numpy
    >>> maps = feature_maps(model, x_test[0])       # {"features.0.1": (32, 26, 26), ...}
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dlcore.inspect._hooks import capture_outputs, model_lock, to_batch


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every ``nn.Conv2d`` of a model with its dotted name, in forward order (empty for non-conv models)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def kernels(model: nn.Module, layer: str) -> np.ndarray:
    """The weights of a conv layer as (out_channels, in_channels, kH, kW).

    Raises:
        KeyError: the model has no conv layer of that name (the message lists those it has).
    """
    layers = dict(conv_layers(model))
    if layer not in layers:
        raise KeyError(f"no conv layer {layer!r}; the model has: {', '.join(layers) or 'none'}")
    return layers[layer].weight.detach().float().cpu().numpy()


def _map_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Leaf modules whose outputs are spatial maps: every layer inside the conv stack (``features``), or, for
    models without one (ViT patch embedding), the conv layers themselves."""
    feats = getattr(model, "features", None)
    if isinstance(feats, nn.Module):
        return {f"features.{n}": m for n, m in feats.named_modules() if n and not list(m.children())}
    return dict(conv_layers(model))


def feature_maps(model: nn.Module, x, layers: list[str] | None = None) -> dict[str, np.ndarray]:
    """The output of each layer of the conv stack for one input example: name -> (channels, H, W).

    Args:
        model: a model with conv layers (a CNN; for a ViT, the patch embedding).
        x: one example, (C, H, W) numpy array or tensor, in pixel units.
        layers: names to keep (default: all layers of the conv stack, in forward order).
    """
    mods = _map_layers(model)
    if layers is not None:
        unknown = [n for n in layers if n not in mods]
        if unknown:
            raise KeyError(f"no layer {unknown[0]!r}; layers with feature maps: {', '.join(mods)}")
        mods = {n: mods[n] for n in layers}
    with model_lock(model), torch.no_grad(), capture_outputs(mods) as acts:
        model(to_batch(x, model, single=True))
    return {n: acts[n][0].float().cpu().numpy() for n in mods if n in acts and acts[n].dim() == 4}


def activation_stats(model: nn.Module, x, max_examples: int = 256) -> list[dict]:
    """Per-layer statistics of the activations over a batch of examples, in forward order.

    Each row: layer, type, shape (per example), mean, std, min, max, zero_fraction (share of exactly-zero
    values: dead or silent ReLU units), dead_units (channels/units never active on this batch).

    Args:
        x: a batch of inputs (numpy or tensor) of the model's input shape.
    """
    mods = {n: m for n, m in model.named_modules() if n and not list(m.children())
            and not isinstance(m, (nn.Dropout, nn.Flatten))}
    xb = to_batch(x, model, single=False)[:max_examples]
    with model_lock(model), torch.no_grad(), capture_outputs(mods) as acts:
        model(xb)
    rows = []
    for name in mods:
        if name not in acts:
            continue
        a = acts[name].float()
        if a.is_complex() or a.numel() == 0:
            continue
        unit_axis = 1 if a.dim() in (2, 4) else -1  # channels of a conv map, else the feature axis
        per_unit = a.transpose(0, unit_axis).reshape(a.shape[unit_axis], -1) if a.dim() > 1 else a[None]
        rows.append({"layer": name, "type": type(mods[name]).__name__, "shape": tuple(a.shape[1:]),
                     "mean": float(a.mean()), "std": float(a.std()) if a.numel() > 1 else 0.0,
                     "min": float(a.min()), "max": float(a.max()),
                     "zero_fraction": float((a == 0).float().mean()),
                     "dead_units": int(((per_unit != 0).sum(1) == 0).sum()), "units": int(per_unit.shape[0])})
    return rows
