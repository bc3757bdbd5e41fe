"""Result figures: confusion matrix, mistakes gallery, forecasts, per-class bars."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlcore.viz import confusion_figure, forecast_figure, mistakes_gallery, per_class_figure


def test_confusion_figure_colours_by_share_of_the_true_class_and_prints_counts():
    cm = np.array([[8, 2], [1, 3]])
    fig = confusion_figure(cm, ["cat", "dog"])
    z = np.asarray(fig.data[0].z)
    np.testing.assert_allclose(z, [[0.8, 0.2], [0.25, 0.75]])
    assert np.asarray(fig.data[0].text).tolist() == [[8, 2], [1, 3]]
    assert list(fig.data[0].x) == ["cat", "dog"] and fig.layout.yaxis.autorange == "reversed"


def test_confusion_figure_counts_mode_empty_rows_and_bad_shapes():
    fig = confusion_figure(np.array([[0, 0], [2, 2]]), normalize=False)
    assert np.asarray(fig.data[0].z).tolist() == [[0, 0], [2, 2]]
    assert list(fig.data[0].x) == ["0", "1"]
    assert np.asarray(confusion_figure(np.array([[0, 0], [2, 2]])).data[0].z)[0].tolist() == [0, 0]
    with pytest.raises(ValueError, match="square"):
        confusion_figure(np.zeros((2, 3)))


def test_mistakes_gallery_captions_say_true_predicted_and_confidence():
    fig = mistakes_gallery(np.zeros((2, 1, 4, 4)), ["3", "7"], ["5", "1"], [0.9, 0.55])
    assert [a.text for a in fig.layout.annotations] == ["3 → 5 (90%)", "7 → 1 (55%)"]


def test_forecast_figure_draws_actual_predicted_and_error():
    t, p = np.array([[1.0, 2.0], [2.0, 3.0]]), np.array([[1.5, 2.0], [1.0, 3.0]])
    fig = forecast_figure(t, p, horizon_step=0)
    assert [tr.name for tr in fig.data] == ["actual", "predicted", "absolute error"]
    assert list(fig.data[2].y) == [0.5, 1.0]


def test_per_class_figure_bars():
    table = pd.DataFrame({"class": ["a", "b"], "recall": [0.5, 1.0]})
    fig = per_class_figure(table)
    assert list(fig.data[0].y) == [0.5, 1.0] and list(fig.data[0].text) == ["50%", "100%"]
