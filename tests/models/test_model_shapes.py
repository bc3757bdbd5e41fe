"""Shape smoke tests for every model family and preset (vit-pytorch style), plus the attention paths."""
from __future__ import annotations

import math

import pytest
import torch

from dlcore import (PRESETS, CNNConfig, MLPConfig, RNNConfig, SpecError, TransformerConfig, build_model, for_data,
                    summarize)
from dlcore.models import count_params, example_input

B = 3


def _targets(cfg, info, out):
    """Targets matching a model's output: class ids (per example or per step) or real values."""
    if info.loss == "mse":
        return torch.randn(B, info.num_outputs)
    shape = (B, info.input_shape[0]) if info.per_step else (B,)
    return torch.randint(0, info.num_outputs, shape)


def _input(info):
    if info.input_kind == "tokens":
        return torch.randint(0, len(info.vocab) or 5, (B, *info.input_shape))
    return torch.rand(B, *info.input_shape)


def _params_by_formula(model: torch.nn.Module) -> int:
    """Parameters from each layer's hyperparameters (the textbook formulas), not from tensor sizes: Linear
    (in + 1)·out, Conv2d (k·k·in + 1)·out, a norm 2·features, Embedding n·d, recurrent layers gates·H·(in + H + 2)
    per layer and direction; tensors a module holds itself (positions, [CLS]) count by their size."""
    nn, total = torch.nn, 0
    for m in model.modules():
        own = list(m.parameters(recurse=False))
        if not own:
            continue
        if isinstance(m, nn.Linear):
            total += (m.in_features + (m.bias is not None)) * m.out_features
        elif isinstance(m, nn.Conv2d):
            k_h, k_w = m.kernel_size
            total += (k_h * k_w * m.in_channels // m.groups + (m.bias is not None)) * m.out_channels
        elif isinstance(m, nn.LayerNorm):
            total += math.prod(m.normalized_shape) * ((m.weight is not None) + (m.bias is not None))
        elif isinstance(m, nn.BatchNorm2d):
            total += 2 * m.num_features  # weight and bias; the running statistics are buffers
        elif isinstance(m, nn.Embedding):
            total += m.num_embeddings * m.embedding_dim
        elif isinstance(m, nn.RNNBase):
            gates, dirs, H = {"LSTM": 4, "GRU": 3}.get(m.mode, 1), 1 + m.bidirectional, m.hidden_size
            for layer in range(m.num_layers):
                n_in = m.input_size if layer == 0 else H * dirs
                total += dirs * gates * H * (n_in + H + 2 * m.bias)
        else:
            total += sum(p.numel() for p in own)
    return total


def _expected_shape(info):
    if info.per_step:
        return (B, info.input_shape[0], info.num_outputs)
    return (B, info.num_outputs)


# (id, config template, info args) — every family, kind, cell and input kind on tiny sizes
CASES = [
    ("cnn-valid", CNNConfig(channels=(4, 8), pools=(2, 1), hidden=(8,)), ("image", (1, 12, 12))),
    ("cnn-same-bn-dropout-rgb", CNNConfig(channels=(4, 8, 8), pools=(2, 2, 2), padding="same", batch_norm=True,
                                          dropout=0.1, hidden=(8, 8), activation="gelu"), ("image", (3, 16, 16))),
    *[(f"rnn-{cell}{'-bi' if bi else ''}", RNNConfig(cell=cell, hidden_size=6, num_layers=2, bidirectional=bi),
       ("sequence", (7, 5))) for cell in ("rnn", "lstm", "gru") for bi in (False, True)],
    ("rnn-image-rows", RNNConfig(cell="gru", hidden_size=6, num_layers=1), ("image", (1, 8, 8))),
    ("rnn-tokens-seq2seq", RNNConfig(cell="lstm", hidden_size=6, embed_dim=4, bidirectional=True),
     ("tokens", (6,), 10, "seq2seq", 10)),
    ("rnn-forecast", RNNConfig(cell="gru", hidden_size=6, num_layers=1), ("sequence", (12, 1), 2, "forecasting")),
    ("rnn-char-lm", RNNConfig(cell="lstm", hidden_size=6, num_layers=1), ("tokens", (9,), 7, "char-lm", 7)),
    ("encoder-tokens", TransformerConfig(d_model=16, n_heads=2, n_layers=1, d_ff=16), ("tokens", (6,), 3, None, 9)),
    ("encoder-seq2seq", TransformerConfig(d_model=16, n_heads=4, n_layers=2, d_ff=16),
     ("tokens", (6,), 10, "seq2seq", 10)),
    ("encoder-features", TransformerConfig(d_model=16, n_heads=2, n_layers=1, d_ff=16), ("sequence", (7, 5))),
    ("encoder-forecast", TransformerConfig(d_model=16, n_heads=2, n_layers=1, d_ff=16),
     ("sequence", (12, 1), 2, "forecasting")),
    ("encoder-image-rows", TransformerConfig(d_model=16, n_heads=2, n_layers=1, d_ff=16), ("image", (1, 8, 8))),
    ("vit", TransformerConfig(kind="vit", patch_size=4, d_model=16, n_heads=2, n_layers=2, d_ff=16),
     ("image", (1, 12, 12))),
    ("vit-rgb-odd-patch", TransformerConfig(kind="vit", patch_size=7, d_model=16, n_heads=2, n_layers=1, d_ff=16),
     ("image", (3, 10, 10))),
    ("decoder-char-lm", TransformerConfig(kind="decoder", vocab_size=1, d_model=16, n_heads=2, n_layers=2, d_ff=16),
     ("tokens", (10,), 7, "char-lm", 7)),
    ("mlp-tabular", MLPConfig(hidden=(8, 4)), ("tabular", (5,))),
    ("mlp-image", MLPConfig(hidden=(8,), dropout=0.2, activation="tanh"), ("image", (1, 4, 4))),
]


@pytest.mark.parametrize("template,info_args", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_forward_backward_shapes(template, info_args, make_info):
    torch.manual_seed(1234)
    info = make_info(*info_args)
    cfg = for_data(template, info)
    model = build_model(cfg)
    assert model.config == cfg
    x = _input(info)
    out, loss = model(x)
    assert loss is None
    assert tuple(out.shape) == _expected_shape(info)
    out, loss = model(x, _targets(cfg, info, out))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None]
    assert not dead, f"parameters that never receive a gradient: {dead}"
    assert count_params(model) == _params_by_formula(model) == summarize(cfg).params


@pytest.mark.parametrize("template,info_args", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fitting_to_the_data_is_idempotent(template, info_args, make_info):
    cfg = for_data(template, make_info(*info_args))
    assert for_data(cfg, make_info(*info_args)) == cfg


def test_vit_patch_size_is_adapted_to_divide_the_image(make_info):
    cfg = for_data(PRESETS["vit-tiny"].config, make_info("image", (1, 10, 10)))
    assert cfg.patch_size == 5 and cfg.seq_len == 5  # 2×2 patches + [CLS]
    cfg = for_data(PRESETS["vit-tiny"].config, make_info("image", (1, 8, 8)))
    assert cfg.patch_size == 4


def test_image_models_normalise_with_the_datas_pixel_statistics(make_info):
    cfg = for_data(CNNConfig(channels=(4,), pools=(2,), hidden=()), make_info("image", (1, 8, 8)))
    assert (cfg.input_mean, cfg.input_std) == (0.5, 0.25)


# ---------------------------------------------------------------- every preset on its own dataset
SMALL_PRESETS = [n for n in PRESETS if not n.endswith("-xl")]


@pytest.mark.parametrize("name", SMALL_PRESETS)
def test_every_preset_runs_on_its_dataset(name, dataset):
    torch.manual_seed(1234)
    preset = PRESETS[name]
    ds = dataset(preset.data)
    cfg = for_data(preset.config, ds.info)
    model = build_model(cfg).eval()
    x, y = ds.train[0][:2], ds.train[1][:2]
    with torch.no_grad():
        out, loss = model(x, y)
    assert out.shape[0] == 2 and out.shape[-1] == ds.info.num_outputs
    assert torch.isfinite(loss)
    assert count_params(model) == _params_by_formula(model)
    assert summarize(cfg, seq_len=x.shape[1] if x.dim() <= 3 else None).params == count_params(model)


@pytest.mark.parametrize("name", [n for n in PRESETS if n.endswith("-xl")])
def test_xl_presets_are_summarised_without_allocating(name):
    s = summarize(PRESETS[name].config)  # meta device: instant, no memory
    assert s.params > 50_000_000 and s.flops_per_sample > 0


# ---------------------------------------------------------------- data/model mismatches are SpecErrors
@pytest.mark.parametrize("template,info_args,field", [
    (CNNConfig(), ("tokens", (8,), 3, None, 5), "family"),
    (CNNConfig(), ("sequence", (8, 2)), "family"),
    (RNNConfig(), ("tabular", (4,)), "family"),
    (TransformerConfig(), ("tabular", (4,)), "family"),
    (TransformerConfig(kind="vit"), ("tokens", (8,), 3, None, 5), "kind"),
    (TransformerConfig(kind="encoder"), ("tokens", (8,), 5, "char-lm", 5), "kind"),
    (TransformerConfig(kind="decoder", vocab_size=5), ("tokens", (8,), 3, None, 5), "kind"),
    (RNNConfig(bidirectional=True), ("tokens", (8,), 5, "char-lm", 5), "bidirectional"),
    (CNNConfig(channels=(8, 8, 8), pools=(2, 2, 2)), ("image", (1, 8, 8)), "channels"),
])
def test_model_that_cannot_read_the_data_is_refused_by_name(template, info_args, field, make_info):
    with pytest.raises(SpecError) as err:
        for_data(template, make_info(*info_args))
    assert err.value.field == field
    assert str(err.value)


# ---------------------------------------------------------------- attention: fast path == explicit path
ATTN = [("encoder", ("tokens", (6,), 10, "seq2seq", 10)), ("decoder", ("tokens", (6,), 7, "char-lm", 7)),
        ("vit", ("image", (1, 12, 12)))]


def _attn_model(kind, info_args, make_info, **kw):
    torch.manual_seed(1234)
    info = make_info(*info_args)
    template = TransformerConfig(kind=kind, patch_size=4, vocab_size=1 if kind == "decoder" else 0, d_model=16,
                                 n_heads=4, n_layers=2, d_ff=32, **kw)
    return build_model(for_data(template, info)), _input(info)


@pytest.mark.parametrize("kind,info_args", ATTN, ids=[a[0] for a in ATTN])
def test_explicit_attention_matches_fused_and_can_be_recorded(kind, info_args, make_info):
    model, x = _attn_model(kind, info_args, make_info)
    model.eval()
    with torch.no_grad():
        fast, _ = model(x)
        model.set_explicit_attention(True)
        seen = []
        handles = [b.attn.attend.register_forward_hook(lambda m, i, o: seen.append(o)) for b in model.blocks]
        try:
            slow, _ = model(x)
        finally:
            for h in handles:
                h.remove()
    torch.testing.assert_close(slow, fast, atol=1e-5, rtol=1e-4)
    T = model.config.seq_len if kind == "vit" else x.shape[1]
    assert len(seen) == 2 and all(a.shape == (B, 4, T, T) for a in seen)
    for a in seen:
        torch.testing.assert_close(a.sum(-1), torch.ones(B, 4, T))
        if kind == "decoder":
            assert torch.all(a.triu(1) == 0), "a decoder must not attend to later positions"
    model.set_explicit_attention(False)  # the fused path never calls the hookable softmax
    seen.clear()
    h = model.blocks[0].attn.attend.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        model(x)
    finally:
        h.remove()
    assert seen == []


def test_decoder_output_does_not_depend_on_the_future(make_info):
    model, x = _attn_model("decoder", ATTN[1][1], make_info)
    model.eval()
    x2 = x.clone()
    x2[:, 3:] = (x2[:, 3:] + 1) % 7
    with torch.no_grad():
        a, b = model(x)[0], model(x2)[0]
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_encoder_output_does_depend_on_every_position(make_info):
    model, x = _attn_model("encoder", ATTN[0][1], make_info)
    model.eval()
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % 10
    with torch.no_grad():
        assert not torch.allclose(model(x)[0][:, 0], model(x2)[0][:, 0])


def test_activation_checkpointing_gives_the_same_loss_and_gradients(make_info):
    model, x = _attn_model("encoder", ATTN[0][1], make_info)
    y = torch.randint(0, 10, x.shape)
    grads = []
    for on in (False, True):
        model.zero_grad()
        model.grad_checkpointing = on
        _, loss = model(x, y)
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for g0, g1 in zip(*grads):
        torch.testing.assert_close(g0, g1)


def test_token_and_position_embeddings_start_at_the_same_scale(make_info):
    """Regression: N(0, 1) token vectors drowned the 0.02-sized positions and the reverse task stalled at ~30%."""
    model, _ = _attn_model("encoder", ATTN[0][1], make_info)
    ratio = model.tok.weight.std() / model.pos.std()
    assert 0.5 < ratio < 2.0


def test_example_input_matches_what_each_family_reads(make_info):
    for template, args in [(CNNConfig(), ("image", (1, 28, 28))), (RNNConfig(), ("sequence", (28, 28))),
                           (TransformerConfig(), ("tokens", (6,), 3, None, 9)), (MLPConfig(), ("tabular", (5,)))]:
        cfg = for_data(template, make_info(*args))
        x = example_input(cfg, batch=2)
        assert x.shape[0] == 2
        out, _ = build_model(cfg)(x)
        assert out.shape == (2, 3)
