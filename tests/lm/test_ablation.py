"""Head knock-out on a trained reverse model: no head = no change; the heads that carry the pattern matter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcore.inspect._hooks import hook_count
from dlcore.inspect.ablation import (ablate, ablated_metric, evaluate_metric, head_knockout, head_means,
                                     heads_ablated, mean_pattern_scores, parse_heads)
from dlcore.specs import SpecError


def test_the_fixture_learned_reverse(reverse_model):
    model, ds = reverse_model
    assert evaluate_metric(model, *ds.test, ds.info)["token_accuracy"] > 0.95


def test_ablating_no_head_changes_nothing(reverse_model):
    model, ds = reverse_model
    x, y = ds.test
    plain = evaluate_metric(model, x, y, ds.info)
    assert ablated_metric(model, [], x, y, ds.info) == plain
    result = ablate(model, [], data=(x, y), info=ds.info)
    assert result["before"] == result["after"] == plain["token_accuracy"] and result["drop"] == 0


def test_ablating_the_pattern_heads_drops_accuracy(reverse_model):
    model, ds = reverse_model
    x, y = ds.test
    scores = mean_pattern_scores(model, x[:256], ds.info)  # (layers, heads)
    assert scores.shape == (2, 4)
    pattern = [(int(a), int(b)) for a, b in np.argwhere(scores > 0.5)]
    others = [(int(a), int(b)) for a, b in np.argwhere(scores <= 0.5)]
    assert pattern and others  # this seed: the four heads of layer 1 read the anti-diagonal, layer 2's do not
    before = evaluate_metric(model, x, y, ds.info)["token_accuracy"]
    assert ablated_metric(model, pattern, x, y, ds.info)["token_accuracy"] < 0.3  # chance is 0.1
    assert ablated_metric(model, others, x, y, ds.info)["token_accuracy"] > before - 0.05


def test_hooks_change_the_forward_and_are_removed(reverse_model):
    model, ds = reverse_model
    x = ds.test[0][:16]
    n = hook_count(model)
    with torch.no_grad():
        plain = model(x)[0]
        with heads_ablated(model, [(0, 0), (1, 2)]):
            assert hook_count(model) == n + 2
            knocked = model(x)[0]
        means = head_means(model, ds.train[0][:256])
        with heads_ablated(model, [(0, 0)], mode="mean", means=means):
            mean_knocked = model(x)[0]
    assert hook_count(model) == n
    assert not torch.allclose(plain, knocked) and not torch.allclose(plain, mean_knocked)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], plain)
    with pytest.raises(RuntimeError):
        with heads_ablated(model, [(0, 1)]):
            raise RuntimeError("boom")
    assert hook_count(model) == n


def test_table_lists_every_head(reverse_model):
    model, ds = reverse_model
    x, y = ds.test[0][:400], ds.test[1][:400]
    k = head_knockout(model, x, y, ds.info)
    t = k.table
    assert list(t["head"]) == [f"{layer}.{h}" for layer in (1, 2) for h in (1, 2, 3, 4)]
    assert k.metric == "token_accuracy" and k.before > 0.95
    np.testing.assert_allclose(t["drop"], k.before - t["token_accuracy"])
    # the head that follows the pattern best can do the task alone in its layer; a head without it cannot
    first = t[t["layer"] == 0]
    assert first.loc[first["pattern_score"].idxmax(), "alone"] > 0.9
    mean = head_knockout(model, x, y, ds.info, mode="mean", reference=ds.train[0][:512])
    assert mean.mode == "mean" and len(mean.table) == 8


def test_heads_are_parsed_and_checked(reverse_model):
    model, _ = reverse_model
    assert parse_heads("1.2, 2.4", model) == [(0, 1), (1, 3)]
    with pytest.raises(SpecError, match="LAYER.HEAD"):
        parse_heads("1-2")
    with pytest.raises(SpecError, match="2 layers × 4 heads"):
        parse_heads("3.1", model)
    with pytest.raises(SpecError, match="mode"):
        with heads_ablated(model, [(0, 0)], mode="shuffle"):
            pass
