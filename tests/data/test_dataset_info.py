"""DatasetInfo's facts computed from the data are typed fields (no dict read by string key), and ``n_train``
counts what training reads: after max_train and the validation split, for built-in sets and uploads alike."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import dlcore
from dlcore import DataSpec, DatasetInfo, dataset_info, load_dataset
from dlcore.data.base import n_train_after
from dlcore.data.user import datasets_dir


@pytest.mark.parametrize("spec", [DataSpec(name="digits", max_train=500, val_fraction=0.2),
                                  DataSpec(name="digits", val_fraction=0.0),
                                  DataSpec(name="reverse", max_train=300, seq_len=5),
                                  DataSpec(name="sunspots", val_fraction=0.25)],
                         ids=["digits-max-train", "digits-no-val", "reverse", "sunspots-in-time-order"])
def test_n_train_counts_the_examples_training_reads(spec):
    ds = load_dataset(spec)
    assert ds.info.n_train == len(ds.train[0]) == ds.sizes()["train"]
    assert dataset_info(spec).n_train == ds.info.n_train


def test_max_train_and_validation_lower_n_train():
    full = load_dataset(DataSpec(name="digits", val_fraction=0.1)).info.n_train
    cut = load_dataset(DataSpec(name="digits", max_train=500, val_fraction=0.2)).info.n_train
    assert (full, cut) == (1437 - 144, 400)
    assert n_train_after(1437, 500, 0.2) == 400 and n_train_after(3, 0, 0.1) == 2  # at least one held out


def test_the_facts_from_the_data_are_typed_fields_marked_as_such():
    marked = {f.name for f in dataclasses.fields(DatasetInfo) if f.metadata.get("from_data")}
    assert marked == {"n_train", "pixel_mean", "pixel_std", "target_mean", "target_std", "series", "test_start",
                      "features", "feature_mean", "feature_std", "expected_attention"}
    assert not hasattr(DatasetInfo, "extra") and "extra" not in {f.name for f in dataclasses.fields(DatasetInfo)}
    mnist = load_dataset(DataSpec(name="mnist5k")).info
    assert 0.1 < mnist.pixel_mean < 0.2 and 0.2 < mnist.pixel_std < 0.4
    assert load_dataset(DataSpec(name="reverse", max_train=50)).info.expected_attention == "reverse"
    sun = load_dataset(DataSpec(name="sunspots")).info
    assert isinstance(sun.series, tuple) and 0 < sun.test_start < len(sun.series)
    assert sun.target_mean == pytest.approx(np.mean(sun.series[: sun.test_start]))
    # two cuts of one dataset describe the same dataset
    assert load_dataset(DataSpec(name="digits", max_train=100)).info == load_dataset(DataSpec(name="digits")).info


def _table() -> bytes:
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [f"{x:.3f},{y:.3f},{'yes' if x > y else 'no'}" for x, y in rng.normal(size=(40, 2))]
    return "\n".join(rows).encode()


def test_an_upload_reports_its_features_and_n_train_for_the_spec(fresh_dir):
    info = dlcore.import_table_csv(_table(), name="pairs")
    assert info.features == ("a", "b") and len(info.feature_mean) == len(info.feature_std) == 2
    spec = DataSpec(name=info.name, max_train=20, val_fraction=0.25)
    ds = load_dataset(spec)
    assert dataset_info(spec).n_train == ds.info.n_train == len(ds.train[0]) == 15
    assert dataset_info(info.name).features == ("a", "b")


def test_an_upload_saved_with_the_old_extra_dict_still_loads(fresh_dir):
    info = dlcore.import_table_csv(_table(), name="old")
    path = datasets_dir() / info.name / "info.json"
    meta = json.loads(path.read_text())
    for k in ("n_train", "pixel_mean", "pixel_std", "target_mean", "target_std", "series", "test_start",
              "features", "feature_mean", "feature_std", "expected_attention"):
        meta.pop(k)
    meta["extra"] = {"features": ["a", "b"], "mean": [0.1, 0.2], "std": [1.0, 2.0]}
    path.write_text(json.dumps(meta))
    old = dataset_info(info.name)
    assert (old.features, old.feature_mean, old.feature_std) == (("a", "b"), (0.1, 0.2), (1.0, 2.0))
    assert load_dataset(DataSpec(name=info.name)).info.n_train > 0
