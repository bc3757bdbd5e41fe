"""Typed text: the dataset's own tokenizer, prediction + attention + Integrated Gradients, deletion, edit-compare."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dlcore
from dlcore.data.base import DataError
from dlcore.data.tokens import decode_tokens, encode_text
from dlcore.inspect._hooks import hook_count
from dlcore.inspect.typed import compare_texts, explain_text
from dlcore.models import build_model


@pytest.fixture(scope="module")
def sentiment():
    """(random encoder classifier fitted to sentiment-synth's shapes, its dataset)."""
    ds = dlcore.load_dataset(dlcore.DataSpec(name="sentiment-synth", max_train=200))
    cfg = dlcore.for_data(dlcore.TransformerConfig(kind="encoder", d_model=16, n_heads=2, n_layers=2, d_ff=32), ds.info)
    torch.manual_seed(0)
    return build_model(cfg).eval(), ds


def test_encoding_matches_the_training_data(sentiment):
    _, ds = sentiment
    info = ds.info
    for row in ds.test[0][:20]:
        text = decode_tokens(info, row.tolist())
        assert encode_text(info, text) == row.tolist()
    rev = dlcore.load_dataset(dlcore.DataSpec(name="reverse", max_train=50))
    row = rev.test[0][0].tolist()
    assert encode_text(rev.info, decode_tokens(rev.info, row)) == row


def test_encoding_errors_name_the_problem(sentiment):
    _, ds = sentiment
    with pytest.raises(DataError, match="'T'.*lower case"):
        encode_text(ds.info, "The film was good")
    with pytest.raises(DataError, match="at most"):
        encode_text(ds.info, "good " * 100)
    rev = dlcore.load_dataset(dlcore.DataSpec(name="reverse", max_train=50))
    with pytest.raises(DataError, match="exactly 8"):
        encode_text(rev.info, "123")
    with pytest.raises(DataError, match="'x'"):
        encode_text(rev.info, "1234567x")


def test_explain_text_classifier(sentiment):
    model, ds = sentiment
    n = hook_count(model)
    r = explain_text(model, ds.info, "the film was not good", n_steps=64)
    assert hook_count(model) == n
    assert r.n_text == 21 and r.tokens == list("the film was not good") and r.attributions.shape == (21,)
    assert r.prediction in ds.info.class_names and r.probs.sum() == pytest.approx(1.0)
    assert r.target_prob == pytest.approx(r.probs.max())
    L, H = model.config.n_layers, model.config.n_heads
    assert r.attention.shape == (L, H, len(r.ids), len(r.ids))
    # Integrated Gradients is complete: the attributions add up to logit(text) - logit(all padding)
    with torch.no_grad():
        logits = model(torch.as_tensor(np.stack([r.ids, np.zeros_like(r.ids)])))[0][:, r.target]
    assert r.attributions.sum() == pytest.approx(float(logits[0] - logits[1]), abs=2e-3)
    assert r.convergence_delta < 2e-3
    assert r.baseline_token == "␀"
    # deletion: the full text first, the baseline text last
    assert r.fractions[0] == 0 and r.fractions[-1] == 1 and r.deletion[0] == pytest.approx(r.target_prob)
    assert r.deletion[-1] == pytest.approx(r.random_deletion[-1])
    # insertion runs the other way: from the baseline text to the full text
    assert r.insertion[0] == pytest.approx(r.deletion[-1]) and r.insertion[-1] == pytest.approx(r.target_prob)
    assert set(r.curves()) >= {"fractions", "deletion", "insertion", "deletion_auc", "insertion_auc"}


def test_compare_texts_explains_the_same_output(sentiment):
    model, ds = sentiment
    c = compare_texts(model, ds.info, "the film was not good", "the film was good", n_steps=16)
    assert c.after.target == c.before.target and c.after.n_text == 17
    assert c.prob_change == pytest.approx(c.after.target_prob - c.before.target_prob)


def test_language_model_explains_the_next_character(lm):
    model, info = lm
    r = explain_text(model, info, "abc de", n_steps=16)
    assert r.position == 5 and r.baseline_token == " " and r.prediction in info.vocab
    with torch.no_grad():
        own = torch.softmax(model(torch.as_tensor(r.ids[None]))[0][0, -1].double(), -1).numpy()
    np.testing.assert_allclose(r.probs, own, rtol=1e-6)
    assert r.attributions[3] == 0.0  # the space is the baseline: no attribution, as IG defines it


def test_reverse_output_and_attribution(reverse_model):
    model, ds = reverse_model
    r = explain_text(model, ds.info, "31415926", position=0, n_steps=32)
    assert r.prediction == "62951413"
    # output position 0 reads the last input: it gets the largest attribution
    assert int(np.argmax(np.abs(r.attributions))) == 7
    assert r.deletion_auc < r.random_deletion_auc and r.insertion_auc > r.random_insertion_auc


def test_language_model_reads_the_last_characters_of_a_long_text(lm):
    model, info = lm
    r = explain_text(model, info, "abcdefgh" * 4, n_steps=8)
    assert r.text == ("abcdefgh" * 4)[-16:] and r.n_text == 16 and r.position == 15
