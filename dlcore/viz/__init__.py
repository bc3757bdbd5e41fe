"""Figure builders: pure functions from numpy/pandas to ``plotly.graph_objects.Figure`` (no Streamlit).

Modules: :mod:`training` (curves, comparisons), :mod:`data` (sample grids, series, class balance),
:mod:`architecture` (model drawings), :mod:`evaluation` (confusion matrix, mistakes, forecasts),
:mod:`inspect` (filters, feature maps, attention, recurrent states, embeddings), :mod:`attribution`
(explanation maps, deletion/insertion curves, the sanity check), :mod:`language` (next-token
distribution, logit lens, head knock-out), :mod:`snapshots` (training animated across epoch snapshots).
Every builder is exported here.
``for_presentation`` enlarges any of them for a projector.

Example:
    >>> from dlcore import viz
    >>> fig = viz.training_curves(store.metrics(rid, "step"), store.metrics(rid, "epoch"), "accuracy")
"""
from dlcore.viz import architecture, attribution, data, evaluation, inspect, language, snapshots, training
from dlcore.viz._theme import for_presentation
from dlcore.viz.architecture import architecture_diagram, layer_groups, params_chart
from dlcore.viz.classroom import class_results_figure
from dlcore.viz.compression import overfitting_figure, pareto_figure
from dlcore.viz.attribution import (Panel, attribution_figure, attribution_panels, curves_figure,
                                    probabilities_figure, sanity_figure, sanity_maps)
from dlcore.viz.data import (class_balance, decode_tokens, feature_ranges, image_grid, sequence_lines,
                             series_plot)
from dlcore.viz.evaluation import confusion_figure, forecast_figure, mistakes_gallery, per_class_figure
from dlcore.viz.inspect import (activation_stats_figure, attention_heads, attention_matrix, embedding_scatter,
                                feature_map_grid, gates_figure, image_figure, image_overlay, kernel_grid,
                                pattern_scores_figure, trajectory_figure, vit_rollout_overlay)
from dlcore.viz.language import knockout_figure, logit_lens_figure, next_token_figure, shown_token
from dlcore.viz.snapshots import filters_animation, heads_animation, map_animation
from dlcore.viz.training import comparable_columns, compare_curves, metric_title, training_curves

__all__ = [
    "architecture", "attribution", "data", "evaluation", "inspect", "language", "snapshots", "training",
    "for_presentation",
    # architecture
    "architecture_diagram", "layer_groups", "params_chart",
    # attribution
    "Panel", "attribution_panels", "attribution_figure", "curves_figure", "sanity_figure", "sanity_maps",
    "probabilities_figure",
    # data
    "class_balance", "decode_tokens", "feature_ranges", "image_grid", "sequence_lines", "series_plot",
    # evaluation
    "confusion_figure", "forecast_figure", "mistakes_gallery", "per_class_figure",
    # inspect
    "kernel_grid", "feature_map_grid", "activation_stats_figure", "attention_heads", "attention_matrix",
    "pattern_scores_figure", "image_figure", "image_overlay", "vit_rollout_overlay", "trajectory_figure",
    "gates_figure", "embedding_scatter",
    # language
    "next_token_figure", "logit_lens_figure", "knockout_figure", "shown_token",
    # snapshots (training as an animation)
    "filters_animation", "heads_animation", "map_animation",
    # training
    "comparable_columns", "compare_curves", "metric_title", "training_curves",
    # compression
    "overfitting_figure", "pareto_figure",
    # classroom
    "class_results_figure",
]
