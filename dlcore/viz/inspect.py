"""Figures for looking inside models: conv kernels, feature maps, activation statistics, attention heads and
rollout, ViT overlays, recurrent trajectories and gates, embedding scatter plots.

Pure functions: numpy in, ``plotly.graph_objects.Figure`` out, no Streamlit.

Example:
    >>> fig = kernel_grid(kernels(model, "features.0.0")[:, 0], title="Layer 1 filters")
    >>> fig = attention_heads(attn, token_labels(x, info.vocab))
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlcore.viz._theme import PALETTE, base_layout

DIVERGING = "RdBu_r"


def _mosaic(tiles: np.ndarray, cols: int, gap: int = 1) -> tuple[np.ndarray, int, int]:
    """Tile (N, h, w[, 3]) into one array with NaN (or white) gaps; returns (mosaic, rows, cols)."""
    n, h, w = tiles.shape[:3]
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    extra = tiles.shape[3:]
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, *extra), np.nan, dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = tiles[i]
    return out, rows, cols


def _image_axes(fig: go.Figure, row: int | None = None, col: int | None = None) -> None:
    kw = {} if row is None else {"row": row, "col": col}
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", **kw)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor="x" if row is None else None, constrain="domain", **kw)


def _tile_captions(fig: go.Figure, captions: Sequence[str], rows: int, cols: int, h: int, w: int, gap: int) -> None:
    # one layout update for all of them: add_annotation validates every annotation already there (quadratic:
    # 160 captions took 1.5 s of a Filters rerun)
    new = [dict(x=c * (w + gap) + (w - 1) / 2, y=r * (h + gap) - 0.5, text=text, showarrow=False,
                yanchor="bottom", font=dict(size=10), xref="x", yref="y")
           for (r, c), text in ((divmod(i, cols), text) for i, text in enumerate(captions))]
    fig.update_layout(annotations=list(fig.layout.annotations) + new)


def kernel_grid(weights: np.ndarray, captions: Sequence[str] | None = None, cols: int = 8,
                title: str | None = None, tile_px: int = 80) -> go.Figure:
    """Conv kernels as a grid of small images.

    Args:
        weights: (N, k, k) one 2-D kernel per tile, shown on one symmetric blue–red scale (blue negative,
            red positive, white zero), or (N, 3, k, k) RGB kernels of a colour first layer, each rescaled to [0, 1].
        captions: text above each tile (default: "#0", "#1", ...).
    """
    w = np.asarray(weights, dtype=np.float64)
    rgb = w.ndim == 4 and w.shape[1] == 3
    if rgb:
        lo, hi = w.min(axis=(1, 2, 3), keepdims=True), w.max(axis=(1, 2, 3), keepdims=True)
        tiles = ((w - lo) / np.where(hi > lo, hi - lo, 1.0)).transpose(0, 2, 3, 1)
    elif w.ndim == 3:
        tiles = w
    else:
        raise ValueError(f"weights must be (N, k, k) or (N, 3, k, k), got shape {w.shape}")
    n, h, wd = tiles.shape[:3]
    mosaic, rows, cols = _mosaic(tiles, cols)
    fig = go.Figure()
    if rgb:
        fig.add_trace(go.Image(z=np.nan_to_num(mosaic, nan=1.0) * 255, hoverinfo="skip"))
    else:
        m = float(np.nanmax(np.abs(mosaic))) or 1.0
        fig.add_trace(go.Heatmap(z=mosaic, colorscale=DIVERGING, zmin=-m, zmax=m, zmid=0,
                                 colorbar=dict(title="weight", thickness=12),
                                 hovertemplate="weight %{z:.3f}<extra></extra>"))
    captions = list(captions) if captions is not None else [f"#{i}" for i in range(n)]
    _tile_captions(fig, captions[:n], rows, cols, h, wd, 1)
    _image_axes(fig)
    base_layout(fig, title, height=max(220, int(rows * tile_px * 1.15) + 90))
    return fig


def feature_map_grid(maps: np.ndarray, captions: Sequence[str] | None = None, cols: int = 8,
                     title: str | None = None, tile_px: int = 80, normalize: bool = True) -> go.Figure:
    """Feature maps (C, H, W) of one layer as a grid; each channel scaled to its own [0, 1] when ``normalize``
    (so weak channels stay visible), otherwise one shared scale. Hover shows the raw activation."""
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"maps must be (channels, H, W), got shape {a.shape}")
    n, h, w = a.shape
    shown = a
    if normalize:
        lo, hi = a.min(axis=(1, 2), keepdims=True), a.max(axis=(1, 2), keepdims=True)
        shown = (a - lo) / np.where(hi > lo, hi - lo, 1.0)
    mosaic, rows, cols = _mosaic(shown, cols)
    raw, _, _ = _mosaic(a, cols)
    fig = go.Figure(go.Heatmap(z=mosaic, customdata=raw, colorscale="Viridis", showscale=not normalize,
                               hovertemplate="activation %{customdata:.3f}<extra></extra>"))
    captions = list(captions) if captions is not None else [f"ch {i}" for i in range(n)]
    _tile_captions(fig, captions[:n], rows, cols, h, w, 1)
    _image_axes(fig)
    base_layout(fig, title, height=max(220, int(rows * tile_px * 1.1) + 90))
    return fig


def activation_stats_figure(rows: Sequence[dict], title: str | None = "Activations per layer") -> go.Figure:
    """Mean ± std (bars with error bars) and the share of zero activations (line, right axis) per layer,
    from :func:`dlcore.inspect.activation_stats` rows."""
    if not rows:
        raise ValueError("no activation statistics to plot")
    names = [f"{r['layer']} ({r['type']})" for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=names, y=[r["mean"] for r in rows], name="mean ± std", marker_color=PALETTE[0],
                         error_y=dict(type="data", array=[r["std"] for r in rows], thickness=1),
                         customdata=[[r["min"], r["max"], r["dead_units"], r["units"]] for r in rows],
                         hovertemplate="%{x}<br>mean %{y:.3f}<br>min %{customdata[0]:.3f} · max %{customdata[1]:.3f}"
                                       "<br>dead units %{customdata[2]} / %{customdata[3]}<extra></extra>"),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=names, y=[r["zero_fraction"] for r in rows], name="share of zeros",
                             mode="lines+markers", marker_color=PALETTE[3],
                             hovertemplate="%{x}<br>zeros %{y:.1%}<extra></extra>"), secondary_y=True)
    fig.update_yaxes(title_text="activation", secondary_y=False)
    fig.update_yaxes(title_text="share of zeros", range=[0, 1], tickformat=".0%", secondary_y=True, showgrid=False)
    fig.update_xaxes(tickangle=-35)
    return base_layout(fig, title, height=420)


# ---------------------------------------------------------------- attention
def attention_heads(attn: np.ndarray, labels: Sequence[str], layers: Sequence[int] | None = None,
                    title: str | None = None, panel_px: int = 230, highlight: dict | None = None) -> go.Figure:
    """A grid of attention heat maps: one row per layer, one column per head; rows = queries, columns = keys.

    Args:
        attn: (layers, heads, T, T) attention weights.
        labels: T token labels for both axes (shown when T ≤ 40).
        layers: which layers to show (default: all).
        highlight: {(layer, head): text} appended to panel titles (e.g. a pattern score).
    """
    a = np.asarray(attn, dtype=np.float64)
    if a.ndim != 4:
        raise ValueError(f"attn must be (layers, heads, T, T), got shape {a.shape}")
    layers = list(range(a.shape[0])) if layers is None else list(layers)
    H, T = a.shape[1], a.shape[-1]
    titles = []
    for li in layers:
        for hi in range(H):
            extra = (highlight or {}).get((li, hi))
            # the score on a second line: one line overlaps its neighbours' titles in presentation type
            titles.append(f"layer {li + 1} · head {hi + 1}" + (f"<br>{extra}" if extra else ""))
    fig = make_subplots(rows=len(layers), cols=H, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=min(0.12, 0.3 / max(1, len(layers))))
    labels = [str(s) for s in labels]
    show_ticks = T <= 40
    for r, li in enumerate(layers, start=1):
        for c in range(1, H + 1):
            fig.add_trace(go.Heatmap(z=a[li, c - 1], x=labels, y=labels, zmin=0, zmax=1, colorscale="Blues",
                                     showscale=(r == 1 and c == H), colorbar=dict(title="weight", thickness=12),
                                     hovertemplate="query %{y} → key %{x}<br>weight %{z:.3f}<extra></extra>"),
                          row=r, col=c)
            fig.update_xaxes(showticklabels=show_ticks, tickangle=-90, tickfont=dict(size=9), row=r, col=c,
                             type="category")
            fig.update_yaxes(showticklabels=show_ticks and c == 1, autorange="reversed", tickfont=dict(size=9),
                             row=r, col=c, type="category")
    for ann in fig.layout.annotations:
        ann.font.size = 11
    base_layout(fig, title, height=int(len(layers) * panel_px + 110))
    return fig


def attention_matrix(m: np.ndarray, labels: Sequence[str], title: str | None = None,
                     colorscale: str = "Blues", zmax: float | None = None) -> go.Figure:
    """One (T, T) map (a rollout, a head, or the expected pattern) with token labels; rows attend to columns."""
    m = np.asarray(m, dtype=np.float64)
    labels = [str(s) for s in labels]
    fig = go.Figure(go.Heatmap(z=m, x=labels, y=labels, colorscale=colorscale, zmin=0,
                               zmax=zmax if zmax is not None else float(m.max()) or 1.0,
                               hovertemplate="query %{y} → key %{x}<br>%{z:.3f}<extra></extra>"))
    fig.update_xaxes(type="category", tickangle=-90, title="attended to (key)", constrain="domain")
    fig.update_yaxes(type="category", autorange="reversed", title="attending (query)", scaleanchor="x",
                     constrain="domain")
    return base_layout(fig, title, height=max(360, min(720, 18 * len(labels) + 160)))


def pattern_scores_figure(scores: np.ndarray, chance: float, title: str | None = None) -> go.Figure:
    """How strongly each head follows the expected pattern (layers × heads), with the chance level in the title."""
    s = np.asarray(scores, dtype=np.float64)
    fig = go.Figure(go.Heatmap(z=s, x=[f"head {h + 1}" for h in range(s.shape[1])],
                               y=[f"layer {l + 1}" for l in range(s.shape[0])], zmin=0, zmax=1, colorscale="Greens",
                               texttemplate="%{z:.2f}", hovertemplate="%{y} %{x}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return base_layout(fig, title or f"Attention on the expected keys (chance {chance:.2f})",
                       height=max(220, 60 * s.shape[0] + 120))


def _gray_background(image: np.ndarray, faint: bool = True) -> go.BaseTraceType:
    """The image as a trace; grey images as dark ink on white, lighter when ``faint`` (under an overlay)."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:  # RGB (H, W, 3)
        lo, hi = img.min(), img.max()
        return go.Image(z=(img - lo) / (hi - lo if hi > lo else 1.0) * 255, hoverinfo="skip")
    return go.Heatmap(z=img, colorscale="Greys", showscale=False, hoverinfo="skip",
                      zmin=float(img.min()), zmax=(float(img.max()) * (1.6 if faint else 1.0)) or 1.0)


