"""Figures of a trained model's test results: confusion matrix, mistakes gallery, forecasts.

Example:
    >>> fig = confusion_figure(confusion(p.y_true, p.y_pred, 10), p.info.class_names)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from dlcore.viz._theme import SPLIT_COLORS, base_layout
from dlcore.viz.data import image_grid


def confusion_figure(cm, class_names: Sequence[str] | None = None, normalize: bool = True,
                     title: str | None = None) -> go.Figure:
    """Heatmap of a confusion matrix: rows are true classes, columns predicted ones.

    Args:
        cm: (C, C) counts.
        class_names: C names (default 0..C-1).
        normalize: colour by the share of each true class (recall per cell); counts stay in the text.
        title: figure title.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square; got shape {cm.shape}")
    c = len(cm)
    names = [str(n) for n in class_names] if class_names is not None and len(class_names) == c else \
        [str(i) for i in range(c)]
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    z = share if normalize else cm
    show_text = c <= 20
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, colorscale="Blues", zmin=0, zmax=1 if normalize else None,
        customdata=np.dstack([cm, share]), text=cm.astype(int) if show_text else None,
        texttemplate="%{text}" if show_text else None, textfont=dict(size=12),
        colorbar=dict(title="share of<br>true class" if normalize else "count",
                      tickformat=".0%" if normalize else None),
        hovertemplate="true %{y} → predicted %{x}<br>%{customdata[0]:.0f} examples (%{customdata[1]:.1%} of %{y})"
                      "<extra></extra>"))
    fig.update_xaxes(title_text="predicted class", type="category", side="bottom")
    fig.update_yaxes(title_text="true class", type="category", autorange="reversed")
    size = min(720, max(360, 38 * c + 160))
    base_layout(fig, title, height=size)
    return fig


def mistakes_gallery(images, true_labels: Sequence[str], pred_labels: Sequence[str], confidence=None,
                     cols: int = 8, title: str | None = None) -> go.Figure:
    """A grid of misclassified images captioned "true → predicted (confidence)".

    Args:
        images: (N, C, H, W) or (N, H, W) inputs (sequences of rows also work: MNIST rows).
        true_labels, pred_labels: N class names.
        confidence: N probabilities of the predicted class (optional).
    """
    caps = []
    for i, (t, p) in enumerate(zip(true_labels, pred_labels)):
        c = f" ({float(confidence[i]):.0%})" if confidence is not None else ""
        caps.append(f"{t} → {p}{c}")
    return image_grid(images, caps, cols=cols, title=title, caption_colors=["#c0392b"] * len(caps))


def forecast_figure(y_true, y_pred, title: str | None = None, y_title: str = "value", horizon_step: int = 0,
                    index=None) -> go.Figure:
    """Predicted against actual values over the test span (one horizon step), with the error band.

    Args:
        y_true, y_pred: (N,) or (N, H) values in the series' units.
        horizon_step: which step ahead to draw when H > 1.
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.ndim == 2:
        t, p = t[:, horizon_step], p[:, horizon_step]
    xs = np.arange(len(t)) if index is None else np.asarray(index)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=t, mode="lines", name="actual", line=dict(color="#333", width=2)))
    fig.add_trace(go.Scatter(x=xs, y=p, mode="lines", name="predicted",
                             line=dict(color=SPLIT_COLORS["val"], width=2.5)))
    fig.add_trace(go.Bar(x=xs, y=np.abs(p - t), name="absolute error", marker_color="rgba(214,39,40,0.35)", yaxis="y2"))
    fig.update_layout(yaxis=dict(title=y_title),
                      yaxis2=dict(overlaying="y", side="right", showgrid=False, title="absolute error",
                                  rangemode="tozero", tickformat=".3~g"))
    fig.update_xaxes(title_text="test example (time order)" if index is None else "")
    return base_layout(fig, title, height=380)


def per_class_figure(table, metric: str = "recall", title: str | None = None) -> go.Figure:
    """Bar per class of precision/recall/F1 from ``dlcore.evaluation.per_class``."""
    fig = go.Figure(go.Bar(x=table["class"].astype(str), y=table[metric], marker_color=SPLIT_COLORS["test"],
                           text=[f"{v:.0%}" for v in table[metric]], textposition="outside",
                           hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%", title_text=metric)
    fig.update_xaxes(type="category", title_text="class")
    return base_layout(fig, title, height=320)
