"""What a trained run gets right and wrong on its test set: predictions, confusion matrix, per-class
scores, the most confident mistakes.

The heavy part (:func:`test_predictions`) loads the run's checkpoint and its dataset and runs the model;
everything after it is a pure function of numpy arrays, so it is cheap to test and to cache.

Example:
    >>> p = test_predictions(run_id)
    >>> cm = confusion(p.y_true, p.y_pred, p.info.num_outputs)
    >>> worst = misclassified(p, limit=16)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlcore.data.base import DatasetInfo


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
    from dlcore.train.trainer import predict

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
    mean, std = float(info.extra.get("mean", 0.0)), float(info.extra.get("std", 1.0))
    return np.asarray(values, dtype=np.float64) * std + mean


def forecast_mae(p: Predictions) -> float:
    """Mean absolute error of a forecaster, in the series' units."""
    return float(np.abs(denormalize(p.y_pred, p.info) - denormalize(p.y_true, p.info)).mean())
