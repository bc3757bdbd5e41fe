"""The key/value cache gives the decoder's own outputs: one token at a time, in chunks, on both attention paths."""
from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("explicit", [False, True])
def test_cached_steps_equal_one_full_pass(lm, explicit):
    model, _ = lm
    x = torch.randint(0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    model.set_explicit_attention(explicit)
    try:
        with torch.no_grad():
            full = model(x)[0]  # (2, 16, V)
            cache = model.new_cache()
            parts = [model(x[:, :5], cache=cache)[0]] + [model(x[:, t: t + 1], cache=cache)[0] for t in range(5, 16)]
    finally:
        model.set_explicit_attention(False)
    assert len(cache[0]) == 16
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)


def test_cache_refuses_more_positions_than_the_model_has(lm):
    model, _ = lm
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.zeros(1, 16, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="max_len"):
            model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


def test_encoders_have_no_cache():
    import dlcore
    from dlcore.models import build_model

    enc = build_model(dlcore.TransformerConfig(kind="encoder", vocab_size=5, max_len=4, d_model=8, n_heads=2,
                                               n_layers=1, d_ff=8))
    with pytest.raises(ValueError, match="decoder"):
        enc.new_cache()
