"""The plain values dlcore hands the pages instead of file names, tensors or re-derived facts."""
from __future__ import annotations

import os

import numpy as np

import dlcore


def test_no_checkpoint_is_version_zero(fresh_dir):
    queued = dlcore.RunStore().create(dlcore.DataSpec(name="digits"), dlcore.get_preset("cnn-tiny"),
                                      dlcore.TrainSpec(), name="no checkpoint yet")
    assert dlcore.checkpoint_version(queued) == 0.0 and dlcore.checkpoint_files(queued) is None
    assert dlcore.checkpoint_version("20000101-000000-nosuch") == 0.0


def test_a_new_checkpoint_is_a_new_version(finished_run):
    weights, spec = dlcore.checkpoint_files(finished_run)
    assert weights.suffix == ".safetensors" and spec.suffix == ".json"
    before = dlcore.checkpoint_version(finished_run)
    assert before == weights.stat().st_mtime > 0
    os.utime(weights, (before + 5, before + 5))
    try:
        assert dlcore.checkpoint_version(finished_run) == before + 5
    finally:
        os.utime(weights, (before, before))


def test_dataset_version_changes_only_for_uploads(fresh_dir):
    assert dlcore.dataset_version("digits") == 0.0
    info = dlcore.import_text_corpus(b"hello world, " * 40, name="tiny corpus", window=8)
    assert dlcore.dataset_version(info.name) > 0
    assert dlcore.dataset_version("user-nothing-here") == 0.0


def test_unpadded_length_knows_the_padding_token():
    text = dlcore.dataset_info("sentiment-synth")
    assert dlcore.unpadded_length(text, np.array([5, 3, 0, 0])) == 2
    assert dlcore.unpadded_length(text, np.array([5, 0, 3, 0, 0])) == 3  # a 0 inside the text is not padding
    assert dlcore.unpadded_length(text, np.zeros(4, dtype=np.int64)) == 4
    assert dlcore.unpadded_length(dlcore.dataset_info("reverse"), np.array([3, 0, 0])) == 3  # 0 is a digit there


def test_split_shapes_and_class_counts_are_plain_values():
    ds = dlcore.load_dataset(dlcore.DataSpec(name="digits"))
    rows = ds.split_shapes()
    assert [r["split"] for r in rows] == ["train", "val", "test"]
    assert {r["split"]: r["examples"] for r in rows} == ds.sizes()
    assert rows[0]["input_shape"][1:] == (1, 8, 8) and rows[0]["input_type"] == "float32"
    assert rows[0]["target_type"] == "int64"
    counts = ds.class_counts(10)
    assert {k: sum(v) for k, v in counts.items()} == ds.sizes()
    assert all(isinstance(c, int) and c > 0 for c in counts["train"])
