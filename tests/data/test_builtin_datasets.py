"""The dataset registry: shapes, splits and targets of every built-in set; the optional torchvision sets."""
from __future__ import annotations

import functools
import sys
import types

import numpy as np
import pytest
import torch

from dlcore import TASKS, DataError, DataSpec, dataset_info, dataset_names, load_dataset
from dlcore.data import BUILTIN, TV_SETS


@functools.lru_cache(maxsize=None)
def _load(name: str, **kw):
    return load_dataset(DataSpec(name=name, **kw))


def _load_spec(**kw):
    return _load(kw.pop("name"), **kw)


SMALL = {"reverse": {"max_train": 200}, "sort": {"max_train": 200}, "sentiment-synth": {"max_train": 200}}


@pytest.mark.parametrize("name", list(BUILTIN))
def test_every_builtin_set_matches_its_description(name):
    ds = _load_spec(name=name, **SMALL.get(name, {}))
    info = ds.info
    assert info.name == name and info.task in TASKS and info.title and info.description and info.source
    for split in ("train", "val", "test"):
        x, y = getattr(ds, split)
        assert len(x) == len(y) > 0, split
        assert tuple(x.shape[1:]) == info.input_shape, split
        if info.input_kind == "tokens":
            assert x.dtype == torch.long and 0 <= x.min() and x.max() < len(info.vocab)
        else:
            assert x.dtype == torch.float32 and torch.isfinite(x).all()
        if info.loss == "ce":
            assert y.dtype == torch.long and 0 <= y.min() and y.max() < info.num_outputs
            if info.per_step:
                assert y.shape == x.shape[:2]
            if info.class_names:
                assert len(info.class_names) == info.num_outputs
        else:
            assert y.dtype == torch.float32 and y.shape == (len(x), info.num_outputs)
    assert ds.sizes() == {k: len(getattr(ds, k)[0]) for k in ("train", "val", "test")}


def test_mnist5k_has_a_fixed_4000_1000_split():
    ds = _load("mnist5k")
    assert ds.sizes() == {"train": 3600, "val": 400, "test": 1000}
    # n_train counts what training reads: the 4,000 less the validation cut (the fit check's time estimate uses it)
    assert ds.info.input_shape == (1, 28, 28) and ds.info.n_train == 3600
    assert 0.0 <= float(ds.train[0].min()) and float(ds.train[0].max()) <= 1.0
    other = _load("mnist5k", seed=5, val_fraction=0.2)
    # the test set never moves; only the validation cut of the 4,000 training images depends on the seed
    assert torch.equal(other.test[0], ds.test[0]) and torch.equal(other.test[1], ds.test[1])
    assert other.sizes() == {"train": 3200, "val": 800, "test": 1000}

    def rows(*parts):
        return {tuple(t.flatten()[::7].tolist()) for t in torch.cat(parts)}

    assert rows(ds.train[0], ds.val[0]) == rows(other.train[0], other.val[0])
    assert not rows(ds.train[0], ds.val[0]) & rows(ds.test[0])
    assert torch.bincount(ds.test[1], minlength=10).min() > 50  # every digit is in the test set


def test_mnist_rows_are_the_same_digits_read_row_by_row():
    img, rows = _load("mnist5k"), _load("mnist-rows")
    assert rows.info.input_shape == (28, 28) and rows.info.input_kind == "sequence"
    assert torch.equal(rows.test[0], img.test[0][:, 0]) and torch.equal(rows.test[1], img.test[1])


def test_digits_split():
    ds = _load("digits")
    assert ds.sizes()["test"] == 360 and ds.sizes()["train"] + ds.sizes()["val"] == 1797 - 360
    assert ds.info.input_shape == (1, 8, 8)


def test_validation_split_is_seeded_and_max_train_caps_the_training_set():
    a, b, c = _load("digits", seed=1), _load("digits", seed=1, val_fraction=0.1), _load("digits", seed=2)
    assert torch.equal(a.val[0], b.val[0])
    assert not torch.equal(a.val[0], c.val[0])
    small = _load("digits", max_train=100, val_fraction=0.2)
    assert small.sizes()["train"] == 80 and small.sizes()["val"] == 20 and small.sizes()["test"] == 360
    none = _load("digits", val_fraction=0.0)
    assert none.sizes()["val"] == 0 and none.sizes()["train"] == 1437


@pytest.mark.parametrize("name,fn", [("reverse", lambda x: x.flip(1)), ("sort", lambda x: x.sort(1).values)])
def test_algorithmic_targets_are_exact(name, fn):
    ds = _load(name, seq_len=5, max_train=300)
    assert ds.info.input_shape == (5,) and ds.info.metric == "token_accuracy" and ds.info.per_step
    for x, y in (ds.train, ds.val, ds.test):
        assert torch.equal(y, fn(x))
    assert ds.sizes() == {"train": 270, "val": 30, "test": 1000}
    again = _load(name, seq_len=5, max_train=300, val_fraction=0.1)
    assert torch.equal(ds.test[0], again.test[0])
    other = load_dataset(DataSpec(name=name, seq_len=5, max_train=300, seed=3))
    assert not torch.equal(ds.test[0], other.test[0])


