"""Pictures of datasets: image grids, sequences, time series, class balance and feature ranges.

Every function takes numpy arrays (or lists) and returns a ``go.Figure``; nothing here loads data.

Example:
    >>> x, y = dataset.train
    >>> fig = image_grid(x[:32].numpy(), [info.class_names[i] for i in y[:32]])
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlcore.viz._theme import PALETTE, SPLIT_COLORS, base_layout


def _as_images(images) -> tuple[np.ndarray, bool]:
    """(N, H, W) or (N, H, W, 3) in [0, 1], and whether the images are colour."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 2:  # one image
        a = a[None]
    if a.ndim == 4:
        if a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):  # (N, C, H, W) -> (N, H, W, C)
            a = a.transpose(0, 2, 3, 1)
        if a.shape[-1] == 1:
            a = a[..., 0]
        elif a.shape[-1] != 3:
            a = a[..., 0]  # more channels than RGB: show the first
    if a.ndim != 3 and not (a.ndim == 4 and a.shape[-1] == 3):
        raise ValueError(f"images must be (N, H, W), (N, C, H, W) or (N, H, W, 3); got shape {np.shape(images)}")
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    a = (np.nan_to_num(a, nan=lo) - lo) / (hi - lo if hi > lo else 1.0)
    return np.clip(a, 0, 1), a.ndim == 4


