"""dlcore.evaluation: predictions of a stored run, and the pure functions on them (checked by hand and
against the trainer's own test metric)."""
from __future__ import annotations

import numpy as np
import pytest

import dlcore
from dlcore import evaluation
from dlcore.data.base import DatasetInfo
from dlcore.train.worker import run_job


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny CNN trained one epoch on digits, in this process (no job process needed)."""
    store = dlcore.RunStore(tmp_path_factory.mktemp("eval-store"))
    cfg = dlcore.get_preset("cnn-tiny").replace(padding="same")
    rid = store.create(dlcore.DataSpec(name="digits"), cfg, dlcore.TrainSpec(epochs=1, seed=1234))
    assert run_job(rid, store) == "completed"
    return store, rid


def _info(**kw) -> DatasetInfo:
    base = dict(name="t", title="t", description="", task="image-classification", input_kind="image",
                input_shape=(1, 2, 2), num_outputs=3)
    return DatasetInfo(**{**base, **kw})


def test_test_predictions_agree_with_the_trainers_test_accuracy(trained):
    store, rid = trained
    p = evaluation.test_predictions(rid, store)
    run = store.get(rid)
    assert p.x.shape == (360, 1, 8, 8) and p.y_true.shape == p.y_pred.shape == p.confidence.shape == (360,)
    assert p.accuracy() == pytest.approx(run.summary["test_accuracy"], abs=1e-9)
    import torch

    _, model = dlcore.load_run_model(rid, store)  # confidence: the stored model's probability of its prediction
    with torch.no_grad():
        probs = model(torch.as_tensor(p.x))[0].softmax(-1).numpy()
    np.testing.assert_array_equal(p.y_pred, probs.argmax(-1))
    np.testing.assert_allclose(p.confidence, probs.max(-1), rtol=1e-5)
    cm = evaluation.confusion(p.y_true, p.y_pred, 10)
    assert cm.sum() == 360 and np.trace(cm) == int((p.y_true == p.y_pred).sum())


def test_test_predictions_without_a_checkpoint_is_a_clear_error(trained):
    store, _ = trained
    rid = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("cnn-tiny"), dlcore.TrainSpec())
    with pytest.raises(dlcore.CheckpointError, match="no checkpoint"):
        evaluation.test_predictions(rid, store)
    with pytest.raises(dlcore.RunNotFound):
        evaluation.test_predictions("20000101-000000-abcdef", store)


def test_outputs_to_predictions_classification_per_step_and_regression():
    logits = np.array([[0.0, 2.0, 0.0], [5.0, 0.0, 0.0]])
    pred, conf = evaluation.outputs_to_predictions(logits, "ce")
    assert pred.tolist() == [1, 0]
    np.testing.assert_allclose(conf, [np.exp(2) / (np.exp(2) + 2), np.exp(5) / (np.exp(5) + 2)])
    seq = np.zeros((2, 4, 3))
    seq[..., 2] = 1.0
    pred, conf = evaluation.outputs_to_predictions(seq, "ce")
    assert pred.shape == (2, 4) and (pred == 2).all()
    values, none = evaluation.outputs_to_predictions(np.ones((5, 1)), "mse", (5,))
    assert values.shape == (5,) and none is None
    with pytest.raises(ValueError):
        evaluation.outputs_to_predictions(logits, "hinge")


def test_softmax_is_stable_for_large_logits():
    p = evaluation.softmax(np.array([1000.0, 1000.0]))
    np.testing.assert_allclose(p, [0.5, 0.5])


def test_confusion_matches_a_hand_count_and_keeps_absent_classes():
    t = np.array([0, 0, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 2, 0, 2])
    ref = np.zeros((4, 4), int)
    np.add.at(ref, (t, p), 1)
    np.testing.assert_array_equal(evaluation.confusion(t, p, 4), ref)
    with pytest.raises(ValueError, match="differ in size"):
        evaluation.confusion(t, p[:3], 4)


def test_per_class_precision_recall_f1():
    cm = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    table = evaluation.per_class(cm, ["a", "b", "c"])
    assert table["class"].tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(table["precision"], [8 / 9, 3 / 5, 0.0])
    np.testing.assert_allclose(table["recall"], [0.8, 0.75, 0.0])
    np.testing.assert_allclose(table["f1"][:2], [2 * (8 / 9) * 0.8 / (8 / 9 + 0.8), 2 * 0.6 * 0.75 / 1.35])
    assert table["support"].tolist() == [10, 4, 0]


def test_misclassified_orders_most_confident_mistakes_first():
    p = evaluation.Predictions("r", _info(), np.zeros((5, 1, 2, 2)), np.array([0, 1, 2, 0, 1]),
                               np.array([0, 2, 1, 1, 1]), np.array([0.9, 0.6, 0.95, 0.7, 0.8]))
    assert evaluation.misclassified(p).tolist() == [2, 3, 1]
    assert evaluation.misclassified(p, limit=1).tolist() == [2]
    assert p.accuracy() == pytest.approx(0.4)


def test_misclassified_per_step_counts_wrong_tokens_first():
    info = _info(task="seq2seq", input_kind="tokens", input_shape=(3,))
    y = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3]])
    pred = np.array([[1, 2, 0], [0, 0, 3], [1, 2, 3]])
    conf = np.array([[0.5, 0.5, 0.99], [0.6, 0.6, 0.5], [0.9, 0.9, 0.9]])
    p = evaluation.Predictions("r", info, y, y, pred, conf)
    assert p.wrong().tolist() == [True, True, False]
    assert evaluation.misclassified(p).tolist() == [1, 0]  # two wrong tokens beat one confident one


def test_regression_helpers_denormalise():
    info = _info(task="forecasting", input_kind="sequence", metric="mae", target_mean=10.0, target_std=2.0)
    p = evaluation.Predictions("r", info, np.zeros((2, 3, 1)), np.array([0.0, 1.0]), np.array([0.5, 1.0]), None)
    assert evaluation.denormalize([0.0, 1.0], info).tolist() == [10.0, 12.0]
    assert evaluation.forecast_mae(p) == pytest.approx(0.5)
    assert not p.is_classification and np.isnan(p.accuracy())
    with pytest.raises(ValueError, match="regression"):
        p.wrong()