def image_figure(image: np.ndarray, title: str | None = None, height: int = 320) -> go.Figure:
    """One input image: (C, H, W) with C in {1, 3}, (H, W) or (H, W, 3); grey images dark ink on white."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    fig = go.Figure(_gray_background(img, faint=False))
    _image_axes(fig)
    return base_layout(fig, title, height=height)


def image_overlay(image: np.ndarray, heat: np.ndarray, title: str | None = None, colorbar_title: str = "",
                  opacity: float = 0.75, height: int = 420, hover: str = "%{z:.3f}") -> go.Figure:
    """A heat map (H, W) laid over an image (H, W) or (H, W, 3): transparent where the heat is zero."""
    heat = np.asarray(heat, dtype=np.float64)
    fig = go.Figure(_gray_background(image))
    hi = float(np.nanmax(heat)) or 1.0
    scale = [[0.0, "rgba(255,140,0,0)"], [0.3, "rgba(255,140,0,0.35)"], [1.0, "rgba(200,0,0,0.95)"]]
    fig.add_trace(go.Heatmap(z=heat, colorscale=scale, zmin=0, zmax=hi, opacity=opacity,
                             colorbar=dict(title=colorbar_title, thickness=12),
                             hovertemplate=f"row %{{y}}, col %{{x}}<br>{hover}<extra></extra>"))
    _image_axes(fig)
    return base_layout(fig, title, height=height)


def vit_rollout_overlay(image: np.ndarray, grid_map: np.ndarray, title: str | None = None) -> go.Figure:
    """The [CLS] rollout of a ViT (a (g, g) patch map, scaled to its min–max) upsampled over its input image, with
    patch borders."""
    img = np.asarray(image, dtype=np.float64)
    size = img.shape[0]
    grid_map = np.asarray(grid_map, dtype=np.float64)
    lo, hi = grid_map.min(), grid_map.max()
    # min-max scaled: the residual path gives every patch a floor that would otherwise tint the whole image
    grid_map = (grid_map - lo) / (hi - lo) if hi > lo else np.zeros_like(grid_map)
    g = grid_map.shape[0]
    rep = size // g
    heat = np.kron(grid_map, np.ones((rep, rep)))
    fig = image_overlay(img, heat, title, colorbar_title="rollout", hover="[CLS] attention %{z:.2f}")
    for k in range(1, g):
        for axis in ("x", "y"):
            pos = k * rep - 0.5
            fig.add_shape(type="line", x0=pos if axis == "x" else -0.5, x1=pos if axis == "x" else size - 0.5,
                          y0=-0.5 if axis == "x" else pos, y1=size - 0.5 if axis == "x" else pos,
                          line=dict(color="rgba(0,0,0,0.15)", width=1))
    return fig


# ---------------------------------------------------------------- recurrent internals
def trajectory_figure(points: np.ndarray, labels: Sequence | None = None, class_names: Sequence[str] = (),
                      title: str | None = None, explained: Sequence[float] | None = None) -> go.Figure:
    """Hidden-state trajectories (N, T, 2) after PCA: one line per example, coloured by its class; a circle
    marks the first step and a diamond the last."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] < 2:
        raise ValueError(f"points must be (N, T, 2), got shape {p.shape}")
    N, T, _ = p.shape
    sizes = [9] + [4] * (T - 2) + [11] if T > 1 else [9]  # the first step a circle, the last a diamond
    symbols = ["circle"] * (T - 1) + ["diamond"] if T > 1 else ["circle"]
    fig = go.Figure()
    seen = set()
    for i in range(N):
        lab = None if labels is None else labels[i]
        key = int(lab) if lab is not None and np.ndim(lab) == 0 else None
        if key is None:
            name = f"#{i}"
        else:
            name = class_names[key] if key < len(class_names) else str(key)
        color = PALETTE[(key if key is not None else i) % len(PALETTE)]
        fig.add_trace(go.Scatter(x=p[i, :, 0], y=p[i, :, 1], mode="lines+markers", name=name, legendgroup=name,
                                 showlegend=name not in seen, line=dict(color=color, width=1.5),
                                 marker=dict(size=sizes, symbol=symbols),
                                 customdata=np.arange(T), opacity=0.85,
                                 hovertemplate=f"example {i} ({name})<br>step %{{customdata}}<extra></extra>"))
        seen.add(name)
    ev = [] if explained is None else list(explained)
    fig.update_xaxes(title=f"PC 1 ({ev[0]:.0%} of variance)" if len(ev) > 0 else "PC 1")
    fig.update_yaxes(title=f"PC 2 ({ev[1]:.0%} of variance)" if len(ev) > 1 else "PC 2")
    return base_layout(fig, title, height=480)


