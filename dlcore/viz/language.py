"""Figures for language models and attention heads: the next-token distribution and what the sampling cut
removes, the logit lens grid, and the head knock-out chart.

Pure functions: numpy/pandas in, ``plotly.graph_objects.Figure`` out, no Streamlit. Token attributions of typed
text are drawn by :func:`dlcore.viz.attribution_panels` (``Panel(kind="tokens")``) and their deletion/insertion
curves by :func:`dlcore.viz.curves_figure` (``TypedResult.curves()``).

Example:
    >>> tokens, before, after = dlcore.next_token_distribution(model, info, "import ", 0.8, top_k=5)
    >>> fig = next_token_figure(tokens, before, after)
    >>> fig = logit_lens_figure(lens.top_probs, lens.top_tokens, lens.rows, labels)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlcore.viz._theme import METRIC_TITLES, PALETTE, base_layout

_SHOWN = {" ": "␣", "\n": "⏎", "\t": "⇥"}


def shown_token(token: str) -> str:
    """A character as it can be read on an axis: space, newline and tab made visible."""
    return _SHOWN.get(token, token)


def next_token_figure(tokens: Sequence[str], before: np.ndarray, after: np.ndarray, n: int = 20,
                      title: str | None = "Next character") -> go.Figure:
    """The ``n`` most likely next characters: probability after the temperature (light) and after the top-k /
    top-p cut (dark, renormalised); characters the cut removes are marked "cut".

    Args:
        tokens, before, after: from :func:`dlcore.next_token_distribution` (most likely first).
    """
    b, a = np.asarray(before, dtype=np.float64)[:n], np.asarray(after, dtype=np.float64)[:n]
    labels = [shown_token(t) for t in list(tokens)[:n]]
    if len(set(labels)) < len(labels):  # plotly merges equal category labels
        labels = [f"{i + 1}. {t}" for i, t in enumerate(labels)]
    removed = (b > 0) & (a == 0)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=b, name="after temperature", marker_color="rgba(31,119,180,0.35)",
                         hovertemplate="%{x}: %{y:.3f} after temperature<extra></extra>"))
    fig.add_trace(go.Bar(x=labels, y=a, name="after top-k / top-p (sampled from)", marker_color=PALETTE[0],
                         hovertemplate="%{x}: %{y:.3f} after the cut<extra></extra>"))
    for x, y in zip(np.array(labels)[removed], b[removed]):
        fig.add_annotation(x=x, y=y, text="cut", showarrow=False, yanchor="bottom", font=dict(size=10, color="#888"))
    fig.update_layout(barmode="overlay", bargap=0.15)
    fig.update_xaxes(type="category", title_text="next character")
    fig.update_yaxes(title_text="probability", rangemode="tozero")
    return base_layout(fig, title, height=380)


def logit_lens_figure(top_probs: np.ndarray, top_tokens: Sequence[Sequence[str]], rows: Sequence[str],
                      positions: Sequence[str], title: str | None = "Logit lens: what each block would predict"
                      ) -> go.Figure:
    """A layer × position grid: colour = probability of the top prediction, text = that prediction.

    Args:
        top_probs: (rows, positions) from :class:`dlcore.inspect.LogitLens`; top_tokens the predictions.
        rows: row labels ("block 1", ...); positions: column labels (the input characters).
    """
    p = np.asarray(top_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape != (len(rows), len(positions)):
        raise ValueError(f"top_probs must be (rows, positions) = ({len(rows)}, {len(positions)}), got {p.shape}")
    text = [[shown_token(t) for t in row] for row in top_tokens]
    cols = [f"{i}:{shown_token(c)}" for i, c in enumerate(positions)]
    written = "%{text}" if p.shape[1] <= 48 else None  # the characters themselves while they fit
    fig = go.Figure(go.Heatmap(z=p, x=cols, y=list(rows), text=text, texttemplate=written,
                               zmin=0, zmax=1, colorscale="Blues", colorbar=dict(title="p(top)", thickness=12),
                               hovertemplate="%{y} at %{x}<br>predicts %{text} (p %{z:.2f})<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", tickangle=-90, title_text="position: input character")
    return base_layout(fig, title, height=max(260, 60 * len(rows) + 140))


def knockout_figure(table: pd.DataFrame, metric: str, before: float,
                    title: str | None = "Head knock-out: does the pattern matter?") -> go.Figure:
    """Per head, pattern score against the metric when the head is knocked out (left) and when it is the only
    head left in its layer (right); the dashed line is the metric with every head.

    Args:
        table: :attr:`dlcore.inspect.Knockout.table` (head, layer, pattern_score, <metric>, drop, alone).
    """
    name = METRIC_TITLES.get(metric, metric)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["this head knocked out", "only this head left in its layer"],
                        shared_yaxes=True, horizontal_spacing=0.06)
    has_score = table["pattern_score"].notna().any()
    x = table["pattern_score"] if has_score else table["head"]
    for col, key in ((1, metric), (2, "alone")):
        for layer, part in table.groupby("layer"):
            fig.add_trace(go.Scatter(x=x[part.index], y=part[key], mode="markers+text", text=part["head"],
                                     textposition="top center", name=f"layer {layer + 1}", legendgroup=str(layer),
                                     showlegend=col == 1, marker=dict(size=11, color=PALETTE[layer % len(PALETTE)]),
                                     hovertemplate="head %{text}<br>pattern %{x:.2f}<br>" + name
                                                   + " %{y:.3f}<extra></extra>"), row=1, col=col)
        fig.add_hline(y=before, line_dash="dash", line_color="#888", row=1, col=col)
    fig.update_xaxes(title_text="pattern score" if has_score else "head", range=[-0.03, 1.06] if has_score else None)
    fig.update_yaxes(title_text=name, row=1, col=1)
    base_layout(fig, title, height=460)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0), margin=dict(b=110))
    return fig


__all__ = ["shown_token", "next_token_figure", "logit_lens_figure", "knockout_figure"]
