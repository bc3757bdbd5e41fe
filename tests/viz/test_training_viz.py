"""Training-curve figures: what they draw from run-store rows, and the presentation enlargement."""
from __future__ import annotations

import pandas as pd
import pytest
import plotly.graph_objects as go

from dlcore.viz import comparable_columns, compare_curves, for_presentation, training_curves

STEPS = [{"step": s, "epoch": s / 10, "loss": 2.0 / s} for s in range(1, 21)]
EPOCHS = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "train_accuracy": 0.7, "val_accuracy": 0.75},
          {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "train_accuracy": 0.85, "val_accuracy": 0.8}]


def _by_name(fig: go.Figure) -> dict:
    return {t.name: t for t in fig.data}


def test_training_curves_draws_step_and_epoch_rows_in_two_panels():
    fig = training_curves(STEPS, EPOCHS, "accuracy", uirevision="run-1")
    traces = _by_name(fig)
    assert set(traces) == {"train loss (per step)", "train loss (epoch)", "val loss (epoch)", "train accuracy",
                           "val accuracy"}
    assert list(traces["train loss (per step)"].y) == [row["loss"] for row in STEPS]
    assert list(traces["val accuracy"].y) == [0.75, 0.8]
    assert traces["val accuracy"].xaxis == "x2" and traces["val loss (epoch)"].xaxis == "x"
    assert fig.layout.yaxis2.tickformat == ".1~%"  # accuracy as a percentage, 95.5% not 96%
    assert fig.layout.uirevision == "run-1"  # zoom survives live updates
    assert fig.layout.xaxis.dtick == 1  # whole epochs on the axis


def test_training_curves_regression_metric_and_dataframe_input():
    epochs = pd.DataFrame([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "val_mae": 3.5}])
    fig = training_curves(pd.DataFrame(STEPS), epochs, "mae")
    assert "val mean absolute error" in _by_name(fig)
    assert fig.layout.yaxis2.tickformat is None
    assert fig.layout.annotations[1].text == "Mean absolute error"  # the panel title


def test_training_curves_before_any_row_says_it_is_waiting():
    fig = training_curves([], [], "accuracy")
    assert len(fig.data) == 0
    assert any("Waiting" in a.text for a in fig.layout.annotations)


def test_compare_curves_one_line_per_run_and_names_runs_without_the_column():
    runs = {"a": EPOCHS, "b": [{"epoch": 1, "train_loss": 0.3}], "c": EPOCHS[:1]}
    fig = compare_curves(runs, "val_accuracy", title="val accuracy")
    assert [t.name for t in fig.data] == ["a", "c"]
    assert list(fig.data[0].y) == [0.75, 0.8]
    assert any("b" in a.text and "val_accuracy" in a.text for a in fig.layout.annotations)
    assert fig.layout.yaxis.tickformat == ".1~%"
    assert fig.layout.yaxis.range == pytest.approx((0.72, 0.81))  # snug around 75%..80%


def test_compare_curves_with_nothing_to_show_explains_why():
    fig = compare_curves({"a": []}, "val_accuracy")
    assert not fig.data
    assert any("Nothing to compare" in a.text for a in fig.layout.annotations)


def test_comparable_columns_puts_validation_metrics_first():
    assert comparable_columns([EPOCHS]) == ["val_accuracy", "val_loss", "train_accuracy", "train_loss"]


def test_for_presentation_enlarges_a_copy():
    fig = training_curves(STEPS, EPOCHS, "accuracy", title="Run")
    big = for_presentation(fig)
    assert big.layout.font.size >= 24
    assert big.layout.title.font.size > fig.layout.title.font.size
    assert min(a.font.size for a in big.layout.annotations) >= 19
    assert all(t.line.width >= 3 for t in big.data)
    assert big.layout.height > fig.layout.height
    assert fig.layout.font.size == 13  # the original is untouched


def test_training_curves_span_the_planned_epochs_while_training():
    fig = training_curves(STEPS[:3], [], "accuracy", total_epochs=5)
    assert tuple(fig.layout.xaxis.range) == (0, 5 * 1.02) and fig.layout.xaxis.dtick == 1
    assert any("after the first epoch" in a.text for a in fig.layout.annotations)
