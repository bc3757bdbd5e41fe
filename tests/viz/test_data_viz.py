"""Dataset figures: image mosaics, sequences, series, class balance, token decoding."""
from __future__ import annotations

import numpy as np
import pytest

from dlcore.viz import class_balance, decode_tokens, feature_ranges, image_grid, sequence_lines, series_plot


def test_image_grid_tiles_every_image_into_one_trace_with_captions():
    rng = np.random.default_rng(0)
    imgs = rng.random((10, 1, 6, 5)).astype(np.float32)
    fig = image_grid(imgs, [f"c{i}" for i in range(10)], cols=4)
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    z = np.asarray(fig.data[0].z, dtype=float)
    lo, hi = imgs.min(), imgs.max()
    gap, cap = 1, 3  # 12% of the width (at least 1 px), 32% of the height (at least 3 px)
    cell_h, cell_w = 6 + cap, 5 + gap
    assert z.shape == (3 * cell_h, 4 * cell_w - gap)  # 3 rows of 4
    r, c = divmod(7, 4)
    tile = z[r * cell_h + cap: r * cell_h + cap + 6, c * cell_w: c * cell_w + 5]
    np.testing.assert_allclose(tile, (imgs[7, 0] - lo) / (hi - lo), rtol=1e-5)
    assert np.isnan(z[r * cell_h, 0])  # the caption band is empty
    assert [a.text for a in fig.layout.annotations] == [f"c{i}" for i in range(10)]
    assert fig.layout.yaxis.scaleanchor == "x"  # square pixels


def test_image_grid_colour_images_and_caption_colours():
    imgs = np.zeros((3, 3, 4, 4), dtype=np.float32)
    imgs[1, 0] = 1.0  # a red image
    fig = image_grid(imgs, ["a", "b", "c"], caption_colors=["red", "red", "red"])
    assert fig.data[0].type == "image"
    z = np.asarray(fig.data[0].z)
    assert z.shape == (3 + 4, 3 * 5 - 1, 3)  # caption band of 3 px, 1 px gaps
    assert tuple(z[3, 5]) == (255, 0, 0) and tuple(z[3, 0]) == (0, 0, 0)  # second tile red, first black
    assert all(a.font.color == "red" for a in fig.layout.annotations)


def test_image_grid_refuses_a_wrong_shape_and_handles_none():
    with pytest.raises(ValueError, match="images must be"):
        image_grid(np.zeros((2, 3, 4, 5, 6)))
    assert image_grid(np.zeros((0, 4, 4))).layout.annotations[0].text == "no images"


def test_sequence_lines_one_line_per_feature_and_the_targets_after_the_window():
    x = np.arange(2 * 5 * 2, dtype=float).reshape(2, 5, 2)
    fig = sequence_lines(x, ["a", "b"], targets=np.ones((2, 3)))
    assert len(fig.data) == 2 * 2 + 2
    tgt = [t for t in fig.data if t.name == "target"]
    assert list(tgt[0].x) == [5, 6, 7]
    assert list(fig.data[1].y) == list(x[0, :, 1])


def test_series_plot_shades_the_test_span():
    fig = series_plot(np.sin(np.arange(100)), test_start=80)
    assert list(fig.data[0].y)[:3] == list(np.sin(np.arange(3)))
    assert fig.layout.shapes[0].x0 == 80 and fig.layout.shapes[0].x1 == 99


def test_class_balance_bars_hold_the_counts():
    fig = class_balance({"train": [5, 3], "test": [1, 2]}, ["cat", "dog"])
    assert [t.name for t in fig.data] == ["train (8)", "test (3)"]
    assert list(fig.data[0].y) == [5, 3] and list(fig.data[0].x) == ["cat", "dog"]


def test_feature_ranges_one_box_per_feature():
    fig = feature_ranges(np.zeros((10, 3)), ["a", "b", "c"])
    assert [t.name for t in fig.data] == ["a", "b", "c"]
    with pytest.raises(ValueError):
        feature_ranges(np.zeros(3))


def test_decode_tokens_characters_and_digits():
    vocab = ("␀", "a", "b", " ")
    assert decode_tokens([1, 2, 3, 1, 0, 0], vocab) == "ab a"
    assert decode_tokens([3, 1, 2], tuple("0123456789")) == "3 1 2"  # digit tokens stay readable