@pytest.mark.parametrize("name", ["sunspots", "co2"])
def test_forecasting_windows_follow_the_series_in_time_order(name):
    ds = _load(name, window=10, horizon=3, val_fraction=0.1)
    info = ds.info
    assert info.task == "forecasting" and info.input_shape == (10, 1) and info.num_outputs == 3
    assert info.metric == "mae" and info.loss == "mse"
    z = (np.asarray(info.series) - info.target_mean) / info.target_std
    xs = torch.cat([ds.train[0], ds.val[0]])[:, :, 0].numpy()
    ys = torch.cat([ds.train[1], ds.val[1]]).numpy()
    for i in (0, len(xs) // 2, len(xs) - 1):  # window i reads z[i:i+10] and predicts z[i+10:i+13]
        np.testing.assert_allclose(xs[i], z[i: i + 10], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ys[i], z[i + 10: i + 13], rtol=1e-5, atol=1e-5)
    # the test windows start after every training target, so nothing of the future leaks into training
    first_test = ds.test[0][0, :, 0].numpy()
    start = next(i for i in range(len(z) - 10) if np.allclose(z[i: i + 10], first_test, atol=1e-5))
    assert start >= len(xs) + 10 + 3 - 1
    assert start == info.test_start  # the engine says where the test part starts; pages do not re-derive it
    # normalised with the training span's statistics: the training part has mean ~0, std ~1
    assert abs(float(ds.train[0].mean())) < 0.5


def test_a_window_longer_than_the_series_is_a_data_error():
    with pytest.raises(DataError, match="too short"):
        load_dataset(DataSpec(name="sunspots", window=1024))


def test_sentiment_labels_follow_the_negation_rule():
    ds = _load("sentiment-synth", max_train=200)
    vocab = ds.info.vocab
    pos = {"good", "great", "wonderful", "brilliant", "moving", "funny", "charming", "superb", "delightful", "fresh"}
    checked = 0
    for x, y in zip(*ds.test):
        text = "".join(vocab[i] for i in x.tolist() if i)
        words = text.split()
        adjective = next(w for w in words if w in pos or w in
                         {"bad", "dull", "boring", "awful", "clumsy", "weak", "tedious", "bland", "messy", "stale"})
        expected = (adjective in pos) != ("not" in words)
        assert int(y) == int(expected), text
        checked += 1
    assert checked == 1000 and ds.info.class_names == ("negative", "positive")
    assert 0.35 < float(ds.test[1].float().mean()) < 0.65


def test_char_lm_targets_are_the_inputs_shifted_by_one():
    ds = _load("pydoc-lm", window=16)
    x, y = ds.train
    assert ds.info.input_shape == (16,) and ds.info.num_outputs == len(ds.info.vocab)
    assert torch.equal(x[:, 1:], y[:, :-1])
    from pydoc_data.topics import topics

    corpus = "\n".join(topics[k] for k in sorted(topics))
    for row in (x[0], ds.test[0][-1]):
        assert "".join(ds.info.vocab[i] for i in row.tolist()) in corpus


def test_unknown_dataset_is_a_data_error_listing_the_known_ones():
    with pytest.raises(DataError) as err:
        load_dataset(DataSpec(name="imagenet"))
    assert "imagenet" in str(err.value) and "mnist5k" in str(err.value)


def test_registry_lists_builtin_and_optional_sets():
    names = dataset_names()
    assert set(BUILTIN) <= set(names) and set(TV_SETS) <= set(names)
    assert dataset_info("digits").input_shape == (1, 8, 8)


# ---------------------------------------------------------------- optional torchvision sets, offline
@pytest.fixture
def no_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import raises ImportError


@pytest.fixture
def offline_torchvision(monkeypatch):
    """A stand-in torchvision whose datasets fail the way a download does on a machine without network."""
    from urllib.error import URLError

    class _Offline:
        def __init__(self, *a, **kw):
            raise URLError("[Errno -3] Temporary failure in name resolution")

    datasets = types.SimpleNamespace(MNIST=_Offline, FashionMNIST=_Offline, CIFAR10=_Offline)
    tv = types.ModuleType("torchvision")
    tv.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


@pytest.mark.parametrize("name", list(TV_SETS))
def test_torchvision_set_without_torchvision_says_how_to_get_it(name, no_torchvision, fresh_dir):
    with pytest.raises(DataError) as err:
        load_dataset(DataSpec(name=name))
    assert "torchvision" in str(err.value) and "mnist5k" in str(err.value)


@pytest.mark.parametrize("name", list(TV_SETS))
def test_torchvision_set_offline_is_a_clear_data_error(name, offline_torchvision, fresh_dir):
    with pytest.raises(DataError) as err:
        load_dataset(DataSpec(name=name))
    assert "offline" in str(err.value) and "mnist5k" in str(err.value)
