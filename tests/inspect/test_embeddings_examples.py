"""Penultimate representations, projections, and the example/input helpers the pages use."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import dlcore
import dlcore.inspect as ins
from dlcore.data.base import Dataset
from tests.inspect.tiny import image_info


def test_penultimate_is_the_input_of_the_output_layer(cnn, images):
    feats, out = ins.penultimate(cnn, images)
    with torch.no_grad():
        cfg = cnn.config
        h = cnn.head[:-1](cnn.features((images - cfg.input_mean) / cfg.input_std))
    np.testing.assert_allclose(feats, h.numpy(), rtol=1e-5, atol=1e-6)
    assert out.shape == (5, 10) and ins.output_layer(cnn)[0] == "head.3"


def test_penultimate_of_a_per_step_model_is_averaged(encoder, tokens):
    feats, out = ins.penultimate(encoder, tokens)
    assert feats.shape == (4, 16) and out.shape == (4, 6, 10)


def test_projections():
    rng = np.random.default_rng(0)
    f = np.concatenate([rng.normal(0, 1, (15, 8)), rng.normal(6, 1, (15, 8))])
    xy = ins.project(f, "pca")
    assert xy.shape == (30, 2)
    assert abs(xy[:15, 0].mean() - xy[15:, 0].mean()) > 5  # the clusters separate along PC 1
    assert ins.project(f, "tsne").shape == (30, 2)
    with pytest.raises(ValueError, match="pca"):
        ins.project(f, "umap")


def tiny_dataset(model) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 1, 8, 8, generator=g)
    with torch.no_grad():
        pred = model(x)[0].argmax(-1)
    y = pred.clone()
    y[[1, 4]] = (pred[[1, 4]] + 1) % 10  # two deliberate mistakes
    return Dataset(image_info(), (x, y), (x[:2], y[:2]), (x, y))


def test_examples_predictions_and_mistakes(cnn):
    ds = tiny_dataset(cnn)
    x, y = ins.example(ds, 3)
    assert x.shape == (1, 8, 8) and isinstance(x, np.ndarray)
    assert ins.misclassified_indices(cnn, ds) == [1, 4]
    xs, ys = ins.example_batch(ds, [3, 1])
    assert xs.shape == (2, 1, 8, 8) and np.array_equal(xs[0], x) and ys.tolist() == [int(y), int(ds.test[1][1])]
    p = ins.predict_proba(cnn, x, ds.info)
    assert p.shape == (10,) and p.sum() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(IndexError, match="0..11"):
        ins.example(ds, 12)
    assert ins.label_text(ds.info, np.int64(3)) == "3"


def test_a_drawn_digit_becomes_a_centred_mnist_like_input():
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[20:120, 30:60] = (255, 255, 255, 255)  # a vertical stroke in the top-left corner
    x = ins.image_input(canvas, image_info(size=28))
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert x[0, 0, 0] == 0.0 and x.max() > 0.9  # white ink on a black background, as in MNIST
    ys, xs = np.nonzero(x[0] > 0.5)
    assert abs(ys.mean() - 13.5) < 2 and abs(xs.mean() - 13.5) < 2  # moved to the centre
    assert ys.max() - ys.min() >= 15  # scaled up to MNIST's 20-pixel box


def test_uploaded_image_bytes_and_bad_files():
    img = Image.new("RGB", (50, 40), "white")
    img.paste((0, 0, 0), (20, 5, 28, 35))  # dark ink on white paper: inverted to MNIST's white on black
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    x = ins.image_from_bytes(buf.getvalue(), image_info(size=28))
    assert x.shape == (1, 28, 28) and x[0, 0, 0] == 0.0 and x.max() > 0.9
    with pytest.raises(dlcore.DataError, match="is not an image"):
        ins.image_from_bytes(b"definitely not a png", image_info())
    rgb = ins.image_input(np.asarray(img), image_info(size=8, channels=3))
    assert rgb.shape == (3, 8, 8)


def test_which_views_suit_which_models():
    assert ins.unsuitable(dlcore.get_preset("seed-cnn"), "filters") is None
    assert ins.unsuitable(dlcore.get_preset("vit-tiny"), "filters") is None
    assert "Transformer" in ins.unsuitable(dlcore.get_preset("seed-cnn"), "attention")
    assert ins.unsuitable(dlcore.get_preset("seed-lstm"), "rnn") is None
    assert ins.unsuitable(dlcore.get_preset("transformer-tiny").replace(per_step=True), "embeddings") is not None
    with pytest.raises(ValueError, match="unknown view"):
        ins.unsuitable(dlcore.get_preset("seed-cnn"), "x-ray")
