"""Figures for explanations: attribution overlays for every input kind, side-by-side panels with faithfulness
captions, deletion/insertion curves, the sanity check, and class probabilities.

Pure functions: numpy in, ``plotly.graph_objects.Figure`` out, no Streamlit.

Example:
    >>> fig = attribution_panels([Panel("Integrated Gradients", img, e.map, "image", caption="deletion AUC 0.19")])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlcore.viz._theme import PALETTE, base_layout

SIGNED = [[0.0, "rgba(33,102,172,0.95)"], [0.35, "rgba(103,169,207,0.55)"], [0.5, "rgba(255,255,255,0)"],
          [0.65, "rgba(239,138,98,0.55)"], [1.0, "rgba(178,24,43,0.95)"]]
UNSIGNED = [[0.0, "rgba(178,24,43,0)"], [0.25, "rgba(239,138,98,0.4)"], [1.0, "rgba(178,24,43,0.95)"]]


@dataclass
class Panel:
    """One explanation to draw: the input as displayed, its attribution map, and how to read them.

    Attributes:
        kind: "image" (input (H, W) or (H, W, 3), map (H, W)), "tokens" (map (T,)), "sequence" (input and map
            (T, F)) or "tabular" (map (F,)).
        labels: token/feature labels (tokens, tabular) or step labels (sequence).
        caption: text under the panel (faithfulness scores).
    """
    title: str
    input: np.ndarray
    map: np.ndarray
    kind: str
    labels: Sequence[str] | None = None
    caption: str = ""


def _range(m: np.ndarray) -> tuple[float, float, list]:
    """Colour range and scale: symmetric for signed maps, from 0 for unsigned ones. The top is the 99th
    percentile of |m| (not the maximum), so that one extreme pixel does not wash out the rest of the map."""
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    a = np.abs(m).ravel()
    top = float(np.percentile(a, 99)) if a.size >= 100 else float(a.max())
    top = top or float(a.max()) or 1.0
    if m.min() >= 0:
        return 0.0, top, UNSIGNED
    return -top, top, SIGNED


def _add_panel(fig: go.Figure, p: Panel, row: int, col: int, showscale: bool) -> None:
    zmin, zmax, scale = _range(p.map)
    m = np.asarray(p.map, dtype=np.float64)
    cb = dict(title="attribution", thickness=10, len=0.6)
    hover = "%{z:.4f}<extra></extra>"
    if p.kind == "image":
        img = np.asarray(p.input, dtype=np.float64)
        if img.ndim == 3:
            lo, hi = img.min(), img.max()
            rgb = (img - lo) / (hi - lo if hi > lo else 1.0) * 255
            fig.add_trace(go.Image(z=rgb, hoverinfo="skip"), row=row, col=col)
        else:
            # faint ink (light grey) so that the attribution colours read clearly on top
            fig.add_trace(go.Heatmap(z=img, colorscale="Greys", showscale=False, hoverinfo="skip",
                                     zmin=float(img.min()), zmax=float(img.max()) * 2.5 if img.max() > 0 else 1.0),
                          row=row, col=col)
        fig.add_trace(go.Heatmap(z=m, colorscale=scale, zmin=zmin, zmax=zmax, showscale=showscale, colorbar=cb,
                                 hovertemplate="row %{y}, col %{x}<br>" + hover), row=row, col=col)
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, row=row, col=col)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed", row=row, col=col)
    elif p.kind in ("tokens", "tabular"):
        labels = list(p.labels) if p.labels is not None else [str(i) for i in range(len(m))]
        colors = [PALETTE[3] if v > 0 else PALETTE[0] for v in m]
        if p.kind == "tokens":
            fig.add_trace(go.Bar(x=labels, y=m, marker_color=colors, showlegend=False,
                                 hovertemplate="%{x}<br>" + "%{y:.4f}<extra></extra>"), row=row, col=col)
            fig.update_xaxes(type="category", tickangle=-60, row=row, col=col)
        else:
            fig.add_trace(go.Bar(y=labels, x=m, orientation="h", marker_color=colors, showlegend=False,
                                 hovertemplate="%{y}<br>" + "%{x:.4f}<extra></extra>"), row=row, col=col)
            fig.update_yaxes(type="category", autorange="reversed", row=row, col=col)
    else:  # sequence (T, F)
        seq = np.asarray(p.input, dtype=np.float64)
        if seq.ndim == 2 and seq.shape[1] == 1:  # one series: the line, coloured by attribution
            steps = np.arange(len(seq))
            fig.add_trace(go.Scatter(x=steps, y=seq[:, 0], mode="lines", line=dict(color="#999999"), showlegend=False,
                                     hoverinfo="skip"), row=row, col=col)
            fig.add_trace(go.Scatter(x=steps, y=seq[:, 0], mode="markers", showlegend=False,
                                     marker=dict(size=10, color=m[:, 0], colorscale=scale, cmin=zmin, cmax=zmax,
                                                 showscale=showscale, colorbar=cb, line=dict(width=0.5, color="#555")),
                                     customdata=m[:, 0], hovertemplate="step %{x}<br>value %{y:.3f}<br>"
                                                                       "attribution %{customdata:.4f}<extra></extra>"),
                          row=row, col=col)
            fig.update_xaxes(title_text="time step", row=row, col=col)
        else:
            fig.add_trace(go.Heatmap(z=seq, colorscale="Greys", showscale=False, hoverinfo="skip",
                                     zmin=float(seq.min()), zmax=float(seq.max()) * 1.6 if seq.max() > 0 else 1.0),
                          row=row, col=col)
            fig.add_trace(go.Heatmap(z=m, colorscale=scale, zmin=zmin, zmax=zmax, showscale=showscale, colorbar=cb,
                                     hovertemplate="step %{y}, feature %{x}<br>" + hover), row=row, col=col)
            fig.update_yaxes(autorange="reversed", title_text="time step", row=row, col=col)


def attribution_panels(panels: Sequence[Panel], title: str | None = None, height: int = 420) -> go.Figure:
    """Up to four explanations side by side in one figure (one PNG/HTML), each with its caption below."""
    panels = list(panels)
    if not panels:
        raise ValueError("no explanations to draw")
    n = len(panels)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[p.title for p in panels], horizontal_spacing=0.06)
    for i, p in enumerate(panels, start=1):
        _add_panel(fig, p, 1, i, showscale=False)
        if p.kind == "image":
            fig.update_yaxes(scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i)
    for i, p in enumerate(panels, start=1):
        if p.caption:
            _caption_under(fig, p.caption, row=1, col=i)
    base_layout(fig, title, height=height)
    fig.update_layout(margin=dict(b=30, t=80), showlegend=False)
    return fig


def _caption_under(fig: go.Figure, caption: str, row: int = 1, col: int = 1) -> None:
    """A panel's caption as its x-axis title: Plotly puts that under the tick labels (rotated token labels,
    a "time step" title) and grows the bottom margin to fit it, at any font size (presentation mode)."""
    axis = fig.layout[f"xaxis{col if col > 1 else ''}"]
    above = axis.title.text
    fig.update_xaxes(title_text=f"{above}<br>{caption}" if above else caption, title_font=dict(size=11),
                     title_standoff=8, automargin=True, row=row, col=col)


def attribution_figure(panel: Panel, height: int = 430) -> go.Figure:
    """One explanation with its colour bar."""
    fig = make_subplots(rows=1, cols=1)
    _add_panel(fig, panel, 1, 1, showscale=True)
    if panel.kind == "image":
        fig.update_yaxes(scaleanchor="x")
    base_layout(fig, panel.title, height=height)
    if panel.caption:
        _caption_under(fig, panel.caption)
    return fig


def curves_figure(curves: dict[str, dict], ylabel: str = "probability of the explained class",
                  title: str | None = "Deletion and insertion") -> go.Figure:
    """Deletion (left) and insertion (right) curves per method, with a random ordering dashed.

    Args:
        curves: method title -> {"fractions", "deletion", "insertion", "random_deletion", "random_insertion",
            "deletion_auc", "insertion_auc"} (a :class:`dlcore.explain.Faithfulness` as dict).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Deletion: most important first (lower is better)",
                                                        "Insertion: most important first (higher is better)"])
    random_done = False
    for i, (name, c) in enumerate(curves.items()):
        color = PALETTE[i % len(PALETTE)]
        for col, key in ((1, "deletion"), (2, "insertion")):
            fig.add_trace(go.Scatter(x=c["fractions"], y=c[key], mode="lines", line=dict(color=color, width=2),
                                     name=f"{name} (AUC {c[key + '_auc']:.3f})" if col == 1 else name,
                                     legendgroup=name, showlegend=col == 1,
                                     hovertemplate=f"{name}<br>%{{x:.0%}} of features<br>%{{y:.3f}}<extra></extra>"),
                          row=1, col=col)
        if not random_done:
            for col, key in ((1, "random_deletion"), (2, "random_insertion")):
                fig.add_trace(go.Scatter(x=c["fractions"], y=c[key], mode="lines", name="random order",
                                         line=dict(color="#888888", dash="dash"), legendgroup="random",
                                         showlegend=col == 1), row=1, col=col)
            random_done = True
    fig.update_xaxes(title_text="share of features", tickformat=".0%")
    fig.update_yaxes(title_text=ylabel, row=1, col=1)
    base_layout(fig, title, height=460)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0), margin=dict(b=120))
    return fig


