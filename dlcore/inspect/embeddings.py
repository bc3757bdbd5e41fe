"""The penultimate-layer representation of a dataset, projected to 2-D with PCA or t-SNE (scikit-learn).

Example:
    >>> feats, pred = penultimate(model, x_test[:500])     # (500, d), (500,) predicted classes
    >>> xy = project(feats, "tsne")                        # (500, 2)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dlcore.inspect._hooks import capture_inputs, model_lock, to_batch


def output_layer(model: nn.Module) -> tuple[str, nn.Linear]:
    """The final dense layer (the one producing the outputs): its input is the penultimate representation."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = (name, m)
    if last is None:
        raise TypeError(f"{type(model).__name__} has no dense output layer")
    return last


def penultimate(model: nn.Module, x, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Inputs to the output layer for a batch of examples, and the model's outputs.

    Per-step models (tagging, language models) give one vector per step; they are averaged over the steps.

    Returns:
        (features (N, d), outputs (N, K) or (N, T, K)).
    """
    name, layer = output_layer(model)
    xb = to_batch(x, model, single=False)
    feats, outs = [], []
    with model_lock(model), torch.no_grad():
        for i in range(0, len(xb), batch_size):
            with capture_inputs({name: layer}) as got:
                out = model(xb[i: i + batch_size])[0]
            f = got[name]
            feats.append((f.mean(1) if f.dim() == 3 else f.flatten(1)).float().cpu())
            outs.append(out.float().cpu())
    return torch.cat(feats).numpy(), torch.cat(outs).numpy()


def project(features: np.ndarray, method: str = "pca", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(N, d) features to (N, 2) with scikit-learn's PCA or t-SNE (standardised first for t-SNE)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if n < 3:
        raise ValueError(f"need at least 3 examples to project, got {n}")
    if method == "pca":
        xy = PCA(n_components=min(2, features.shape[1]), random_state=seed).fit_transform(features)
        return xy if xy.shape[1] == 2 else np.column_stack([xy, np.zeros(n)])
    if method == "tsne":
        from threadpoolctl import threadpool_limits

        f = (features - features.mean(0)) / (features.std(0) + 1e-8)
        if f.shape[1] > 50:  # the usual PCA-then-t-SNE step: faster, and t-SNE denoises less on raw width
            f = PCA(n_components=50, random_state=seed).fit_transform(f)
        # one OpenMP thread: t-SNE's threads spin-wait when training jobs share the cores (measured 10× slower
        # with 2 threads than with 1 on two busy cores)
        with threadpool_limits(limits=1, user_api="openmp"):
            return TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3), init="pca", random_state=seed,
                        max_iter=500).fit_transform(f)
    raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