def gates_figure(states: dict, names: dict[str, str], keys: Sequence[str], step_labels: Sequence[str] | None = None,
                 max_units: int = 64, title: str | None = None) -> go.Figure:
    """Heat maps (units × steps) of gate activations and states of one recurrent layer.

    Args:
        states: {"i": (T, H), "f": ..., "h": (T, H), "c": ...} for one layer/direction.
        names: key -> readable name ("i" -> "input gate").
        keys: which entries to draw, top to bottom.
        max_units: draw at most this many units (the first ones).
    """
    keys = [k for k in keys if k in states]
    fig = make_subplots(rows=len(keys), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[names.get(k, k) for k in keys])
    for r, k in enumerate(keys, start=1):
        v = np.asarray(states[k], dtype=np.float64)[:, :max_units].T  # (units, T)
        gate = k not in ("h", "c", "g", "n")
        x = list(step_labels) if step_labels is not None else list(range(v.shape[1]))
        top = max(1e-6, float(np.abs(v).max()))  # states on a symmetric scale, gates on [0, 1]
        fig.add_trace(go.Heatmap(z=v, x=x, colorscale="Viridis" if gate else DIVERGING,
                                 zmin=0 if gate else -top, zmax=1 if gate else top,
                                 showscale=False, hovertemplate="step %{x}, unit %{y}<br>%{z:.3f}<extra></extra>"),
                      row=r, col=1)
        fig.update_yaxes(title_text="unit", row=r, col=1)
    fig.update_xaxes(title_text="time step", row=len(keys), col=1, type="category")
    return base_layout(fig, title, height=170 * len(keys) + 100)


