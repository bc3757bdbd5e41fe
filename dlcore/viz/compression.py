"""Compression and overfitting figures: accuracy against size and latency with the Pareto front, and the
curves of a run with its overfitting epoch marked. Pure builders: arrays in, ``go.Figure`` out."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlcore.viz._theme import PALETTE, SPLIT_COLORS, base_layout

METHOD_COLORS = {"original": PALETTE[0], "prune": PALETTE[1], "quantize": PALETTE[2], "distill": PALETTE[3],
                 "baseline": PALETTE[7]}


def _front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Indices no other point beats on both axes (smaller x, higher y), sorted by x."""
    order = sorted((i for i in range(len(xs)) if xs[i] is not None and ys[i] is not None),
                   key=lambda i: (xs[i], -ys[i]))
    front, best = [], float("-inf")
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


def pareto_figure(labels: Sequence[str], methods: Sequence[str], accuracy: Sequence[float | None],
                  size_bytes: Sequence[float | None], latency_ms: Sequence[float | None],
                  title: str | None = None) -> go.Figure:
    """Two panels: accuracy against size (KB) and against CPU latency per example, one marker per run
    (coloured by method), the Pareto front of each panel as a dashed line.

    Args:
        labels: hover text per run (already escaped for a figure).
        methods: 'original', 'prune', 'quantize', 'distill' per run (colour and legend).
        accuracy: test accuracy (0-1) per run; None = unknown (left out).
        size_bytes, latency_ms: per run; None = unknown (left out of that panel).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Accuracy vs size", "Accuracy vs CPU latency"),
                        horizontal_spacing=0.1)
    kb = [None if b is None else b / 1024 for b in size_bytes]
    shown = set()
    for col, xs, unit in ((1, kb, "KB"), (2, list(latency_ms), "ms")):
        for m in dict.fromkeys(methods):
            idx = [i for i, mm in enumerate(methods) if mm == m and xs[i] is not None and accuracy[i] is not None]
            if not idx:
                continue
            fig.add_trace(go.Scatter(
                x=[xs[i] for i in idx], y=[accuracy[i] for i in idx], mode="markers", name=m,
                legendgroup=m, showlegend=m not in shown, text=[labels[i] for i in idx],
                marker=dict(size=12, color=METHOD_COLORS.get(m, PALETTE[4]), line=dict(width=1, color="white")),
                hovertemplate=f"%{{text}}<br>%{{x:.3g}} {unit}<br>accuracy %{{y:.1%}}<extra>{m}</extra>"), 1, col)
            shown.add(m)
        front = _front(xs, accuracy)
        if len(front) >= 1:
            fig.add_trace(go.Scatter(x=[xs[i] for i in front], y=[accuracy[i] for i in front], mode="lines",
                                     name="Pareto front", legendgroup="front", showlegend=col == 1,
                                     line=dict(color="#444", dash="dash", width=1.5), hoverinfo="skip"), 1, col)
    fig.update_xaxes(title_text="size on disk (KB)", row=1, col=1)
    fig.update_xaxes(title_text="latency per example (ms, CPU, batch 1)", row=1, col=2)
    fig.update_yaxes(title_text="test accuracy", tickformat=".1%", row=1, col=1)
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    if not any(a is not None for a in accuracy):
        fig.add_annotation(text="No measured runs yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    base_layout(fig, title, height=440)
    fig.update_layout(legend=dict(y=1.14), margin=dict(t=110 if title else 90))  # the legend above the subplot titles
    return fig


def overfitting_figure(epochs: Sequence[float], train_loss: Sequence[float | None], val_loss: Sequence[float | None],
                       best_epoch: int | None = None, title: str | None = None) -> go.Figure:
    """Training and validation loss per epoch; when ``best_epoch`` is given, a vertical line there and the
    epochs after it shaded (where the model overfits)."""
    fig = go.Figure()
    for split, ys in (("train", train_loss), ("val", val_loss)):
        fig.add_trace(go.Scatter(x=list(epochs), y=list(ys), mode="lines+markers", name=f"{split} loss",
                                 line=dict(color=SPLIT_COLORS[split], width=2.5)))
    if best_epoch is not None and len(epochs):
        fig.add_vrect(x0=best_epoch, x1=max(epochs), fillcolor="#d62728", opacity=0.08, line_width=0)
        fig.add_vline(x=best_epoch, line=dict(color="#d62728", dash="dash"))
        fig.add_annotation(x=best_epoch, y=1, yref="paper", text=f"overfitting after epoch {best_epoch}",
                           showarrow=False, xanchor="left", yanchor="top", font=dict(color="#d62728"))
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 20 else None)
    fig.update_yaxes(title_text="loss")
    if not len(epochs):
        fig.add_annotation(text="No epochs logged yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return base_layout(fig, title, height=380)


__all__ = ["pareto_figure", "overfitting_figure"]
