"""Figure builders: pure functions from numpy/pandas to ``plotly.graph_objects.Figure`` (no Streamlit).

Modules: :mod:`training` (curves, comparisons), :mod:`data` (sample grids, series, class balance),
:mod:`architecture` (model drawings), :mod:`evaluation` (confusion matrix, mistakes, forecasts).
``for_presentation`` enlarges any of them for a projector.

Example:
    >>> from dlcore import viz
    >>> fig = viz.training_curves(store.metrics(rid, "step"), store.metrics(rid, "epoch"), "accuracy")
"""
from dlcore.viz import architecture, data, evaluation, training
from dlcore.viz._theme import for_presentation
from dlcore.viz.architecture import architecture_diagram, layer_groups, params_chart
from dlcore.viz.data import (class_balance, decode_tokens, feature_ranges, image_grid, sequence_lines,
                             series_plot)
from dlcore.viz.evaluation import confusion_figure, forecast_figure, mistakes_gallery, per_class_figure
from dlcore.viz.training import comparable_columns, compare_curves, metric_title, training_curves

__all__ = ["architecture", "data", "evaluation", "training", "for_presentation", "architecture_diagram",
           "layer_groups", "params_chart", "class_balance", "decode_tokens", "feature_ranges", "image_grid",
           "sequence_lines", "series_plot", "confusion_figure", "forecast_figure", "mistakes_gallery",
           "per_class_figure", "comparable_columns", "compare_curves", "metric_title", "training_curves"]
