"""Figure builders of dlcore.viz.attribution for every input kind."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from dlcore.viz import attribution as va


def test_panels_for_every_input_kind():
    rng = np.random.default_rng(0)
    panels = [va.Panel("img", rng.random((8, 8)), rng.normal(size=(8, 8)), "image", caption="AUC 0.1"),
              va.Panel("tok", np.arange(5), rng.normal(size=5), "tokens", labels=list("abcde")),
              va.Panel("seq", rng.random((6, 1)), rng.normal(size=(6, 1)), "sequence"),
              va.Panel("tab", rng.random(4), np.abs(rng.normal(size=4)), "tabular", labels=["w", "x", "y", "z"])]
    fig = va.attribution_panels(panels, title="t")
    kinds = [t.type for t in fig.data]
    assert kinds == ["heatmap", "heatmap", "bar", "scatter", "scatter", "bar"]
    assert fig.layout.xaxis.title.text.endswith("AUC 0.1")  # the caption sits under its own panel, as its axis title
    img_overlay = fig.data[1]
    assert img_overlay.zmin == -img_overlay.zmax  # signed map: symmetric diverging scale
    assert fig.data[5].marker.color is not None and fig.data[5].orientation == "h"
    with pytest.raises(ValueError):
        va.attribution_panels([])


def test_unsigned_maps_use_a_one_sided_scale_and_multichannel_sequences_a_heatmap():
    p = va.Panel("abs", np.zeros((4, 4)), np.abs(np.random.default_rng(0).normal(size=(4, 4))), "image")
    fig = va.attribution_figure(p)
    assert fig.data[1].zmin == 0 and fig.data[1].showscale
    seq = va.attribution_figure(va.Panel("s", np.zeros((5, 3)), np.ones((5, 3)), "sequence"))
    assert [t.type for t in seq.data] == ["heatmap", "heatmap"]


def test_curves_sanity_and_probabilities():
    fr = np.linspace(0, 1, 5)
    c = {"fractions": fr, "deletion": 1 - fr, "insertion": fr, "random_deletion": 1 - fr / 2,
         "random_insertion": fr / 2, "deletion_auc": 0.5, "insertion_auc": 0.5}
    fig = va.curves_figure({"IG": c, "Saliency": c})
    assert len(fig.data) == 6 and fig.data[0].name == "IG (AUC 0.500)"
    s = va.sanity_figure(["head", "body"], {"IG": [0.5, 0.1]})
    assert list(s.data[0].y) == [1.0, 0.5, 0.1] and list(s.data[0].x) == ["trained", "→ head", "→ body"]
    maps = va.sanity_maps(np.zeros((4, 4)), np.ones((4, 4)), [np.ones((4, 4))] * 2, ["head", "body"], "image",
                          similarity=[0.5, 0.1])
    assert "ρ 0.10" in maps.layout.annotations[2].text
    p = va.probabilities_figure(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], true=2)
    assert list(p.data[0].y) == ["b", "c", "a"] and isinstance(p.data[0], go.Bar)
