"""Training as an animation: one frame per stored epoch snapshot, with plotly's own slider and play button
("watch the filters form", "watch the heads specialise"). Every frame is one heat map (a mosaic of tiles),
on one colour scale shared by all frames, so what grows and what fades is visible.

Example:
    >>> fig = filters_animation([kernels_at[e] for e in epochs], epochs)   # (N, k, k) per epoch
    >>> len(fig.frames) == len(epochs)
    True
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from dlcore.viz._theme import base_layout
from dlcore.viz.inspect import DIVERGING, _image_axes, _mosaic, _tile_captions


def _frame_names(epochs: Sequence[int], labels: Sequence[str] | None) -> list[str]:
    names = [f"epoch {e}" for e in epochs]
    if labels is not None:
        if len(labels) != len(epochs):
            raise ValueError(f"{len(labels)} frame labels for {len(epochs)} epochs")
        names = [f"{n} · {lab}" if lab else n for n, lab in zip(names, labels)]
    return names


def _animated(mosaics: list[np.ndarray], epochs: Sequence[int], labels: Sequence[str] | None, heatmap: dict,
              title: str | None, height: int, frame_ms: int) -> go.Figure:
    """A figure showing ``mosaics[-1]`` (the latest epoch) with one frame per mosaic, a slider and Play/Pause."""
    if not mosaics:
        raise ValueError("an animation needs at least one snapshot")
    if len(mosaics) != len(epochs):
        raise ValueError(f"{len(mosaics)} frames for {len(epochs)} epochs")
    names = _frame_names(epochs, labels)
    trace = lambda z: go.Heatmap(z=z, **heatmap)  # noqa: E731
    fig = go.Figure(data=[trace(mosaics[-1])],
                    frames=[go.Frame(data=[trace(z)], name=str(e), layout=dict(title_text=_title(title, n)))
                            for z, e, n in zip(mosaics, epochs, names)])
    play = dict(frame=dict(duration=frame_ms, redraw=True), transition=dict(duration=0), fromcurrent=False,
                mode="immediate")
    fig.update_layout(
        # the buttons in a row under the plot, the slider under them (side by side they hide its first ticks)
        updatemenus=[dict(type="buttons", direction="left", x=0, y=0, xanchor="left", yanchor="top",
                          pad=dict(t=30), showactive=False,
                          buttons=[dict(label="▶ Play", method="animate", args=[None, play]),
                                   dict(label="❚❚ Pause", method="animate",
                                        args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")])])],
        sliders=[dict(active=len(epochs) - 1, x=0, len=1, y=0, yanchor="top", pad=dict(t=75),
                      currentvalue=dict(visible=False),  # the title names the frame's epoch
                      steps=[dict(label=str(e), method="animate",
                                  args=[[str(e)], dict(frame=dict(duration=0, redraw=True), mode="immediate",
                                                       transition=dict(duration=0))])
                             for e in epochs])])
    base_layout(fig, _title(title, names[-1]), height=height)
    fig.update_layout(margin=dict(b=150))
    return fig


def _title(title: str | None, frame: str) -> str:
    return f"{title} · {frame}" if title else frame


def filters_animation(kernels: Sequence[np.ndarray], epochs: Sequence[int], labels: Sequence[str] | None = None,
                      cols: int = 8, title: str | None = None, tile_px: int = 70, frame_ms: int = 600) -> go.Figure:
    """Conv kernels through training: one frame per epoch, each a grid of (N, k, k) kernels on one symmetric
    blue–red scale shared by all frames (white zero), like :func:`kernel_grid`.

    Args:
        kernels: per epoch, (N, k, k) one 2-D kernel per tile (the same N, k every epoch).
        epochs: the epoch of each frame (0 = before training).
        labels: text per frame after "epoch e" (e.g. the validation accuracy).
        title: shown before the frame's name.
    """
    ks = [np.asarray(k, dtype=np.float64) for k in kernels]
    if any(k.ndim != 3 or k.shape != ks[0].shape for k in ks):
        raise ValueError(f"kernels must be (N, k, k), the same shape at every epoch, got {[k.shape for k in ks]}")
    mosaics = [_mosaic(k, cols)[0] for k in ks]
    n, h, w = ks[0].shape
    _, rows, cols = _mosaic(ks[0], cols)
    m = max(float(np.nanmax(np.abs(z))) for z in mosaics) or 1.0
    fig = _animated(mosaics, epochs, labels, dict(colorscale=DIVERGING, zmin=-m, zmax=m, zmid=0,
                                                  colorbar=dict(title="weight", thickness=12),
                                                  hovertemplate="weight %{z:.3f}<extra></extra>"),
                    title, max(300, int(rows * tile_px * 1.15) + 210), frame_ms)
    _tile_captions(fig, [f"#{i}" for i in range(n)], rows, cols, h, w, 1)
    _image_axes(fig)
    return fig


def heads_animation(attn: Sequence[np.ndarray], epochs: Sequence[int], labels: Sequence[str] | None = None,
                    title: str | None = None, panel_px: int = 200, frame_ms: int = 600) -> go.Figure:
    """The heads of one layer through training: one frame per epoch, the (H, T, T) attention maps side by
    side (rows = queries, columns = keys; weights 0–1 on one scale).

    Args:
        attn: per epoch, (H, T, T) attention weights of one layer for one input.
        epochs: the epoch of each frame.
        labels: text per frame after "epoch e" (e.g. how closely the best head follows the expected pattern).
    """
    a = [np.asarray(x, dtype=np.float64) for x in attn]
    if any(x.ndim != 3 or x.shape != a[0].shape or x.shape[1] != x.shape[2] for x in a):
        raise ValueError(f"attn must be (heads, T, T), the same shape at every epoch, got {[x.shape for x in a]}")
    H, T = a[0].shape[0], a[0].shape[1]
    gap = max(1, T // 8)
    mosaics = [_mosaic(x, H, gap=gap)[0] for x in a]
    fig = _animated(mosaics, epochs, labels, dict(colorscale="Blues", zmin=0, zmax=1,
                                                  colorbar=dict(title="weight", thickness=12),
                                                  hovertemplate="weight %{z:.3f}<extra></extra>"),
                    title, panel_px + 230, frame_ms)
    _tile_captions(fig, [f"head {h + 1}" for h in range(H)], 1, H, T, T, gap)
    _image_axes(fig)
    return fig


def map_animation(maps: Sequence[np.ndarray], epochs: Sequence[int], labels: Sequence[str] | None = None,
                  signed: bool = True, title: str | None = None, height: int = 460, frame_ms: int = 600) -> go.Figure:
    """One 2-D map through training (an explanation over an image, or a (1, T) row over a sequence): one
    frame per epoch. Each frame is scaled to its own largest magnitude — attributions of an untrained model
    are tiny — so the frames compare where the evidence lies, not how much there is.

    Args:
        maps: per epoch, a (H, W) map (the same shape at every epoch).
        signed: blue–red around zero (True) or white–red magnitudes (False).
    """
    ms = [np.asarray(m, dtype=np.float64) for m in maps]
    if any(m.ndim != 2 or m.shape != ms[0].shape for m in ms):
        raise ValueError(f"maps must be 2-D, the same shape at every epoch, got {[m.shape for m in ms]}")
    scaled = [m / (float(np.nanmax(np.abs(m))) or 1.0) for m in ms]
    style = (dict(colorscale=DIVERGING, zmin=-1, zmax=1, zmid=0) if signed else dict(colorscale="Reds", zmin=0, zmax=1))
    fig = _animated(scaled, epochs, labels, dict(**style, colorbar=dict(title="relative", thickness=12),
                                                 hovertemplate="%{z:.2f} of the frame's largest<extra></extra>"),
                    title, height, frame_ms)
    _image_axes(fig)
    if ms[0].shape[0] == 1:  # a sequence: no square pixels
        fig.update_yaxes(scaleanchor=None)
    return fig
