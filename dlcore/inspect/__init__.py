"""Look inside trained models: conv filters and feature maps, attention (capture + rollout), recurrent hidden
states and gates, penultimate-layer embeddings. Every function takes numpy (or tensors) and returns numpy;
hooks are always removed, and a per-model lock keeps concurrent Streamlit sessions from mixing captures.

Example:
    >>> from dlcore.inspect import record_attention, attention_rollout
    >>> pred, attn = record_attention(model, tokens)   # attn: (layers, heads, T, T)
    >>> attention_rollout(attn).shape
    (8, 8)
"""
from dlcore.inspect._hooks import capture_inputs, capture_outputs, hook_count, model_lock
from dlcore.inspect.ablation import Knockout, ablate, head_knockout, heads_ablated, parse_heads, run_knockout
from dlcore.inspect.attention import (Recorder, attention_rollout, cls_rollout_grid, expected_attention,
                                      has_attention, pattern_scores, position_labels, record_attention,
                                      token_labels, upsample_grid)
from dlcore.inspect.embeddings import output_layer, penultimate, project
from dlcore.inspect.lens import LogitLens, logit_lens
from dlcore.inspect.filters import activation_stats, conv_layers, feature_maps, kernels
from dlcore.inspect.rnn import GATE_NAMES, GATES, RNNStates, hidden_trajectories, pca_trajectories, recompute, rnn_states
from dlcore.inspect.samples import (VIEWS, describe, example, example_batch, image_from_bytes, image_input,
                                    label_text, misclassified_indices, predict_proba, predictions, split_size,
                                    unsuitable)
from dlcore.inspect.typed import EditComparison, TypedResult, compare_texts, explain_text

__all__ = [
    "capture_inputs", "capture_outputs", "hook_count", "model_lock",
    "Recorder", "record_attention", "attention_rollout", "cls_rollout_grid", "upsample_grid", "has_attention",
    "expected_attention", "pattern_scores", "token_labels", "position_labels",
    "output_layer", "penultimate", "project",
    "example", "example_batch", "split_size", "predict_proba", "predictions", "misclassified_indices",
    "image_input", "image_from_bytes", "describe", "label_text", "VIEWS", "unsuitable",
    "conv_layers", "kernels", "feature_maps", "activation_stats",
    "Knockout", "ablate", "head_knockout", "run_knockout", "heads_ablated", "parse_heads", "LogitLens", "logit_lens",
    "TypedResult", "EditComparison", "explain_text", "compare_texts",
    "GATES", "GATE_NAMES", "RNNStates", "rnn_states", "recompute", "hidden_trajectories", "pca_trajectories",
]
