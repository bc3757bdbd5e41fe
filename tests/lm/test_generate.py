"""Generation: cache = no cache, greedy and the sampling cut, the distribution for the UI, typed errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcore.data.base import DataError
from dlcore.generation import cut_distribution, generate, next_token_distribution, sampling_spec
from dlcore.specs import SpecError


@pytest.mark.parametrize("temperature,top_k,top_p", [(0.0, 0, 1.0), (1.0, 0, 1.0), (0.8, 5, 0.9)])
def test_cache_gives_the_same_tokens_and_distributions(lm, temperature, top_k, top_p):
    model, info = lm
    # 30 tokens from a 4-character prompt: the 16-position context fills and then slides
    kw = dict(max_new_tokens=30, temperature=temperature, top_k=top_k, top_p=top_p, seed=3, info=info)
    cached, plain = generate(model, "abc ", use_cache=True, **kw), generate(model, "abc ", use_cache=False, **kw)
    assert cached.text == plain.text and len(cached.text) == 30
    for a, b in zip(cached.steps, plain.steps):
        assert [t for t, _ in a.top] == [t for t, _ in b.top]
        np.testing.assert_allclose([p for _, p in a.top], [p for _, p in b.top], rtol=1e-5, atol=1e-7)
        assert a.model_prob == pytest.approx(b.model_prob, rel=1e-5, abs=1e-7)


def test_greedy_picks_the_model_argmax_and_is_deterministic(lm):
    model, info = lm
    g = generate(model, "ab", max_new_tokens=12, temperature=0, info=info)
    assert generate(model, "ab", max_new_tokens=12, temperature=0, seed=99, info=info).text == g.text
    with torch.no_grad():
        ids = list(g.ids[: g.n_prompt])
        for step in g.steps:
            logits = model(torch.tensor([ids[-16:]]))[0][0, -1]
            assert step.token_id == int(logits.argmax())
            assert step.top == ((step.token, 1.0),)  # all the mass on the chosen token
            ids.append(step.token_id)
    top1 = generate(model, "ab", max_new_tokens=12, temperature=1.0, top_k=1, seed=5, info=info)
    assert top1.text == g.text


def test_every_step_lists_a_sorted_cut_distribution(lm):
    model, info = lm
    g = generate(model, "a", max_new_tokens=20, temperature=1.3, top_k=4, seed=0, info=info)
    for s in g.steps:
        probs = [p for _, p in s.top]
        assert 1 <= len(probs) <= 4 and probs == sorted(probs, reverse=True)
        assert sum(probs) == pytest.approx(1.0)  # top-k = 4 keeps exactly the listed tokens
        assert s.token in dict(s.top) and dict(s.top)[s.token] == pytest.approx(s.prob)
    d = g.to_dict()
    assert set(d) >= {"prompt", "text", "steps", "tokens_per_s"} and d["text"] == g.text
    assert all(sum(p for _, p in st["top"]) <= 1.0 for st in d["steps"])
    assert g.tokens_per_s > 0


def test_seed_changes_the_sample_and_repeats_it(lm):
    model, info = lm
    a = generate(model, "a", max_new_tokens=25, temperature=2.0, seed=1, info=info).text
    assert generate(model, "a", max_new_tokens=25, temperature=2.0, seed=1, info=info).text == a
    assert generate(model, "a", max_new_tokens=25, temperature=2.0, seed=2, info=info).text != a


def test_cut_semantics():
    logits = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))
    before, after = cut_distribution(logits, sampling_spec(1.0, 0, 1.0))
    np.testing.assert_allclose(before, [0.5, 0.2, 0.15, 0.1, 0.05])
    np.testing.assert_allclose(after, before)
    _, after = cut_distribution(logits, sampling_spec(1.0, 2, 1.0))
    np.testing.assert_allclose(after, [0.5 / 0.7, 0.2 / 0.7, 0, 0, 0])
    # top-p keeps the fewest tokens whose mass reaches p: 0.5 + 0.2 = 0.7 < 0.8, so 0.15 joins
    _, after = cut_distribution(logits, sampling_spec(1.0, 0, 0.8))
    np.testing.assert_allclose(after, [0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0, 0])
    _, after = cut_distribution(logits, sampling_spec(1.0, 0, 0.7))
    np.testing.assert_allclose(after, [0.5 / 0.7, 0.2 / 0.7, 0, 0, 0])
    # temperature: 0.5 squares the odds, a high one flattens towards uniform
    sharp, _ = cut_distribution(logits, sampling_spec(0.5, 0, 1.0))
    p = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    np.testing.assert_allclose(sharp, p ** 2 / (p ** 2).sum())
    flat, _ = cut_distribution(logits, sampling_spec(10.0, 0, 1.0))
    assert flat.max() - flat.min() < 0.1
    greedy, after = cut_distribution(logits, sampling_spec(0.0, 0, 1.0))
    np.testing.assert_array_equal(greedy, [1, 0, 0, 0, 0])


def test_next_token_distribution_shows_what_the_cut_removes(lm):
    model, info = lm
    tokens, before, after = next_token_distribution(model, info, "abc", temperature=1.0, top_k=3)
    assert sorted(tokens) == sorted(info.vocab) and before.sum() == pytest.approx(1.0)
    assert np.all(np.diff(before) <= 1e-12)  # most likely first
    assert np.count_nonzero(after) == 3 and np.all(after[3:] == 0) and after.sum() == pytest.approx(1.0)
    g = generate(model, "abc", max_new_tokens=1, temperature=1.0, top_k=3, info=info)
    assert [t for t, _ in g.steps[0].top] == tokens[:3]


def test_long_prompts_are_cropped_to_the_context(lm):
    model, info = lm
    g = generate(model, "abcdefgh" * 5, max_new_tokens=3, temperature=0, info=info)
    assert g.context_ids(0) == list(g.ids[24:40]) and g.n_prompt == 40


def test_a_full_context_keeps_its_last_half_and_each_step_matches_a_fresh_read(lm):
    model, info = lm
    g = generate(model, "abc ", max_new_tokens=40, temperature=1.0, seed=0, info=info)  # context 16
    lengths = [len(g.context_ids(i)) for i in range(40)]
    assert lengths[:13] == list(range(4, 17))  # grows to the full 16 ...
    assert lengths[13] == 8 and max(lengths) == 16 and min(lengths[13:]) == 8  # ... then restarts from 8
    with torch.no_grad():
        for i, step in enumerate(g.steps):
            ctx = g.context_ids(i)
            assert ctx == list(g.ids[g.n_prompt + i - len(ctx): g.n_prompt + i])
            p = torch.softmax(model(torch.tensor([ctx]))[0][0, -1].double(), -1)
            assert step.model_prob == pytest.approx(float(p[step.token_id]), rel=1e-5, abs=1e-7)


def test_unknown_characters_are_named(lm):
    model, info = lm
    with pytest.raises(DataError, match=r"'Z'.*'€'|'€'.*'Z'"):
        generate(model, "abZ€", max_new_tokens=2, info=info)
    with pytest.raises(DataError, match="at least one"):
        generate(model, "", max_new_tokens=2, info=info)


@pytest.mark.parametrize("kw,field", [({"temperature": -1.0}, "temperature"), ({"top_k": -2}, "top_k"),
                                      ({"top_p": 1.5}, "top_p"), ({"max_new_tokens": -1}, "max_new_tokens")])
def test_bad_parameters_name_their_field(lm, kw, field):
    model, info = lm
    args = {"max_new_tokens": 3, **kw}
    with pytest.raises(SpecError) as e:
        generate(model, "ab", info=info, **args)
    assert e.value.field == field


def test_only_decoders_generate():
    import dlcore
    from dlcore.models import build_model

    enc = build_model(dlcore.TransformerConfig(kind="encoder", vocab_size=13, num_outputs=13, max_len=4, d_model=8,
                                               n_heads=2, n_layers=1, d_ff=8, per_step=True))
    from tests.lm.tiny_lm import lm_info

    with pytest.raises(SpecError, match="language model"):
        generate(enc, "ab", 2, info=lm_info())
