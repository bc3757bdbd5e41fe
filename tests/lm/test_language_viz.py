"""Figures of the language-model page, built from the engine's own outputs."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dlcore.generation import next_token_distribution
from dlcore.inspect.ablation import head_knockout
from dlcore.inspect.lens import logit_lens
from dlcore.viz.language import knockout_figure, logit_lens_figure, next_token_figure, shown_token


def test_next_token_figure_marks_what_the_cut_removes(lm):
    model, info = lm
    tokens, before, after = next_token_distribution(model, info, "abc", temperature=1.5, top_k=3)
    fig = next_token_figure(tokens, before, after, n=8)
    assert isinstance(fig, go.Figure) and [len(t.x) for t in fig.data] == [8, 8]
    assert [a.text for a in fig.layout.annotations].count("cut") == 5  # 8 shown, 3 kept
    np.testing.assert_allclose(fig.data[1].y, after[:8])
    assert shown_token(" ") == "␣" and shown_token("\n") == "⏎"


def test_logit_lens_figure_is_a_layer_by_position_grid(lm):
    model, info = lm
    ids = [info.vocab.index(c) for c in "abc de"]
    lens = logit_lens(model, ids, info)
    fig = logit_lens_figure(lens.top_probs, lens.top_tokens, lens.rows, list("abc de"))
    z = np.asarray(fig.data[0].z)
    assert z.shape == (2, 6) and list(fig.data[0].y) == ["block 1", "block 2"]
    assert fig.data[0].x[3] == "3:␣"


def test_knockout_figure_has_one_series_per_layer_and_panel(reverse_model):
    model, ds = reverse_model
    k = head_knockout(model, ds.test[0][:200], ds.test[1][:200], ds.info)
    fig = knockout_figure(k.table, k.metric, k.before)
    assert len(fig.data) == 4  # 2 layers × 2 panels
    assert sorted(sum((list(t.text) for t in fig.data[:2]), [])) == sorted(k.table["head"])
