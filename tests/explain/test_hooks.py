"""Every method leaves the model exactly as it found it: no hooks left behind, even when the model raises
half-way through an explanation (Streamlit reruns a page constantly; a leaked hook is a leak and a wrong answer)."""
from __future__ import annotations

import pytest
import torch

import dlcore.explain as ex
from dlcore.inspect import hook_count
from tests.inspect.tiny import image_info, token_info

FAST = {"integrated_gradients": {"n_steps": 4}, "smoothgrad": {"nt_samples": 2}, "gradient_shap": {"n_samples": 2},
        "shap_gradient": {"nsamples": 10, "background": 2}, "lime": {"n_samples": 12}}


def global_hooks() -> int:
    from torch.nn.modules import module as m

    return len(m._global_forward_hooks) + len(m._global_forward_pre_hooks) + len(m._global_backward_hooks)


def _cases(request, name):
    model = request.getfixturevalue(name)
    if name == "cnn":
        return model, ex.Subject.build(model, image_info(), request.getfixturevalue("images")[0],
                                       background=request.getfixturevalue("images"))
    toks = request.getfixturevalue("tokens")
    return model, ex.Subject.build(model, token_info(), toks[0], background=toks)


@pytest.mark.parametrize("name", ["cnn", "encoder"])
def test_no_hooks_are_left_after_any_method(name, request):
    model, s = _cases(request, name)
    before, before_global = hook_count(model), global_hooks()
    assert before == 0
    for m in ex.available_methods(model):
        ex.explain(s, m.key, **FAST.get(m.key, {}))
        assert hook_count(model) == before, m.key
        assert global_hooks() == before_global, m.key


@pytest.mark.parametrize("name", ["cnn", "encoder"])
def test_no_hooks_are_left_when_the_model_raises(name, request, monkeypatch):
    model, s = _cases(request, name)
    last = model.head[-1] if name == "cnn" else model.head
    real = last.forward

    def flaky(x):  # the output layer fails: by then every hook a method uses is registered
        raise RuntimeError("simulated failure inside the model")

    monkeypatch.setattr(last, "forward", flaky)
    for m in ex.available_methods(model):
        with pytest.raises(RuntimeError, match="simulated failure"):
            ex.explain(s, m.key, **FAST.get(m.key, {}))
        assert hook_count(model) == 0, m.key
        # the embedding swap of token models and captum's layer hooks are gone: a plain forward works
        monkeypatch.setattr(last, "forward", real)
        with torch.no_grad():
            model(s.x)
        monkeypatch.setattr(last, "forward", flaky)
