"""Cascading randomisation: layers from the output down, the caller's model untouched, Spearman similarity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dlcore.explain as ex
from tests.inspect.tiny import image_info


def test_layer_groups_run_from_the_output_down(cnn, encoder):
    assert [g[0] for g in ex.layer_groups(cnn)] == ["head.3", "head.1", "features.1", "features.0"]
    names = [g[0] for g in ex.layer_groups(encoder)]
    assert names == ["head", "ln_f", "blocks.1", "blocks.0", "tok"]
    tok = ex.layer_groups(encoder)[-1]
    assert any(p is encoder.pos for p in tok[2])  # bare parameters join the embedding layer


def test_rank_similarity():
    a = np.arange(10.0)
    assert ex.rank_similarity(a, a) == pytest.approx(1.0)
    assert ex.rank_similarity(a, -a) == pytest.approx(1.0)  # magnitudes are compared
    assert ex.rank_similarity(a, a[::-1]) == pytest.approx(-1.0)
    assert ex.rank_similarity(a, -a, absolute=False) == pytest.approx(-1.0)
    assert ex.rank_similarity(a, np.ones(10)) == 0.0


def test_cascading_randomization_leaves_the_model_alone(cnn, images):
    s = ex.Subject.build(cnn, image_info(), images[0])
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    seen = []
    res = ex.cascading_randomization(s, ["saliency", "grad_cam"], params={"saliency": {"absolute": True}},
                                     progress=lambda frac, text: seen.append(frac))
    for k, v in cnn.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert res.layers == ["head.3", "head.1", "features.1", "features.0"]
    for m in ("saliency", "grad_cam"):
        assert len(res.similarity[m]) == len(res.maps[m]) == 4
        assert res.original[m].shape == (8, 8)
        assert all(-1 <= v <= 1 for v in res.similarity[m] + res.signed_similarity[m])
        assert len(res.signed_similarity[m]) == 4
    assert res.similarity["saliency"][-1] < 0.9  # a fully random model explains differently
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    again = ex.cascading_randomization(s, ["saliency"])
    assert again.similarity["saliency"] == res.similarity["saliency"]  # seeded: repeatable
