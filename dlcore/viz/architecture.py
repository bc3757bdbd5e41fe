"""Drawings of a model: its layers as a flow of boxes, and where its parameters are.

Input is ``summarize(config).layers`` (dicts with name, type, output_shape, params): leaf modules in call
order. Layers are grouped into blocks by their name (``features.0.*`` is one conv block, ``blocks.3.*``
one transformer block) and parameter-free layers (activations, dropout) join the block before them.

Example:
    >>> s = summarize(for_data(get_preset("seed-cnn"), dataset_info("mnist5k")))
    >>> fig = architecture_diagram(s.layers, input_shape=(1, 28, 28))
"""
from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go

from dlcore.viz._theme import base_layout

SHORT = {"Conv2d": "Conv", "Conv1d": "Conv1d", "MaxPool2d": "Pool", "AvgPool2d": "AvgPool", "Linear": "Dense",
         "BatchNorm2d": "BatchNorm", "BatchNorm1d": "BatchNorm", "LayerNorm": "LayerNorm", "Embedding": "Embed",
         "Flatten": "Flatten", "AdaptiveAvgPool2d": "GlobalPool", "MultiheadAttention": "Attention"}
PASSIVE = {"ReLU", "GELU", "Tanh", "SiLU", "Sigmoid", "LeakyReLU", "ELU", "Dropout", "Identity", "Softmax"}
CATEGORY_COLORS = {"input": "#f2f2f2", "conv": "#9ecae9", "dense": "#ffbf79", "recurrent": "#d4a6c8",
                   "attention": "#88d27a", "embedding": "#83bcb6", "norm": "#d6d6d6", "reshape": "#e7e1d8"}
CATEGORY_TITLES = {"conv": "Conv block", "attention": "Transformer block", "recurrent": "Recurrent layer",
                   "dense": "Dense block", "embedding": "Embedding", "norm": "Norm", "reshape": "Reshape"}


def _group_key(name: str) -> str:
    parts = name.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: i + 1])
    return name


def _category(types: Sequence[str], names: Sequence[str]) -> str:
    if any("attn" in n.split(".") or t == "MultiheadAttention" for t, n in zip(types, names)):
        return "attention"
    if any(t.startswith("Conv") for t in types):
        return "conv"
    if any(t in ("LSTM", "GRU", "RNN") for t in types):
        return "recurrent"
    if any(t == "Embedding" for t in types):
        return "embedding"
    if any(t == "Linear" for t in types):
        return "dense"
    if any("Norm" in t for t in types):
        return "norm"
    return "reshape"


def human(n: int | float) -> str:
    """12345 -> '12.3K', 1.5e6 -> '1.5M' (parameter counts, FLOPs)."""
    n = float(n)
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}".replace(".0", "")
    return f"{int(n)}"


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in shape) if shape else "scalar"


def layer_groups(layers: Sequence[dict]) -> list[dict]:
    """Blocks of consecutive layers: name, layers, types, output_shape (of the last), params, category."""
    groups: list[dict] = []
    for layer in layers:
        key = _group_key(layer["name"])
        if groups and groups[-1]["name"] == key:
            groups[-1]["layers"].append(layer)
        elif groups and layer["type"] in PASSIVE and layer["params"] == 0:
            groups[-1]["layers"].append(layer)  # an activation belongs to the layer it follows
        else:
            groups.append({"name": key, "layers": [layer]})
    counters: dict[str, int] = {}
    for g in groups:
        types = [lay["type"] for lay in g["layers"]]
        g["types"] = types
        g["output_shape"] = tuple(g["layers"][-1]["output_shape"])
        g["params"] = int(sum(lay["params"] for lay in g["layers"]))
        g["category"] = _category(types, [lay["name"] for lay in g["layers"]])
        main = [t for t in types if t not in PASSIVE]
        if g["name"].split(".")[-1].isdigit() and g["category"] in ("conv", "attention"):
            counters[g["category"]] = counters.get(g["category"], 0) + 1
            g["title"] = f"{CATEGORY_TITLES[g['category']]} {counters[g['category']]}"
        else:
            g["title"] = SHORT.get(main[0], main[0]) if main else SHORT.get(types[0], types[0])
        seen = []
        for t in types:
            s = SHORT.get(t, t)
            if not seen or seen[-1] != s:
                seen.append(s)
        stacked = max((lay.get("num_layers", 1) for lay in g["layers"]), default=1)
        if g["category"] == "attention":  # one block of n_layers: what is inside it, not a count of its modules
            parts = {n.split(".")[2] if n.count(".") >= 2 else "" for n in (lay["name"] for lay in g["layers"])}
            g["detail"] = "·".join(w for k, w in (("attn", "attention"), ("mlp", "MLP")) if k in parts) or "·".join(seen[:3])
        elif stacked > 1:  # a stacked recurrent module: its own layer count (num_layers)
            g["detail"] = f"{stacked} layers"
        else:
            g["detail"] = "·".join(seen) if len(seen) <= 3 else "·".join(seen[:3]) + "…"
    return groups


