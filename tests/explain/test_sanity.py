"""Cascading randomisation: layers from the output down, the caller's model untouched, Spearman similarity, and
a verdict that tells maps of the model from maps of the input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dlcore
import dlcore.explain as ex
from tests.inspect.tiny import image_info, make


def test_randomization_groups_run_from_the_output_down(cnn, encoder):
    assert [g[0] for g in ex.randomization_groups(cnn)] == ["head.3", "head.1", "features.1", "features.0"]
    names = [g[0] for g in ex.randomization_groups(encoder)]
    assert names == ["head", "ln_f", "blocks.1", "blocks.0", "tok"]
    tok = ex.randomization_groups(encoder)[-1]
    assert any(p is encoder.pos for p in tok[2])  # bare parameters join the embedding layer


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the (tie-averaged) ranks; 0 for a constant map, as the check defines it."""
    from scipy.stats import rankdata

    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])


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
        assert len(res.signed_similarity[m]) == 4
        for k, after in enumerate(res.maps[m]):  # each step against the trained map, by Spearman's definition
            assert res.similarity[m][k] == pytest.approx(_spearman(np.abs(res.original[m]), np.abs(after)), abs=1e-9)
            assert res.signed_similarity[m][k] == pytest.approx(_spearman(res.original[m], after), abs=1e-9)
    assert res.similarity["saliency"][-1] < 0.9  # a fully random model explains differently
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    again = ex.cascading_randomization(s, ["saliency"])
    assert again.similarity["saliency"] == res.similarity["saliency"]  # seeded: repeatable


# ---------------------------------------------------------------- the check discriminates
SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def _edges(subject, inputs, params):
    """An edge detector (Sobel gradient magnitude of the input): an 'explanation' that ignores the model."""
    k = torch.stack([SOBEL, SOBEL.T]).unsqueeze(1)  # (2, 1, 3, 3)
    g = torch.nn.functional.conv2d(inputs.reshape(-1, 1, *inputs.shape[2:]), k, padding=1)
    return g.pow(2).sum(1, keepdim=True).sqrt().reshape(inputs.shape)


def _input_x_gradient(subject, inputs, params):
    from captum.attr import InputXGradient

    return InputXGradient(subject.forward).attribute(inputs, target=subject.target)


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained for three epochs on the 8×8 digits (about 94 % test accuracy), and the data."""
    ds = dlcore.load_dataset(dlcore.DataSpec(name="digits"))
    model = make(dlcore.CNNConfig(in_channels=1, image_size=8, channels=(8, 16), pools=(2, 1), hidden=(32,),
                                  padding="same"), seed=0)
    x, y = ds.train
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model trains fastest on one thread (a fraction of a second)
    try:
        model.train()
        for _ in range(3):
            for idx in torch.randperm(len(x), generator=g).split(64):
                _, loss = model(x[idx], y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        acc = float((model(ds.test[0])[0].argmax(-1) == ds.test[1]).float().mean())
    assert acc > 0.85, acc  # it has learned something for the check to find
    return model, ds


def test_the_check_fails_maps_of_the_input_and_passes_saliency_of_a_trained_model(trained, monkeypatch):
    model, ds = trained
    for key, run in (("edges", _edges), ("input_x_gradient", _input_x_gradient)):
        monkeypatch.setitem(ex.METHODS, key, ex.Method(key, key, "captum", "test method", (), run))
    for i in range(3):
        s = ex.subject_for(model, ds, ds.test[0][i])
        res = ex.cascading_randomization(s, ["saliency", "edges", "input_x_gradient"])
        final = res.final_similarity()
        assert res.verdicts() == {"saliency": "passes", "edges": "fails", "input_x_gradient": "fails"}, (i, final)
        assert all(v == pytest.approx(1.0) for v in res.similarity["edges"])  # unchanged by any weight
