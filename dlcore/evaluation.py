"""How well a model does: its loss and metric on a split, and what a trained run gets right and wrong on
its test set (predictions, confusion matrix, per-class scores, the most confident mistakes).

:func:`evaluate_model` and :func:`predict` run a model (the trainer scores its validation and test
splits with the same sums, :func:`metric_sums`). :func:`test_predictions` loads a run's checkpoint and
dataset and predicts its test set; everything after it is a pure function of numpy arrays, so it is
cheap to test and to cache.

Example:
    >>> evaluate_model(model, x, y, info)
    {'loss': 0.31, 'accuracy': 0.91}
    >>> p = test_predictions(run_id)
    >>> cm = confusion(p.y_true, p.y_pred, p.info.num_outputs)
    >>> worst = misclassified(p, limit=16)
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from dlcore.data.base import DatasetInfo

if TYPE_CHECKING:
    import pandas as pd


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256,
            device: torch.device | None = None) -> torch.Tensor:
    """Model outputs for a tensor of inputs, batched, on the model's device, returned on the CPU."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outs = [model(x[i: i + batch_size].to(device))[0].float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


@torch.no_grad()
def metric_sums(model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: DatasetInfo, batch_size: int,
                device: torch.device, autocast=contextlib.nullcontext) -> torch.Tensor:
    """[loss × n, n, correct, count, |error| sum] of a model on (x, y), as float64 on the device (float32 on MPS).

    Sums, not means, so the shards of a distributed evaluation add up (see ``Trainer.evaluate_split``);
    :func:`metrics_from_sums` turns them into the metrics.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(5, dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i: i + batch_size].to(device), y[i: i + batch_size].to(device)
            with autocast():
                out, loss = model(xb, yb)
            sums[0] += loss.to(sums.dtype) * len(xb)
            sums[1] += len(xb)
            if info.metric in ("accuracy", "token_accuracy"):
                sums[2] += (out.argmax(-1) == yb).sum()
                sums[3] += yb.numel()
            elif info.metric == "mae":
                sums[4] += (out.float().reshape(yb.shape) - yb).abs().sum().to(sums.dtype)
                sums[3] += yb.numel()
    finally:
        model.train(was_training)
    return sums


def metrics_from_sums(sums: torch.Tensor, info: DatasetInfo) -> dict:
    """{'loss', metric} from :func:`metric_sums` (empty when there were no examples); MAE in the series' units."""
    loss_sum, n, correct, count, abs_err = sums.tolist()
    if n == 0:
        return {}
    res = {"loss": loss_sum / n}
    if info.metric in ("accuracy", "token_accuracy"):
        res[info.metric] = correct / max(count, 1)
    elif info.metric == "mae":
        res["mae"] = abs_err / max(count, 1) * float(info.target_std)
    elif info.metric == "perplexity":
        res["perplexity"] = math.exp(min(res["loss"], 50))
    return res


@torch.no_grad()
def evaluate_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: DatasetInfo, batch_size: int = 256,
                   device: torch.device | None = None, autocast=contextlib.nullcontext) -> dict:
    """Loss and the task's metric of a model on (x, y).

    Args:
        model: any dlcore model (``forward(x, targets) -> (output, loss)``); evaluated in eval mode, then
            left in the mode it was in.
        x, y: inputs and targets, on any device.
        info: the dataset's description (which metric; the forecasting scale for MAE).
        batch_size: examples per forward pass.
        device: where to run (default: the model's device).
        autocast: a context manager factory for mixed precision (the trainer passes its own).

    Returns:
        ``{'loss': ..., metric: ...}`` with metric one of accuracy, token_accuracy, mae (in the series'
        units) or perplexity; ``{}`` for no examples.

    Example:
        >>> evaluate_model(model, *dataset.test, dataset.info)["accuracy"]
        0.93
    """
    device = device or next(model.parameters()).device
    return metrics_from_sums(metric_sums(model, x, y, info, batch_size, device, autocast), info)


