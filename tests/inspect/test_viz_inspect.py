"""Figure builders of dlcore.viz.inspect: pure numpy → plotly, with the traces and layout each view needs."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from dlcore.viz import inspect as vi


def test_kernel_grid_single_channel_and_rgb():
    w = np.random.default_rng(0).normal(size=(10, 3, 3))
    fig = vi.kernel_grid(w, cols=4)
    (hm,) = fig.data
    assert isinstance(hm, go.Heatmap) and hm.zmid == 0 and hm.zmax == -hm.zmin
    assert np.asarray(hm.z).shape == (3 * 4 - 1, 4 * 4 - 1)  # 3 rows × 4 cols of 3×3 with 1-pixel gaps
    assert len(fig.layout.annotations) == 10
    rgb = vi.kernel_grid(np.random.default_rng(0).normal(size=(4, 3, 5, 5)))
    assert isinstance(rgb.data[0], go.Image)
    with pytest.raises(ValueError, match="weights must be"):
        vi.kernel_grid(np.zeros((2, 2, 2, 3, 3)))


def test_feature_maps_keep_raw_values_for_hover():
    maps = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    fig = vi.feature_map_grid(maps, cols=2)
    z, raw = np.asarray(fig.data[0].z, dtype=float), np.asarray(fig.data[0].customdata, dtype=float)
    assert np.nanmax(z) == 1.0 and np.nanmax(raw) == 17.0


def test_activation_stats_figure():
    rows = [{"layer": "a", "type": "ReLU", "mean": 0.5, "std": 0.1, "min": 0, "max": 2, "zero_fraction": 0.4,
             "dead_units": 1, "units": 8}]
    fig = vi.activation_stats_figure(rows)
    assert [t.type for t in fig.data] == ["bar", "scatter"]
    with pytest.raises(ValueError):
        vi.activation_stats_figure([])


def test_attention_figures():
    attn = np.full((2, 3, 4, 4), 0.25)
    labels = ["a", "b", "c", "d"]
    fig = vi.attention_heads(attn, labels, highlight={(1, 2): "90%"})
    assert len(fig.data) == 6
    assert any("layer 2 · head 3<br>90%" in a.text for a in fig.layout.annotations)
    assert len(vi.attention_heads(attn, labels, layers=[1]).data) == 3
    m = vi.attention_matrix(np.eye(4), labels)
    assert list(m.data[0].x) == labels
    s = vi.pattern_scores_figure(np.array([[0.1, 0.9]]), chance=0.25)
    assert "chance 0.25" in s.layout.title.text


def test_vit_overlay_upsamples_patches_onto_the_image():
    img = np.zeros((8, 8))
    fig = vi.vit_rollout_overlay(img, np.array([[0.0, 1.0], [0.5, 0.25]]))
    heat = np.asarray(fig.data[1].z)
    assert heat.shape == (8, 8) and heat[0, 4] == 1.0 and heat[7, 0] == 0.5 and heat[0, 0] == 0.0
    assert len(fig.layout.shapes) == 2  # one vertical and one horizontal patch border


def test_trajectories_gates_and_embeddings():
    pts = np.random.default_rng(0).normal(size=(3, 5, 2))
    fig = vi.trajectory_figure(pts, labels=np.array([0, 1, 0]), class_names=["x", "y"], explained=[0.6, 0.2])
    assert len(fig.data) == 3 and sum(t.showlegend for t in fig.data) == 2
    assert "60%" in fig.layout.xaxis.title.text
    states = {"i": np.random.rand(5, 4), "h": np.random.rand(5, 4) - 0.5}
    g = vi.gates_figure(states, {"i": "input gate"}, ["i", "h", "missing"])
    assert len(g.data) == 2 and g.data[0].zmin == 0 and g.data[1].zmin < 0
    xy = np.random.default_rng(0).normal(size=(6, 2))
    e = vi.embedding_scatter(xy, np.array([0, 0, 1, 1, 2, 2]), ["a", "b", "c"], predicted=np.array([0, 1, 1, 1, 2, 0]))
    assert len(e.data) == 3
    assert list(e.data[0].marker.symbol) == ["circle", "x"] and list(e.data[0].customdata) == [0, 1]
    assert vi.image_figure(np.zeros((1, 8, 8))).data[0].type == "heatmap"
