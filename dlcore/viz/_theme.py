"""Shared look of every figure: one layout, one palette, and the presentation-mode scaling."""
from __future__ import annotations

import copy

import plotly.graph_objects as go

SPLIT_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
BASE_FONT = 13
METRIC_TITLES = {"accuracy": "Accuracy", "token_accuracy": "Token accuracy", "mae": "Mean absolute error",
                 "perplexity": "Perplexity", "loss": "Loss"}


def base_layout(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    """White background, light grid, legend on top: legible on a projector and in a PNG."""
    fig.update_layout(template="plotly_white", font=dict(size=BASE_FONT),
                      margin=dict(l=60, r=20, t=70 if title else 40, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0))
    if title:
        fig.update_layout(title=dict(text=title, x=0, xanchor="left", font=dict(size=BASE_FONT + 4)))
    if height:
        fig.update_layout(height=height)
    return fig


def _scaled(size, factor: float, floor: float):
    return max(floor, (size or BASE_FONT) * factor)


def for_presentation(fig: go.Figure, base_size: int = 24) -> go.Figure:
    """A copy of ``fig`` with text, lines and markers large enough to read from the back of a classroom.

    Args:
        fig: any figure from ``dlcore.viz``.
        base_size: the body font size in px (axis ticks, legend, hover).

    Example:
        >>> big = for_presentation(training_curves(steps, epochs, "accuracy"))
    """
    out = go.Figure(copy.deepcopy(fig.to_dict()))
    factor = base_size / BASE_FONT
    out.update_layout(font=dict(size=base_size), hoverlabel=dict(font_size=base_size))
    if out.layout.title and out.layout.title.text:
        out.update_layout(title_font_size=_scaled(out.layout.title.font.size, factor, base_size + 4))
    for ann in out.layout.annotations or ():
        ann.font.size = _scaled(ann.font.size, factor, base_size * 0.8)
        if ann.yshift:
            ann.yshift *= factor  # captions placed in pixels below an axis move down with its larger labels
    # axes given their own tick or title size (dense heat maps use 9 px ticks) grow like the rest
    for name in [k for k in out.layout.to_plotly_json() if k.startswith(("xaxis", "yaxis"))]:
        axis = out.layout[name]
        if axis.tickfont.size:
            axis.tickfont.size = _scaled(axis.tickfont.size, factor, base_size * 0.75)
        if axis.title.font.size:
            axis.title.font.size = _scaled(axis.title.font.size, factor, base_size)
    for tr in out.data:
        if getattr(tr, "line", None) is not None and "line" in tr:
            tr.line.width = max(3.0, (tr.line.width or 2) * 1.6)
        if getattr(tr, "marker", None) is not None and "marker" in tr and tr.type in ("scatter", "scattergl"):
            size = tr.marker.size  # one size, or one per point (the trajectories grow their last step)
            tr.marker.size = ([max(9.0, s * 1.5) for s in size] if isinstance(size, (list, tuple)) else
                              max(9.0, (size or 6) * 1.5))
        if tr.type == "heatmap" and tr.texttemplate:
            tr.textfont.size = _scaled(tr.textfont.size, factor, base_size * 0.8)
        if tr.type == "scatter" and tr.mode and "text" in tr.mode and tr.textfont is not None:
            tr.textfont.size = _scaled(tr.textfont.size, factor, base_size * 0.7)
    if out.layout.height:
        out.update_layout(height=int(out.layout.height * 1.35))
    m = out.layout.margin
    # the bottom margin holds tick labels and captions, which grow by ``factor``: scaled less, their last line is cut
    out.update_layout(margin=dict(l=(m.l or 60) * 1.5, r=(m.r or 20), t=(m.t or 40) * 1.4,
                                  b=(m.b or 50) * max(1.5, factor)))
    return out