def architecture_diagram(layers: Sequence[dict], input_shape: Sequence[int] | None = None,
                         title: str | None = None, per_row: int = 7) -> go.Figure:
    """The model as boxes in reading order (wrapping onto new rows), coloured by kind of block.

    Args:
        layers: ``ModelSummary.layers``.
        input_shape: shape of one example, drawn as the first box.
        title: figure title.
        per_row: at most this many boxes per row; rows are balanced (9 boxes: 5 + 4, not 7 + 2).

    Each box shows the block's kind, its layers, the output shape and its parameters; hovering lists
    every layer.
    """
    groups = layer_groups(layers)
    boxes = []
    if input_shape is not None:
        boxes.append({"title": "Input", "detail": "", "output_shape": tuple(input_shape), "params": None,
                      "category": "input", "hover": f"input {shape_text(input_shape)}"})
    for g in groups:
        hover = "<br>".join(f"{lay['name']}: {lay['type']} → {shape_text(lay['output_shape'])}, "
                            f"{lay['params']:,} params" for lay in g["layers"])
        boxes.append({**g, "hover": hover})
    fig = go.Figure()
    if not boxes:
        fig.add_annotation(text="no layers", x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
        return base_layout(fig, title, height=200)
    rows = math.ceil(len(boxes) / max(1, per_row))
    per_row = math.ceil(len(boxes) / rows)
    w, h, gap, row_h = 1.0, 0.9, 0.42, 1.55
    xs, ys, texts, hovers = [], [], [], []
    for i, b in enumerate(boxes):
        r, c = divmod(i, per_row)
        x0, y0 = c * (w + gap), -r * row_h
        fig.add_shape(type="rect", x0=x0, x1=x0 + w, y0=y0, y1=y0 + h, fillcolor=CATEGORY_COLORS[b["category"]],
                      line=dict(color="#555", width=1.2), layer="below")
        lines = [f"<b>{b['title']}</b>"]
        if b["detail"] and b["detail"] != b["title"]:
            lines.append(b["detail"])
        lines.append(shape_text(b["output_shape"]))
        if b["params"] is not None:
            lines.append(f"{human(b['params'])} params" if b["params"] else "no params")
        xs.append(x0 + w / 2)
        ys.append(y0 + h / 2)
        texts.append("<br>".join(lines))
        hovers.append(b["hover"])
        if i + 1 < len(boxes):  # arrow to the next box: right on the same row, an elbow to the next row
            if c + 1 < per_row:
                fig.add_annotation(x=x0 + w + gap, y=y0 + h / 2, ax=x0 + w, ay=y0 + h / 2, xref="x", yref="y",
                                   axref="x", ayref="y", showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=1.5,
                                   arrowcolor="#555", text="")
            else:
                mid = y0 - (row_h - h) / 2
                fig.add_shape(type="path", path=f"M {x0 + w / 2} {y0} L {x0 + w / 2} {mid} L {w / 2} {mid}",
                              line=dict(color="#555", width=1.5))
                fig.add_annotation(x=w / 2, y=y0 - row_h + h, ax=w / 2, ay=mid, xref="x", yref="y", axref="x",
                                   ayref="y", showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=1.5,
                                   arrowcolor="#555", text="")
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="text", text=texts, hovertext=hovers, hoverinfo="text",
                             textfont=dict(size=12, color="#222"), showlegend=False))
    fig.update_xaxes(visible=False, range=[-0.15, per_row * (w + gap) - gap + 0.15])
    fig.update_yaxes(visible=False, range=[-(rows - 1) * row_h - 0.15, h + 0.15])
    base_layout(fig, title, height=int(rows * 175 + (80 if title else 40)))
    fig.update_layout(margin=dict(l=10, r=10, b=10), showlegend=False, dragmode=False)
    return fig


def params_chart(layers: Sequence[dict], title: str | None = None) -> go.Figure:
    """Parameters per block as horizontal bars: where a model's size comes from."""
    groups = [g for g in layer_groups(layers) if g["params"] > 0]
    total = sum(g["params"] for g in groups) or 1
    labels = [f"{g['title']} ({g['name']})" for g in groups]
    fig = go.Figure(go.Bar(x=[g["params"] for g in groups], y=labels, orientation="h",
                           marker_color=[CATEGORY_COLORS[g["category"]] for g in groups],
                           marker_line=dict(color="#555", width=1),
                           text=[f"{g['params'] / total:.0%}" for g in groups], textposition="auto",
                           hovertemplate="%{y}<br>%{x:,} parameters<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="parameters")
    return base_layout(fig, title, height=max(220, 28 * len(groups) + 110))
