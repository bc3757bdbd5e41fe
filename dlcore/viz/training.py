"""Training curves: one run's loss and metric as it trains, and several runs compared on one chart.

Inputs are the run store's metric rows (``RunStore().metrics(run_id, "step" | "epoch")``) as lists of
dicts or DataFrames; the x axis is the (fractional) epoch so step and epoch rows line up.

Example:
    >>> fig = training_curves(store.metrics(rid, "step"), store.metrics(rid, "epoch"), "accuracy")
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlcore.viz._theme import METRIC_TITLES, PALETTE, SPLIT_COLORS, base_layout


def _frame(rows) -> pd.DataFrame:
    if rows is None:
        return pd.DataFrame()
    return rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def metric_title(metric: str) -> str:
    """'token_accuracy' -> 'Token accuracy' (unknown names are prettified)."""
    return METRIC_TITLES.get(metric, metric.replace("_", " ").capitalize())


def _whole_epochs(fig: go.Figure, *frames: pd.DataFrame) -> None:
    """Tick every epoch when there are few (no '1.2 epochs' ticks)."""
    last = max([float(f["epoch"].max()) for f in frames if not f.empty and "epoch" in f] or [0])
    if 0 < last <= 20:
        fig.update_xaxes(dtick=1)


def _is_rate(metric: str) -> bool:
    return metric in ("accuracy", "token_accuracy")


def training_curves(steps, epochs, metric: str = "accuracy", title: str | None = None,
                    uirevision: str | None = None, total_epochs: int | None = None,
                    overfit_epoch: int | None = None) -> go.Figure:
    """Loss (per logged step and per epoch, train and validation) beside the task's metric per epoch.

    Args:
        steps: rows with ``epoch`` and ``loss`` (one per ``log_every`` steps); may be empty.
        epochs: rows with ``epoch``, ``train_loss``, ``val_loss``, ``train_<metric>``, ``val_<metric>``.
        metric: the dataset's metric name (accuracy, token_accuracy, mae, perplexity).
        title: figure title.
        uirevision: keep the user's zoom across live updates of the same run (pass the run id).
        total_epochs: the run's planned epochs: the x axis spans them all, so the curve shows progress.
        overfit_epoch: the epoch after which the run overfits (``dlcore.detect_overfitting``): a dashed line
            there in the loss panel and the epochs after it shaded.

    Returns:
        A two-panel figure; an annotated empty figure while no rows exist yet.
    """
    s, e = _frame(steps), _frame(epochs)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", metric_title(metric)), horizontal_spacing=0.1)
    if not s.empty and "loss" in s:
        fig.add_trace(go.Scatter(x=s["epoch"], y=s["loss"], mode="lines", name="train loss (per step)",
                                 line=dict(color=SPLIT_COLORS["train"], width=1.5), opacity=0.45,
                                 hovertemplate="epoch %{x:.2f}<br>loss %{y:.4f}<extra></extra>"), 1, 1)
    for split, dash in (("train", "solid"), ("val", "solid")):
        col = f"{split}_loss"
        if not e.empty and col in e and e[col].notna().any():
            fig.add_trace(go.Scatter(x=e["epoch"], y=e[col], mode="lines+markers", name=f"{split} loss (epoch)",
                                     line=dict(color=SPLIT_COLORS[split], width=2.5, dash=dash),
                                     marker=dict(size=8),
                                     hovertemplate=f"epoch %{{x}}<br>{split} loss %{{y:.4f}}<extra></extra>"), 1, 1)
        mcol = f"{split}_{metric}"
        if not e.empty and mcol in e and e[mcol].notna().any():
            fmt = ".1%" if _is_rate(metric) else ".4g"
            fig.add_trace(go.Scatter(x=e["epoch"], y=e[mcol], mode="lines+markers",
                                     name=f"{split} {metric_title(metric).lower()}",
                                     line=dict(color=SPLIT_COLORS[split], width=2.5), marker=dict(size=8),
                                     hovertemplate=f"epoch %{{x}}<br>{split} %{{y:{fmt}}}<extra></extra>"), 1, 2)
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    if overfit_epoch is not None and not e.empty:
        last = float(e["epoch"].max())
        fig.add_vrect(x0=overfit_epoch, x1=max(last, overfit_epoch), fillcolor="#d62728", opacity=0.08,
                      line_width=0, row=1, col=1)
        fig.add_vline(x=overfit_epoch, line=dict(color="#d62728", dash="dash"), row=1, col=1)
        fig.add_annotation(x=overfit_epoch, y=1, xref="x", yref="y domain", text=f"overfits after epoch {overfit_epoch}",
                           showarrow=False, xanchor="left", yanchor="top", font=dict(color="#d62728"))
    _whole_epochs(fig, e, s, pd.DataFrame({"epoch": [total_epochs or 0]}))
    if total_epochs:
        fig.update_xaxes(range=[0, total_epochs * 1.02])
    if fig.data and not any(t.xaxis == "x2" for t in fig.data):
        # in paper coordinates at the centre of the second panel: "x2 domain" of a panel without traces is drawn
        # in the first one
        (x0, x1), (y0, y1) = fig.layout.xaxis2.domain, fig.layout.yaxis2.domain
        fig.add_annotation(text=f"{metric_title(metric)} appears<br>after the first epoch", x=(x0 + x1) / 2,
                           y=(y0 + y1) / 2, xref="paper", yref="paper", xanchor="center", yanchor="middle",
                           showarrow=False, font=dict(size=14, color="#666"))
    if _is_rate(metric):
        fig.update_yaxes(tickformat=".1~%", row=1, col=2)
    if not fig.data:
        fig.add_annotation(text="Waiting for the first training steps…", x=0.5, y=0.5, xref="paper", yref="paper",
                           showarrow=False, font=dict(size=16, color="#666"))
    base_layout(fig, title, height=400)
    # legend under the panels: above them it would cover the panel titles
    fig.update_layout(uirevision=uirevision, legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
                      margin=dict(b=90))
    return fig


def compare_curves(runs: Mapping[str, object], y: str, x: str = "epoch", title: str | None = None,
                   y_title: str | None = None) -> go.Figure:
    """One line per run of a metric column, for comparing runs on one chart.

    Args:
        runs: label -> metric rows (list of dicts or DataFrame) of that run.
        y: the column to plot (e.g. ``val_accuracy``, ``loss``, ``train_loss``).
        x: ``epoch`` or ``step``.
        title, y_title: figure and y-axis titles.

    Runs lacking the column are listed in an annotation rather than silently dropped.
    """
    fig = go.Figure()
    missing = []
    for i, (label, rows) in enumerate(runs.items()):
        df = _frame(rows)
        if df.empty or y not in df or x not in df or df[y].notna().sum() == 0:
            missing.append(label)
            continue
        df = df[df[y].notna()]
        fig.add_trace(go.Scatter(x=df[x], y=df[y], mode="lines+markers" if len(df) <= 50 else "lines", name=label,
                                 line=dict(color=PALETTE[i % len(PALETTE)], width=2.5), marker=dict(size=7),
                                 hovertemplate=f"{label}<br>{x} %{{x}}<br>{y} %{{y:.4g}}<extra></extra>"))
    metric = y.split("_", 1)[1] if y.startswith(("train_", "val_", "test_")) else y
    fig.update_xaxes(title_text=x)
    if x == "epoch":
        _whole_epochs(fig, *[_frame(r) for r in runs.values()])
    fig.update_yaxes(title_text=y_title or y.replace("_", " "))
    if _is_rate(metric) and fig.data:  # a snug range: 95% vs 97% must not look the same
        ys = [v for t in fig.data for v in t.y if v is not None]
        fig.update_yaxes(tickformat=".1~%", range=[max(0.0, min(ys) - 0.03), min(1.0, max(ys)) + 0.01])
    if missing:
        fig.add_annotation(text="no “%s” for: %s" % (y, ", ".join(missing)), x=0, y=-0.22, xref="paper",
                           yref="paper", showarrow=False, xanchor="left", font=dict(size=12, color="#888"))
    if not fig.data:
        fig.add_annotation(text="Nothing to compare yet: pick runs that have finished at least one epoch",
                           x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=15, color="#666"))
    base_layout(fig, title, height=420)
    return fig


def comparable_columns(epoch_rows: Sequence) -> list[str]:
    """The numeric per-epoch columns worth comparing (losses and metrics), best first."""
    cols: list[str] = []
    for rows in epoch_rows:
        df = _frame(rows)
        cols += [c for c in df.columns if c.startswith(("train_", "val_")) and c not in cols]
    return sorted(cols, key=lambda c: (not c.startswith("val_"), c.endswith("loss"), c))
