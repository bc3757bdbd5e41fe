"""Hook plumbing shared by the inspectors: capture module outputs, count hooks, serialise access.

Every hook is registered inside ``try`` and removed in ``finally`` (captum ``_utils/gradient.py``): Streamlit
reruns scripts constantly, and a leaked hook is both a memory leak and a wrong answer on the next run.
"""
from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

_LOCKS: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """One re-entrant lock per model object. Inspectors hook or switch a model temporarily; a model shared
    between Streamlit sessions (``st.cache_resource``) must not be hooked by two threads at once."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def hook_count(model: nn.Module) -> int:
    """Forward, forward-pre and backward hooks on every submodule (tests check this is unchanged)."""
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += len(getattr(m, "_backward_pre_hooks", {}))
    return n


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


@contextmanager
def capture_outputs(modules: dict[str, nn.Module], detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Record the output of each named module during the ``with`` block; hooks are always removed.

    Example:
        >>> with capture_outputs({"conv1": model.features[0][0]}) as acts:
        ...     model(x)
        >>> acts["conv1"].shape
    """
    store: dict[str, torch.Tensor] = {}
    handles = []

    def make(name):
        def fn(_mod, _inp, out):
            t = _first_tensor(out)
            if t is not None:
                store[name] = t.detach() if detach else t
        return fn

    try:
        for name, mod in modules.items():
            handles.append(mod.register_forward_hook(make(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


@contextmanager
def capture_inputs(modules: dict[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the (first) input of each named module during the ``with`` block; hooks are always removed."""
    store: dict[str, torch.Tensor] = {}
    handles = []

    def make(name):
        def fn(_mod, inp):
            t = _first_tensor(inp)
            if t is not None:
                store[name] = t.detach()
        return fn

    try:
        for name, mod in modules.items():
            handles.append(mod.register_forward_pre_hook(make(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


def is_token_model(model: nn.Module) -> bool:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "vocab_size", 0) > 0 and getattr(cfg, "kind", "") != "vit"


def to_batch(x, model: nn.Module, single: bool) -> torch.Tensor:
    """A numpy array or tensor as a batch tensor of the model's input dtype, on the model's device.

    Args:
        single: x is one example (a batch dimension is added) rather than a batch.
    """
    t = torch.as_tensor(x)
    t = t.long() if is_token_model(model) else t.float()
    if single:
        t = t.unsqueeze(0)
    p = next(model.parameters(), None)
    return t.to(p.device) if p is not None else t
