"""What a model costs before training: the tutorial architectures exactly, parameters, FLOPs, memory, fit checks."""
from __future__ import annotations

import re

import pytest
from torch import nn

from dlcore import (PRESETS, CNNConfig, MLPConfig, TrainSpec, build_model, check_fit, for_data, get_preset,
                    summarize)
from dlcore.models import count_params

CPU = {"type": "cpu", "name": "CPU", "free_bytes": 8 * 2**30, "total_bytes": 16 * 2**30, "count": 1}
SMALL_GPU = {"type": "cuda", "name": "Small GPU", "free_bytes": 2 * 2**30, "total_bytes": 2 * 2**30, "count": 1}


# ---------------------------------------------------------------- the three tutorial models, exactly
def test_seed_cnn_is_the_keras_tutorial_model_with_93322_parameters(make_info):
    cfg = for_data(get_preset("seed-cnn"), make_info("image", (1, 28, 28), 10))
    s = summarize(cfg)
    assert s.params == s.trainable == 93_322
    assert count_params(build_model(cfg)) == 93_322
    kept = ("Conv2d", "MaxPool2d", "Linear")
    shapes = [(layer["type"], layer["output_shape"]) for layer in s.layers if layer["type"] in kept]
    assert shapes == [("Conv2d", (32, 26, 26)), ("MaxPool2d", (32, 13, 13)), ("Conv2d", (64, 11, 11)),
                      ("MaxPool2d", (64, 5, 5)), ("Conv2d", (64, 3, 3)), ("Linear", (64,)), ("Linear", (10,))]
    assert [layer["params"] for layer in s.layers if layer["params"]] == [320, 18_496, 36_928, 36_928, 650]


def test_seed_lstm_is_two_stacked_lstms_of_128_and_a_dense_head(make_info):
    cfg = for_data(get_preset("seed-lstm"), make_info("sequence", (28, 28), 10))
    model = build_model(cfg)
    assert isinstance(model.rnn, nn.LSTM) and model.rnn.num_layers == 2 and model.rnn.hidden_size == 128
    assert model.rnn.input_size == 28 and (model.head.in_features, model.head.out_features) == (128, 10)
    # Keras counts one bias per gate (213,258); PyTorch keeps two (b_ih and b_hh): 2 layers × 4 gates × 128 more
    assert count_params(model) == 213_258 + 2 * 4 * 128 == 214_282


def test_seed_transformer_is_the_base_model_of_attention_is_all_you_need():
    cfg = get_preset("seed-transformer")
    layout = (cfg.kind, cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_ff, cfg.dropout)
    assert layout == ("encoder", 6, 8, 512, 2048, 0.1)
    s = summarize(cfg)
    per_block = 4 * 512 * 512 + 4 * 512 + 2 * 512 * 2048 + 2048 + 512 + 4 * 512  # attention, FFN, two layer norms
    assert s.params - 6 * per_block < 100_000  # the rest: input projection, positions, final norm, head


# ---------------------------------------------------------------- counts and FLOPs against hand arithmetic
def test_flops_of_an_mlp_are_two_per_multiply_add():
    cfg = MLPConfig(in_features=64, hidden=(32,), num_outputs=10)
    s = summarize(cfg)
    assert s.params == 64 * 32 + 32 + 32 * 10 + 10
    assert s.flops_per_sample == 2 * (64 * 32 + 32 * 10)


def test_flops_of_a_convolution():
    cfg = CNNConfig(in_channels=3, image_size=10, channels=(4,), pools=(1,), hidden=(), num_outputs=2)
    s = summarize(cfg)
    conv = 2 * 3 * 4 * 3 * 3 * 8 * 8  # 2 × C_in × C_out × k × k × H_out × W_out
    assert s.flops_per_sample == conv + 2 * 4 * 8 * 8 * 2


_COUNT = re.compile(r"~?([\d,.]+)\s*([KM])? params")
QUOTED = [n for n in PRESETS if _COUNT.search(PRESETS[n].description)]


@pytest.mark.parametrize("name", QUOTED)
def test_descriptions_quote_parameter_counts_that_hold(name):
    m = _COUNT.search(PRESETS[name].description)
    claimed = float(m.group(1).replace(",", "")) * {"K": 1e3, "M": 1e6, None: 1}[m.group(2)]
    actual = summarize(PRESETS[name].config).params
    tolerance = 0.1 if m.group(0).startswith("~") else 0  # "~15K" is rounded; "93,322" is exact
    assert abs(actual - claimed) <= tolerance * claimed, (actual, claimed)