def sanity_figure(layers: Sequence[str], similarity: dict[str, Sequence[float]],
                  title: str | None = "Sanity check: cascading randomisation") -> go.Figure:
    """Spearman rank correlation of |attributions| with the trained model's, as layers are randomised from the
    output down. A method that passes falls towards 0; one that stays near 1 ignores what the model learned."""
    x = ["trained"] + [f"→ {name}" for name in layers]
    fig = go.Figure()
    for i, (name, sims) in enumerate(similarity.items()):
        fig.add_trace(go.Scatter(x=x, y=[1.0] + list(sims), mode="lines+markers", name=name,
                                 line=dict(color=PALETTE[i % len(PALETTE)], width=2),
                                 hovertemplate=f"{name}<br>%{{x}}<br>Spearman %{{y:.3f}}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#999999", dash="dot"))
    fig.update_xaxes(title="layers randomised (output side first)", type="category", tickangle=-30)
    fig.update_yaxes(title="rank correlation with trained", range=[-0.3, 1.05])
    return base_layout(fig, title, height=420)


def sanity_maps(input_: np.ndarray, original: np.ndarray, maps: Sequence[np.ndarray], layers: Sequence[str],
                kind: str, labels: Sequence[str] | None = None, title: str | None = None,
                similarity: Sequence[float] | None = None) -> go.Figure:
    """One method's map on the trained model, then after each randomisation step (thumbnails in one row)."""
    steps = [("trained", original)] + [(f"→ {n}", m) for n, m in zip(layers, maps)]
    panels = [Panel(t if similarity is None or i == 0 else f"{t} (ρ {similarity[i - 1]:.2f})", input_, m, kind, labels)
              for i, (t, m) in enumerate(steps)]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p.title for p in panels], horizontal_spacing=0.02)
    for i, p in enumerate(panels, start=1):
        _add_panel(fig, p, 1, i, showscale=False)
        if kind == "image":
            fig.update_yaxes(scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i)
    for ann in fig.layout.annotations:
        ann.font.size = 10
    base_layout(fig, title, height=260)
    fig.update_layout(showlegend=False)
    return fig


def probabilities_figure(probs: np.ndarray, class_names: Sequence[str], true: int | None = None,
                         title: str | None = "Prediction", top: int = 10) -> go.Figure:
    """Horizontal bars of the top class probabilities; the true class (if known) in green, others blue."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    order = np.argsort(-p)[:top]
    names = [class_names[i] if i < len(class_names) else str(i) for i in order]
    colors = [PALETTE[2] if true is not None and i == true else PALETTE[0] for i in order]
    fig = go.Figure(go.Bar(x=p[order], y=names, orientation="h", marker_color=colors,
                           text=[f"{v:.1%}" for v in p[order]], textposition="auto",
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(type="category", autorange="reversed")
    return base_layout(fig, title, height=max(220, 28 * len(order) + 110))