@dataclass
class Predictions:
    """A model's outputs on a run's test set, as numpy arrays.

    Attributes:
        run_id: the run the model comes from.
        info: the dataset's description (task, class names, vocabulary, metric).
        x: test inputs (N, ...), as stored in the dataset.
        y_true: targets: class ids (N,), token ids (N, T), or normalised values (N, H) for forecasting.
        y_pred: predictions of the same shape as ``y_true``.
        confidence: probability of each predicted class (same shape), None for regression.
    """
    run_id: str
    info: DatasetInfo
    x: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    confidence: np.ndarray | None

    @property
    def is_classification(self) -> bool:
        return self.confidence is not None

    def wrong(self) -> np.ndarray:
        """Per example: True when any of its outputs is wrong (classification only)."""
        if not self.is_classification:
            raise ValueError("wrong() needs class predictions; this run is a regression (forecasting)")
        w = self.y_true != self.y_pred
        return w.reshape(len(w), -1).any(axis=1)

    def accuracy(self) -> float:
        """Share of correct outputs (per token for per-step tasks)."""
        return float((self.y_true == self.y_pred).mean()) if self.is_classification else float("nan")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def outputs_to_predictions(outputs: np.ndarray, loss: str, target_shape: tuple[int, ...] | None = None):
    """(predictions, confidence) from raw model outputs.

    Args:
        outputs: logits (..., C) for ``loss='ce'``; values for ``loss='mse'``.
        loss: the dataset's loss ('ce' or 'mse').
        target_shape: for regression, the targets' shape to reshape the outputs to.
    """
    out = np.asarray(outputs)
    if loss == "ce":
        p = softmax(out)
        return p.argmax(axis=-1), p.max(axis=-1)
    if loss == "mse":
        return (out.reshape(target_shape) if target_shape is not None else out), None
    raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")


def test_predictions(run_id: str, store=None, limit: int | None = 5000) -> Predictions:
    """Load a run's checkpoint and dataset and predict its test set.

    Args:
        run_id: a run with a checkpoint (one finished epoch is enough).
        store: a RunStore (default: the data folder's).
        limit: use at most this many test examples (None: all).

    Raises:
        RunNotFound: no such run. CheckpointError: the run has no usable checkpoint yet.
        DataError: its dataset can no longer be loaded (an upload that was deleted).
    """
    from dlcore.data import load_dataset
    from dlcore.runs import load_run_model

    run, model = load_run_model(run_id, store)
    ds = load_dataset(run.data)
    x, y = ds.test
    if limit is not None:
        x, y = x[:limit], y[:limit]
    outputs = predict(model, x).numpy()
    y_np = y.numpy()
    pred, conf = outputs_to_predictions(outputs, ds.info.loss, y_np.shape)
    return Predictions(run_id, ds.info, x.numpy(), y_np, pred, conf)


def confusion(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class (all outputs flattened)."""
    from sklearn.metrics import confusion_matrix

    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in size: {t.shape} vs {p.shape}")
    return confusion_matrix(t, p, labels=np.arange(num_classes))


def per_class(cm: np.ndarray, class_names=None) -> pd.DataFrame:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    import pandas as pd  # here, not at the top: the trainer imports this module and needs no pandas

    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    names = list(class_names) if class_names is not None and len(class_names) == len(cm) else list(range(len(cm)))
    return pd.DataFrame({"class": [str(n) for n in names], "precision": precision, "recall": recall, "f1": f1,
                         "support": support.astype(int)})


def misclassified(p: Predictions, limit: int = 32) -> np.ndarray:
    """Indices of wrongly predicted test examples, the most confidently wrong first.

    For per-step tasks an example counts as wrong when any token is; they are ordered by the number of
    wrong tokens, then by confidence.
    """
    wrong = p.wrong()
    idx = np.flatnonzero(wrong)
    if idx.size == 0:
        return idx
    conf = p.confidence.reshape(len(wrong), -1)
    errs = (p.y_true != p.y_pred).reshape(len(wrong), -1)
    n_wrong = errs[idx].sum(axis=1)
    wrong_conf = np.where(errs[idx], conf[idx], 0).max(axis=1)
    order = np.lexsort((-wrong_conf, -n_wrong))  # last key is primary
    return idx[order][:limit]


def denormalize(values, info: DatasetInfo) -> np.ndarray:
    """Forecasting targets/predictions back in the series' own units (they are stored standardised)."""
    mean, std = float(info.target_mean), float(info.target_std)
    return np.asarray(values, dtype=np.float64) * std + mean


def forecast_mae(p: Predictions) -> float:
    """Mean absolute error of a forecaster, in the series' units."""
    return float(np.abs(denormalize(p.y_pred, p.info) - denormalize(p.y_true, p.info)).mean())
