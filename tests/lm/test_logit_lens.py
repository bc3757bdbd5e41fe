"""Logit lens: the last block's lens is the model's own output; shapes and names for the page."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcore.inspect._hooks import hook_count
from dlcore.inspect.lens import logit_lens


def test_last_layer_lens_is_the_models_output(lm):
    model, info = lm
    ids = torch.randint(0, len(info.vocab), (12,), generator=torch.Generator().manual_seed(0))
    before = hook_count(model)
    lens = logit_lens(model, ids, info, include_embedding=True)
    assert hook_count(model) == before
    with torch.no_grad():
        own = torch.softmax(model(ids[None])[0][0].double(), -1).numpy()  # (T, V)
    np.testing.assert_allclose(lens.probs[-1], own, rtol=1e-5, atol=1e-7)
    assert lens.rows == ["embedding", "block 1", "block 2"]
    assert lens.top_ids.shape == lens.top_probs.shape == lens.final_probs.shape == (3, 12)
    np.testing.assert_array_equal(lens.top_ids[-1], own.argmax(-1))
    np.testing.assert_allclose(lens.final_probs[-1], own.max(-1))
    assert lens.top_tokens[-1] == [info.vocab[i] for i in own.argmax(-1)]
    # earlier rows are different readings, not copies of the output
    assert not np.allclose(lens.probs[0], lens.probs[-1])


def test_classifier_lens_pools_like_the_model():
    import dlcore
    from dlcore.models import build_model

    torch.manual_seed(0)
    model = build_model(dlcore.TransformerConfig(kind="encoder", vocab_size=7, max_len=5, num_outputs=2,
                                                 d_model=16, n_heads=2, n_layers=3, d_ff=16)).eval()
    lens = logit_lens(model, [1, 2, 3, 0, 0])
    with torch.no_grad():
        own = torch.softmax(model(torch.tensor([[1, 2, 3, 0, 0]]))[0].double(), -1).numpy()  # (1, 2)
    assert lens.probs.shape == (3, 1, 2)
    np.testing.assert_allclose(lens.probs[-1], own, rtol=1e-5)


def test_lens_refuses_non_token_models():
    import dlcore
    from dlcore.models import build_model

    vit = build_model(dlcore.TransformerConfig(kind="vit", image_size=8, patch_size=4, d_model=16, n_heads=2,
                                               n_layers=1, d_ff=16))
    with pytest.raises(TypeError, match="token"):
        logit_lens(vit, torch.zeros(1, 8, 8))
