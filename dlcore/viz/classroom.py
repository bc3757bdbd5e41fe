"""The class's results for a teacher: best test accuracy per student, one bar group per dataset. A pure
builder: rows in (``dlcore.access.class_results``), ``go.Figure`` out."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from dlcore.viz._theme import PALETTE, base_layout


def class_results_figure(rows: Sequence[dict], title: str | None = "Best test accuracy per student and task",
                         labels: dict[str, str] | None = None) -> go.Figure:
    """Grouped bars: x the students, a bar per dataset, y the best test accuracy (rows without one are left
    out; a student with none has no bar).

    Args:
        rows: ``{"owner", "dataset", "best_test_accuracy", "runs"}`` each.
        labels: display text for owners and datasets (escaped by the caller); default: as they are.

    Example:
        >>> class_results_figure([{"owner": "ada", "dataset": "digits", "best_test_accuracy": 0.9, "runs": 2}])
    """
    labels = labels or {}
    rows = [r for r in rows if r.get("best_test_accuracy") is not None]
    owners = sorted({r["owner"] for r in rows})
    datasets = sorted({r["dataset"] for r in rows})
    fig = go.Figure()
    for i, ds in enumerate(datasets):
        mine = {r["owner"]: r for r in rows if r["dataset"] == ds}
        xs = [o for o in owners if o in mine]
        fig.add_bar(x=[labels.get(o, o or "the class") for o in xs], y=[mine[o]["best_test_accuracy"] for o in xs],
                    name=labels.get(ds, ds), marker_color=PALETTE[i % len(PALETTE)],
                    customdata=[mine[o]["runs"] for o in xs],
                    hovertemplate="%{x}: %{y:.1%} (best of %{customdata} runs)<extra>%{fullData.name}</extra>")
    base_layout(fig, title)
    fig.update_layout(barmode="group", yaxis=dict(title="best test accuracy", tickformat=".0%", range=[0, 1]),
                      xaxis_title="student", legend_title_text="dataset",
                      legend=dict(xanchor="right", x=1))  # on top, right: clear of the left-aligned title
    return fig
