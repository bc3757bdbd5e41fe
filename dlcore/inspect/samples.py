"""Inputs for the inspection pages as numpy arrays: test examples, predictions, misclassified examples,
uploaded or drawn images converted to what a model reads. Pages never touch tensors; these helpers do.

Example:
    >>> x, y = example(ds, 3)                       # numpy example and its label
    >>> probs = predict_proba(model, x, ds.info)    # (classes,) or (T, classes) for per-step tasks
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dlcore.data.base import DataError, Dataset, DatasetInfo
from dlcore.inspect._hooks import model_lock, to_batch
from dlcore.models._common import VIEWS  # noqa: F401  (re-exported: the views and what each needs)


def example(ds: Dataset, index: int, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one example of a split as numpy arrays."""
    x, y = getattr(ds, split)
    if not 0 <= index < len(x):
        raise IndexError(f"example {index} is out of range: the {split} set has {len(x)} examples (0..{len(x) - 1})")
    return x[index].numpy(), y[index].numpy()


def example_batch(ds: Dataset, indices, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of several examples of a split as numpy arrays (N, ...)."""
    x, y = getattr(ds, split)
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    return x[idx].numpy(), y[idx].numpy()


def split_size(ds: Dataset, split: str = "test") -> int:
    return len(getattr(ds, split)[0])


def predict_proba(model: nn.Module, x, info: DatasetInfo) -> np.ndarray:
    """Class probabilities for one example ((K,) or (T, K) for per-step tasks); raw outputs for regression."""
    with model_lock(model), torch.no_grad():
        out = model(to_batch(x, model, single=True))[0][0].float()
    return (out.softmax(-1) if info.loss == "ce" else out).cpu().numpy()


def predictions(model: nn.Module, ds: Dataset, split: str = "test", batch_size: int = 256,
                limit: int | None = None) -> np.ndarray:
    """Predicted class (argmax) for the first ``limit`` examples of a split: (N,) or (N, T) for per-step tasks."""
    x = getattr(ds, split)[0]
    if limit is not None:
        x = x[:limit]
    outs = []
    with model_lock(model), torch.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(to_batch(x[i: i + batch_size], model, single=False))[0].argmax(-1).cpu())
    return torch.cat(outs).numpy() if outs else np.zeros(0, dtype=np.int64)


def misclassified_indices(model: nn.Module, ds: Dataset, split: str = "test",
                          limit: int | None = None) -> list[int]:
    """Indices, in split order, of the examples the model gets wrong (any wrong step for per-step tasks);
    [] for regression. (``dlcore.evaluation.misclassified`` instead ranks stored predictions by confidence.)"""
    if ds.info.loss != "ce":
        return []
    pred = predictions(model, ds, split, limit=limit)
    y = getattr(ds, split)[1].numpy()[: len(pred)]
    wrong = pred != y
    if wrong.ndim > 1:
        wrong = wrong.any(axis=tuple(range(1, wrong.ndim)))
    return np.flatnonzero(wrong).tolist()


def _center_like_mnist(img: np.ndarray, size: int) -> np.ndarray:
    """Crop to the ink, fit it in a 20/28 box and centre it by its centre of mass, as MNIST digits were made."""
    from PIL import Image

    ys, xs = np.nonzero(img > 0.05)
    if len(ys) == 0:
        return np.zeros((size, size), dtype=np.float32)
    crop = img[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    box = max(1, round(size * 20 / 28))
    scale = box / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize((w, h), Image.LANCZOS),
                       dtype=np.float32) / 255.0
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    out[top: top + h, left: left + w] = small
    total = out.sum()
    if total > 0:  # shift the centre of mass to the middle
        cy, cx = (np.indices(out.shape) * out).reshape(2, -1).sum(1) / total
        out = np.roll(out, (int(round(size / 2 - 0.5 - cy)), int(round(size / 2 - 0.5 - cx))), axis=(0, 1))
    return np.clip(out, 0.0, 1.0)


def image_input(img: np.ndarray, info: DatasetInfo, invert: bool | None = None,
                center: bool | None = None) -> np.ndarray:
    """An image array (H, W), (H, W, 3) or (H, W, 4) — e.g. from a drawing canvas — as a model input (C, H', W').

    Grayscale datasets get a grayscale image; values are scaled to [0, 1]. MNIST-style data (dark background,
    one channel) is centred like MNIST and, for a light background, inverted.

    Args:
        invert: make the background dark (default: when the image's border is mostly light, for 1-channel data).
        center: crop and centre the ink as MNIST does (default: for 1-channel data).
    """
    from PIL import Image

    if info.input_kind != "image":
        raise DataError(f"{info.name!r} does not hold images; pick a test example instead")
    from dlcore.config import LIMITS

    c, h, w = info.input_shape
    a = np.asarray(img)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) or a.size == 0:
        raise DataError(f"an image must be (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.shape[0] * a.shape[1] > LIMITS.image_pixels:
        raise DataError(f"the image is {a.shape[1]}×{a.shape[0]} pixels; the limit is {LIMITS.image_pixels:,} pixels "
                        "(DLE_MAX_IMAGE_PIXELS)")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8:
        a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 4:  # RGBA: composite onto black (a canvas's untouched area is transparent)
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        a = (a[..., :3].astype(np.float32) * alpha).astype(np.uint8)
    pil = Image.fromarray(a)
    if c == 1:
        g = np.asarray(pil.convert("L"), dtype=np.float32) / 255.0
        border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
        if invert if invert is not None else border.mean() > 0.5:
            g = 1.0 - g
        if center if center is not None else True:
            return _center_like_mnist(g, h)[None]
        return (np.asarray(Image.fromarray((g * 255).astype(np.uint8)).resize((w, h), Image.LANCZOS),
                           dtype=np.float32) / 255.0)[None]
    rgb = np.asarray(pil.convert("RGB").resize((w, h), Image.LANCZOS), dtype=np.float32) / 255.0
    return rgb.transpose(2, 0, 1)[:c]


def image_from_bytes(data: bytes, info: DatasetInfo, name: str = "the file", **kwargs) -> np.ndarray:
    """An uploaded image file (PNG, JPEG, ...) as a model input.

    Decoded by the one checked decoder (``dlcore.data.images.decode_image``): the pixel limit
    (``DLE_MAX_IMAGE_PIXELS``) is checked from the header before decoding, and every decoder failure —
    a decompression bomb included — is a DataError with a readable message.

    Args:
        name: how messages name the file (the uploaded file's name).

    Raises:
        DataError: not a readable image, too many pixels, or a dataset without images.
    """
    from dlcore.data.images import decode_image

    if info.input_kind != "image":
        raise DataError(f"{info.name!r} does not hold images; pick a test example instead")
    im = decode_image(data, name, size_hint=max(info.input_shape[1:]), keep_alpha=True)
    return image_input(np.asarray(im), info, **kwargs)


def describe(info: DatasetInfo, x: np.ndarray) -> str:
    """A short text form of an example: the characters of token inputs, else the shape."""
    if info.input_kind == "tokens" and info.vocab:
        return "".join(info.vocab[int(t)] if 0 <= int(t) < len(info.vocab) else "?" for t in np.asarray(x).reshape(-1))
    return "×".join(str(s) for s in np.asarray(x).shape)


def label_text(info: DatasetInfo, y) -> str:
    """A label as text: class name(s) or numbers."""
    y = np.asarray(y)
    names = info.class_names or info.vocab
    if info.loss == "ce" and names:
        if y.ndim == 0:
            return names[int(y)] if int(y) < len(names) else str(int(y))
        sep = "" if info.input_kind == "tokens" and all(len(n) == 1 for n in names) else " "
        return sep.join(names[int(v)] if int(v) < len(names) else "?" for v in y.reshape(-1))
    return ", ".join(f"{v:.3g}" for v in y.reshape(-1))


def unsuitable(model_config, view: str) -> str | None:
    """None when a run's model suits an inspection view, else what the view needs ("this view needs a CNN ...").
    The model's family decides (``ModelConfig.view_unavailable``).

    Args:
        model_config: ``run.model``.
        view: one of ``VIEWS``: filters, attention, rnn, embeddings, explain.

    Raises:
        ValueError: an unknown view.
    """
    return model_config.view_unavailable(view)