def image_grid(images, captions: Sequence[str] | None = None, cols: int = 8, title: str | None = None,
               tile_px: int = 96, caption_colors: Sequence[str] | None = None, invert: bool = True) -> go.Figure:
    """A grid of small images with a caption above each (class, or "true → predicted").

    The images are tiled into one mosaic (a single trace), so a grid of 64 draws as fast as one image.

    Args:
        images: (N, H, W), (N, C, H, W) with C in {1, 3}, or (N, H, W, 3); any value range (rescaled).
        captions: one short text per image.
        cols: images per row.
        title: figure title.
        tile_px: approximate height of one tile in pixels (sets the figure height).
        caption_colors: optional colour per caption (e.g. red for a wrong prediction).
        invert: show grey images dark-on-white (ink on paper) rather than white-on-black.
    """
    a, colour = _as_images(images)
    n = len(a)
    if n == 0:
        fig = go.Figure()
        fig.add_annotation(text="no images", x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
        return base_layout(fig, title, height=200)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    h, w = a.shape[1], a.shape[2]
    gap = max(1, round(w * 0.12))
    cap = max(3, round(h * 0.32)) if captions is not None else gap
    cell_h, cell_w = h + cap, w + gap
    shape = (rows * cell_h, cols * cell_w - gap) + ((3,) if colour else ())
    mosaic = np.full(shape, np.nan if not colour else 1.0, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        mosaic[r * cell_h + cap: r * cell_h + cap + h, c * cell_w: c * cell_w + w] = a[i]
    fig = go.Figure()
    if colour:
        fig.add_trace(go.Image(z=(mosaic * 255).astype(np.uint8), hoverinfo="skip"))
    else:
        fig.add_trace(go.Heatmap(z=mosaic, colorscale="Greys" if invert else "gray", zmin=0, zmax=1,
                                 showscale=False, hoverinfo="skip"))
    notes = []
    for i in range(n if captions is not None else 0):
        r, c = divmod(i, cols)
        color = caption_colors[i] if caption_colors is not None and i < len(caption_colors) else "#222"
        notes.append(dict(x=c * cell_w + (w - 1) / 2, y=r * cell_h + cap - 1, text=str(captions[i]), showarrow=False,
                          yanchor="bottom", xanchor="center", font=dict(size=12, color=color)))
    fig.update_layout(annotations=notes)  # one batch: adding 64 annotations one by one is slow
    fig.update_xaxes(visible=False, range=[-0.5, shape[1] - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[shape[0] - 0.5, -0.5], scaleanchor="x", constrain="domain")
    base_layout(fig, title, height=int(rows * tile_px * cell_h / h + (60 if title else 20)))
    fig.update_layout(margin=dict(l=5, r=5, t=50 if title else 10, b=5), showlegend=False, plot_bgcolor="white")
    return fig


def sequence_lines(x, captions: Sequence[str] | None = None, targets=None, cols: int = 3,
                   title: str | None = None, feature_names: Sequence[str] | None = None) -> go.Figure:
    """Small multiples of sequences (N, T, F): one panel per example, one line per feature (≤ 6 shown).

    Args:
        x: (N, T) or (N, T, F) inputs.
        captions: one title per panel (the label).
        targets: optional (N, H) values that follow each window (forecasting), drawn after it.
        cols: panels per row.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"sequences must be (N, T) or (N, T, F); got shape {np.shape(x)}")
    n, t, f = a.shape
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[str(c) for c in captions[:n]] if captions else None,
                        horizontal_spacing=0.05, vertical_spacing=min(0.35 / rows, 0.12))
    tgt = None if targets is None else np.asarray(targets, dtype=np.float64).reshape(n, -1)
    for i in range(n):
        r, c = divmod(i, cols)
        for j in range(min(f, 6)):
            if feature_names and j < len(feature_names):
                name = feature_names[j]
            else:
                name = f"feature {j}" if f > 1 else "input"
            fig.add_trace(go.Scatter(x=np.arange(t), y=a[i, :, j], mode="lines", name=name, legendgroup=name,
                                     showlegend=i == 0, line=dict(color=PALETTE[j % len(PALETTE)], width=2)),
                          r + 1, c + 1)
        if tgt is not None:
            fig.add_trace(go.Scatter(x=np.arange(t, t + tgt.shape[1]), y=tgt[i], mode="markers+lines", name="target",
                                     legendgroup="target", showlegend=i == 0,
                                     line=dict(color=SPLIT_COLORS["val"], width=2, dash="dot"), marker=dict(size=7)),
                          r + 1, c + 1)
    fig.update_xaxes(title_text="", showgrid=False)
    base_layout(fig, title, height=int(rows * 190 + 90))
    return fig


def series_plot(series, test_start: int | None = None, title: str | None = None, y_title: str = "value",
                index=None) -> go.Figure:
    """A whole time series, with the held-out test span shaded.

    Args:
        series: 1-D values.
        test_start: index where the test span begins (None: no shading).
        index: optional x values (years, dates); defaults to 0..N-1.
    """
    s = np.asarray(series, dtype=np.float64).ravel()
    xs = np.arange(len(s)) if index is None else np.asarray(index)
    fig = go.Figure(go.Scatter(x=xs, y=s, mode="lines", name="series", line=dict(color=SPLIT_COLORS["train"], width=2)))
    if test_start is not None and 0 < test_start < len(s):
        fig.add_vrect(x0=xs[test_start], x1=xs[-1], fillcolor=SPLIT_COLORS["test"], opacity=0.12, line_width=0,
                      annotation_text="test span", annotation_position="top left")
    fig.update_xaxes(title_text="time step" if index is None else "")
    fig.update_yaxes(title_text=y_title)
    return base_layout(fig, title, height=340)


def class_balance(counts: Mapping[str, Sequence[int]], class_names: Sequence[str],
                  title: str | None = None) -> go.Figure:
    """Examples per class for each split, as grouped bars (an imbalanced set shows at a glance).

    Args:
        counts: split name ("train", "val", "test") -> count per class.
        class_names: one name per class.
    """
    fig = go.Figure()
    names = [str(c) for c in class_names]
    for i, (split, cnt) in enumerate(counts.items()):
        cnt = np.asarray(cnt)
        fig.add_trace(go.Bar(x=names, y=cnt, name=f"{split} ({int(cnt.sum()):,})",
                             marker_color=SPLIT_COLORS.get(split, PALETTE[i % len(PALETTE)]),
                             hovertemplate=f"{split}<br>%{{x}}: %{{y:,}}<extra></extra>"))
    fig.update_layout(barmode="group", bargap=0.2)
    fig.update_xaxes(title_text="class", type="category")
    fig.update_yaxes(title_text="examples")
    return base_layout(fig, title, height=340)


def feature_ranges(x, feature_names: Sequence[str] | None = None, max_features: int = 30,
                   title: str | None = None) -> go.Figure:
    """Box plots of tabular features (N, F): their spread after normalisation."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"a table must be (N, F); got shape {np.shape(x)}")
    names = list(feature_names or [f"f{j}" for j in range(a.shape[1])])
    fig = go.Figure()
    for j in range(min(a.shape[1], max_features)):
        fig.add_trace(go.Box(y=a[:, j], name=names[j], marker_color=PALETTE[j % len(PALETTE)], boxpoints=False))
    fig.update_layout(showlegend=False)
    fig.update_yaxes(title_text="value (standardised)")
    return base_layout(fig, title, height=360)


def decode_tokens(ids, vocab: Sequence[str], pad: str | None = "␀") -> str:
    """Token ids -> text with a dataset's vocabulary (padding dropped)."""
    out = []
    for i in np.asarray(ids).ravel():
        ch = vocab[int(i)] if 0 <= int(i) < len(vocab) else "?"
        if pad is not None and ch == pad:
            continue
        out.append(ch)
    sep = "" if all(len(v) == 1 for v in vocab) and not all(v.isdigit() for v in vocab) else " "
    return sep.join(out)