def test_the_size_claims_cover_the_tutorial_cnn_and_every_xl_preset():
    assert {"seed-cnn", "cnn-xl", "rnn-xl", "transformer-xl", "lm-xl"} <= set(QUOTED)


def test_summarize_matches_the_real_model_and_leaves_no_hooks(make_info):
    cfg = for_data(get_preset("vit-tiny"), make_info("image", (1, 28, 28), 10))
    s = summarize(cfg)
    model = build_model(cfg)
    assert s.params == count_params(model)
    assert s.flops_per_sample > 2 * s.params * 0.9  # every weight is used at least once per patch
    assert s.activation_bytes_per_sample > 0 and s.layers
    assert all(not m._forward_hooks for m in model.modules())


def test_sequence_length_scales_recurrent_flops():
    cfg = get_preset("rnn-tiny")
    assert summarize(cfg, seq_len=56).flops_per_sample > 1.8 * summarize(cfg, seq_len=28).flops_per_sample


# ---------------------------------------------------------------- memory and fit, decided before training
def test_training_memory_grows_with_batch_and_optimizer_state():
    s = summarize(get_preset("seed-cnn"))
    assert s.train_memory_bytes(64) > s.train_memory_bytes(32) > s.train_memory_bytes(1) > 4 * s.params
    assert s.train_memory_bytes(32, optimizer="sgd") < s.train_memory_bytes(32, optimizer="adamw")
    assert s.train_memory_bytes(32, bytes_per_value=2) < s.train_memory_bytes(32, bytes_per_value=4)


def test_a_tiny_model_fits_a_cpu(dataset):
    report = check_fit(get_preset("cnn-tiny"), dataset("mnist5k").info, TrainSpec(), device=CPU)
    assert report.fits and report.params == 14_410 and report.need_bytes < report.have_bytes
    assert report.message.startswith("fits") and report.est_seconds > 0


def test_an_xl_model_is_refused_on_a_cpu_with_numbers_and_suggestions(dataset):
    report = check_fit(get_preset("cnn-xl"), dataset("mnist5k").info, TrainSpec(), device=CPU)
    assert not report.fits and report.params > 100_000_000
    assert "parameters" in report.message and "GPU" in report.message and report.suggestions


def test_a_model_bigger_than_the_gpu_memory_is_refused_with_a_smaller_batch_suggested(dataset):
    report = check_fit(get_preset("transformer-xl"), dataset("sentiment-synth").info, TrainSpec(batch_size=256),
                       device=SMALL_GPU)
    assert not report.fits and report.need_bytes > report.have_bytes
    assert "GB" in report.message and any("batch size 64" in tip for tip in report.suggestions)
    ok = check_fit(get_preset("cnn-tiny"), dataset("mnist5k").info, TrainSpec(), device=SMALL_GPU)
    assert ok.fits



def test_gradient_accumulation_is_the_suggested_way_to_fit(dataset):
    """A forward pass holds batch_size examples whatever grad_accum is; the suggested smaller batch must fit."""
    info, cfg = dataset("mnist5k").info, get_preset("cnn-medium")
    big = check_fit(cfg, info, TrainSpec(batch_size=4096), device=SMALL_GPU)
    assert check_fit(cfg, info, TrainSpec(batch_size=4096, grad_accum=4), device=SMALL_GPU).need_bytes == big.need_bytes
    assert not big.fits and "batch size 1024 with gradient accumulation 4" in big.suggestions
    assert check_fit(cfg, info, TrainSpec(batch_size=1024, grad_accum=4), device=SMALL_GPU).fits


def test_checking_weights_against_a_transformer_spec_imports_no_compiler():
    """Building a model on the meta device skips weight initialisation, whose meta decomposition (normal_)
    imports torch._dynamo: ~2 s for the first Transformer a server opens."""
    import subprocess
    import sys

    code = ("import sys, torch, dlcore\n"
            "from dlcore.models.summary import build_meta_model\n"
            "m = build_meta_model(dlcore.get_preset('transformer-tiny'))\n"
            "assert all(p.is_meta for p in m.parameters())\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.strip() == "False"
