"""Conv kernels, feature maps and activation statistics against direct computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dlcore.inspect as ins


def test_conv_layers_and_kernels_are_the_weights(cnn):
    names = [n for n, _ in ins.conv_layers(cnn)]
    assert names == ["features.0.0", "features.1.0"]
    w = ins.kernels(cnn, "features.1.0")
    assert w.shape == (6, 4, 3, 3)
    np.testing.assert_array_equal(w, cnn.features[1][0].weight.detach().numpy())
    with pytest.raises(KeyError, match="features.0.0"):
        ins.kernels(cnn, "nope")


def test_feature_maps_match_a_direct_forward(cnn, images):
    x = images[0]
    maps = ins.feature_maps(cnn, x.numpy())
    assert list(maps) == ["features.0.0", "features.0.1", "features.0.2", "features.1.0", "features.1.1"]
    cfg = cnn.config
    conv1 = cnn.features[0][0]
    expected = F.conv2d((x[None] - cfg.input_mean) / cfg.input_std, conv1.weight, conv1.bias)[0]
    np.testing.assert_allclose(maps["features.0.0"], expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps["features.0.1"], np.maximum(maps["features.0.0"], 0), rtol=1e-6)
    assert maps["features.0.2"].shape == (4, 3, 3)
    assert ins.hook_count(cnn) == 0
    only = ins.feature_maps(cnn, x, layers=["features.1.1"])
    assert list(only) == ["features.1.1"]


def test_activation_stats_counts_zeros_and_dead_units(cnn, images):
    rows = ins.activation_stats(cnn, images)
    by = {r["layer"]: r for r in rows}
    with torch.no_grad():
        cfg = cnn.config
        relu = cnn.features[0][:2]((images - cfg.input_mean) / cfg.input_std)
    assert by["features.0.1"]["zero_fraction"] == pytest.approx(float((relu == 0).float().mean()))
    dead = int(((relu != 0).sum(dim=(0, 2, 3)) == 0).sum())
    assert by["features.0.1"]["dead_units"] == dead
    assert by["features.0.1"]["units"] == 4
    assert by["head.3"]["shape"] == (10,)
    assert ins.hook_count(cnn) == 0


def test_vit_patch_embedding_counts_as_a_filter_layer(vit, images):
    assert [n for n, _ in ins.conv_layers(vit)] == ["patch"]
    maps = ins.feature_maps(vit, images[0])
    assert maps["patch"].shape == (16, 2, 2)


def test_capture_hooks_are_removed_when_the_model_raises(cnn, images, monkeypatch):
    def boom(x):
        raise RuntimeError("boom")

    monkeypatch.setattr(cnn.features[1][0], "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        ins.feature_maps(cnn, images[0])
    with pytest.raises(RuntimeError, match="boom"):
        ins.activation_stats(cnn, images)
    with pytest.raises(RuntimeError, match="boom"):
        ins.penultimate(cnn, images)
    assert ins.hook_count(cnn) == 0
