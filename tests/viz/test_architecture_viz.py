"""Model drawings built from real model summaries."""
from __future__ import annotations

import pytest

import dlcore
from dlcore.viz import architecture_diagram, layer_groups, params_chart
from dlcore.viz.architecture import human


@pytest.fixture(scope="module")
def cnn_summary():
    info = dlcore.dataset_info("digits")
    cfg = dlcore.for_data(dlcore.get_preset("seed-cnn").replace(padding="same"), info)
    return dlcore.summarize(cfg), info


def test_layer_groups_make_conv_blocks_and_keep_every_parameter(cnn_summary):
    summary, _ = cnn_summary
    groups = layer_groups(summary.layers)
    assert [g["title"] for g in groups] == ["Conv block 1", "Conv block 2", "Conv block 3", "Flatten", "Dense",
                                            "Dense"]
    assert groups[0]["detail"] == "Conv·ReLU·Pool"
    assert sum(g["params"] for g in groups) == summary.params
    assert groups[-1]["output_shape"] == (10,)


def test_transformer_blocks_are_grouped():
    info = dlcore.dataset_info("reverse")
    s = dlcore.summarize(dlcore.for_data(dlcore.get_preset("transformer-tiny"), info), seq_len=8)
    titles = [g["title"] for g in layer_groups(s.layers)]
    assert titles.count("Transformer block 1") == 1 and "Transformer block 2" in titles


def test_architecture_diagram_one_box_per_block_plus_input(cnn_summary):
    summary, info = cnn_summary
    fig = architecture_diagram(summary.layers, input_shape=info.input_shape, per_row=4)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 1 + 6
    texts = list(fig.data[0].text)
    assert texts[0].startswith("<b>Input</b>") and "1×8×8" in texts[0]
    assert "Conv·ReLU·Pool" in texts[1] and "32×4×4" in texts[1] and "320 params" in texts[1]
    # 7 boxes with at most 4 a row: balanced as 4 + 3
    assert len({round(s.y0, 3) for s in rects}) == 2
    assert sum(1 for s in rects if s.y0 == rects[0].y0) == 4
    assert any(s.type == "path" for s in fig.layout.shapes)  # the elbow to the second row


def test_params_chart_sums_to_the_parameter_count(cnn_summary):
    summary, _ = cnn_summary
    fig = params_chart(summary.layers)
    assert sum(fig.data[0].x) == summary.params


def test_human_numbers():
    assert [human(n) for n in (999, 1500, 93_322, 2_000_000, 3.4e9)] == ["999", "1.5K", "93.3K", "2M", "3.4B"]