# ---------------------------------------------------------------- embeddings
def embedding_scatter(xy: np.ndarray, labels: np.ndarray, class_names: Sequence[str] = (),
                      predicted: np.ndarray | None = None, hover: Sequence[str] | None = None,
                      title: str | None = None) -> go.Figure:
    """2-D projection of representations, one colour per class; misclassified points drawn as crosses.
    Each point's ``customdata`` is its example index (for selection)."""
    xy = np.asarray(xy, dtype=np.float64)
    labels = np.asarray(labels)
    fig = go.Figure()
    classes = np.unique(labels)
    for k in classes:
        idx = np.flatnonzero(labels == k)
        name = class_names[int(k)] if int(k) < len(class_names) else str(k)
        wrong = np.zeros(len(idx), bool) if predicted is None else np.asarray(predicted)[idx] != k
        text = [hover[i] for i in idx] if hover is not None else [f"example {i}" for i in idx]
        fig.add_trace(go.Scattergl(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=name, customdata=idx, text=text,
            marker=dict(color=PALETTE[int(k) % len(PALETTE)], size=np.where(wrong, 10, 6),
                        symbol=np.where(wrong, "x", "circle").tolist(), line=dict(width=0), opacity=0.8),
            hovertemplate="%{text}<extra>" + name + "</extra>"))
    fig.update_xaxes(title="dimension 1", showticklabels=False)
    fig.update_yaxes(title="dimension 2", showticklabels=False)
    return base_layout(fig, title, height=560)
