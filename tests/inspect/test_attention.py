"""The attention recorder: same output as the fused path, weights that are softmax rows, hooks always removed,
and rollout / expected-pattern arithmetic."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dlcore.inspect as ins


@pytest.mark.parametrize("name", ["encoder", "decoder", "vit"])
def test_explicit_and_fused_paths_give_the_same_output(name, request, tokens, images):
    model = request.getfixturevalue(name)
    x = images if name == "vit" else tokens
    with torch.no_grad():
        fused = model(x)[0]
        pred, attn = ins.Recorder(model)(x)
    torch.testing.assert_close(pred, fused, rtol=1e-5, atol=1e-5)
    cfg = model.config
    T = cfg.seq_len
    assert attn.shape == (len(x), cfg.n_layers, cfg.n_heads, T, T)
    torch.testing.assert_close(attn.sum(-1), torch.ones(attn.shape[:-1]))
    assert all(not b.attn.explicit for b in model.blocks)  # the fast path is back
    assert ins.hook_count(model) == 0
    if name == "decoder":  # causal: nothing above the diagonal
        assert float(attn.triu(1).abs().max()) == 0.0


def test_recorder_removes_hooks_and_restores_the_fast_path_when_forward_raises(encoder, tokens, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(encoder.blocks[1].mlp, "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        ins.Recorder(encoder)(tokens)
    assert ins.hook_count(encoder) == 0
    assert all(not b.attn.explicit for b in encoder.blocks)


def test_recorder_eject_and_non_transformers(encoder, cnn):
    rec = ins.Recorder(encoder)
    assert rec.eject() is encoder
    assert ins.hook_count(encoder) == 0
    with pytest.raises(TypeError, match="inspectable attention"):
        ins.Recorder(cnn)
    assert ins.has_attention(encoder) and not ins.has_attention(cnn)


def test_record_attention_one_example(encoder, tokens):
    pred, attn = ins.record_attention(encoder, tokens[0].numpy())
    assert pred.shape == (6, 10) and attn.shape == (2, 2, 6, 6)


def test_rollout_matches_the_formula():
    rng = np.random.default_rng(0)
    a = rng.random((3, 2, 4, 4))
    a /= a.sum(-1, keepdims=True)
    expected = np.eye(4)
    for layer in a:
        m = 0.5 * layer.mean(0) + 0.5 * np.eye(4)
        expected = (m / m.sum(-1, keepdims=True)) @ expected
    np.testing.assert_allclose(ins.attention_rollout(a), expected)
    np.testing.assert_allclose(ins.attention_rollout(a, "max").sum(-1), np.ones(4))
    # identity attention rolls out to identity
    np.testing.assert_allclose(ins.attention_rollout(np.broadcast_to(np.eye(4), (2, 1, 4, 4))), np.eye(4))
    with pytest.raises(ValueError, match="head_fusion"):
        ins.attention_rollout(a, "median")


def test_expected_patterns_and_scores():
    x = np.array([3, 1, 3, 0])
    rev = ins.expected_attention("reverse", x)
    np.testing.assert_array_equal(rev, np.fliplr(np.eye(4)))
    srt = ins.expected_attention("sort", x)  # sorted: 0 1 3 3
    np.testing.assert_allclose(srt[0], [0, 0, 0, 1])
    np.testing.assert_allclose(srt[2], [0.5, 0, 0.5, 0])
    assert ins.expected_attention("lm", x) is None
    perfect = np.broadcast_to(rev, (1, 2, 4, 4))
    uniform = np.full((1, 1, 4, 4), 0.25)
    assert ins.pattern_scores(perfect, rev).tolist() == [[1.0, 1.0]]
    assert ins.pattern_scores(uniform, rev)[0, 0] == pytest.approx(0.25)


def test_vit_cls_grid_and_labels(vit, images):
    _, attn = ins.record_attention(vit, images[0])
    roll = ins.attention_rollout(attn)
    grid = ins.cls_rollout_grid(roll, 2)
    assert grid.shape == (2, 2) and grid.max() == pytest.approx(1.0)
    assert ins.upsample_grid(grid, 8).shape == (8, 8)
    assert ins.position_labels(vit, 5) == ["CLS", "p0,0", "p0,1", "p1,0", "p1,1"]
    assert ins.token_labels([1, 0], ("a", " ")) == ["0:␣", "1:a"]
