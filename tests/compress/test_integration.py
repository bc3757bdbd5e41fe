"""Issue 14 wired into the engine: --init-from / --freeze / --classes / --per-class in the specs, the data
registry, the trainer, the job system, prepare_run, the run store's lineage column and the CLI."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
import torch

import dlcore
from dlcore.transfer import output_layer
from tests.compress.tiny import TEACHER, tiny_train

DIGITS = dlcore.DataSpec(name="digits")


def _weights(run_id, store) -> dict[str, torch.Tensor]:
    _, model = dlcore.load_run_model(run_id, store)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _head(run_id, store) -> str:
    _, model = dlcore.load_run_model(run_id, store)
    return output_layer(model)


@pytest.fixture
def jobs_env(store, monkeypatch):
    monkeypatch.setenv("DLE_DATA_DIR", str(store.root))
    monkeypatch.setenv("DLE_WARM_WORKER_IDLE_S", "20")
    return store


def test_class_subset_and_labels_per_class():
    full = dlcore.load_dataset(DIGITS)
    ds = dlcore.load_dataset(DIGITS.replace(classes=(7, 2, 5), per_class=15))
    assert ds.info.num_outputs == 3 and ds.info.class_names == ("7", "2", "5")
    labels = torch.cat([ds.train[1], ds.val[1]])
    assert torch.bincount(labels).tolist() == [15, 15, 15]  # the cap counts validation too
    assert set(ds.test[1].tolist()) == {0, 1, 2}
    assert torch.bincount(ds.test[1]).tolist() == [int((full.test[1] == c).sum()) for c in (7, 2, 5)]
    info = dlcore.dataset_info(DIGITS.replace(classes=(7, 2, 5), per_class=15))
    assert info.num_outputs == 3 and info.n_train == len(ds.train[0])
    only_cap = dlcore.load_dataset(DIGITS.replace(per_class=4))
    assert only_cap.info.num_outputs == 10 and len(only_cap.train[0]) + len(only_cap.val[0]) == 40
    with pytest.raises(dlcore.SpecError, match="class 10"):
        dlcore.load_dataset(DIGITS.replace(classes=(3, 10)))


def test_cli_train_init_from_takes_the_parent_model_and_weights(jobs_env, teacher_run, capsys):
    from dlcore.cli import main

    store, parent = jobs_env, teacher_run[0]
    rc = main(["train", "--init-from", parent, "--freeze", "body", "--classes", "0", "1", "2", "--per-class", "10",
               "--epochs", "2", "--batch-size", "16", "--device", "cpu", "--precision", "fp32", "--seed", "3",
               "--quiet", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    result = json.loads(out.out.strip().splitlines()[-1])
    run = store.get(result["run_id"])
    assert run.status == "completed" and run.parent == parent
    assert run.train.init_from == parent and run.train.freeze == ("body",)
    assert run.data.name == "digits" and run.data.classes == (0, 1, 2) and run.data.per_class == 10
    assert run.model.channels == TEACHER.channels  # no --model: the parent's
    before, after, head = _weights(parent, store), _weights(run.id, store), _head(parent, store)
    assert after[f"{head}.weight"].shape[0] == 3  # a new 3-way output layer
    body = [k for k in before if not k.startswith(head + ".")]
    assert body and all(torch.equal(before[k], after[k]) for k in body)  # frozen: bit-identical


def test_start_run_records_the_parent_and_starts_from_its_weights(jobs_env, teacher_run):
    store, parent = jobs_env, teacher_run[0]
    p = store.get(parent)
    train = tiny_train(1, seed=5, init_from=parent).replace(lr=1e-7)  # a negligible step: the weights stay the parent's
    run_id = dlcore.start_run(p.data, p.model, train, store=store)
    run = dlcore.wait(run_id, timeout=120, store=store)
    assert run.status == "completed", run.error
    assert run.parent == parent
    before, after = _weights(parent, store), _weights(run_id, store)
    assert before.keys() == after.keys()
    assert all(torch.allclose(before[k], after[k], atol=1e-4) for k in before)
    scratch = dlcore.build_model(dlcore.for_data(p.model, dlcore.dataset_info(p.data)))
    assert not torch.allclose(scratch.state_dict()["head.3.weight"], after["head.3.weight"], atol=1e-2)


def test_freeze_keeps_weights_bit_identical_through_the_job_system(jobs_env, teacher_run):
    store, parent = jobs_env, teacher_run[0]
    p = store.get(parent)
    train = tiny_train(2, seed=1, init_from=parent, freeze=("features",)).replace(lr=1e-2)
    run_id = dlcore.start_run(p.data.replace(classes=(5, 6, 7, 8, 9), per_class=20), p.model, train, store=store)
    run = dlcore.wait(run_id, timeout=120, store=store)
    assert run.status == "completed", run.error
    before, after = _weights(parent, store), _weights(run_id, store)
    frozen = [k for k in before if k.startswith("features.")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["head.1.weight"], after["head.1.weight"])  # the rest trained
    assert after["head.3.weight"].shape[0] == 5


def test_mismatched_weights_and_bad_freeze_groups_are_refused_before_training(store, teacher_run):
    from dlcore.train.prepare import prepare_run

    parent = teacher_run[0]
    with pytest.raises(dlcore.SpecError, match="head.1") as e:
        prepare_run(DIGITS, TEACHER.replace(hidden=(32,)), tiny_train(1, init_from=parent), store=store)
    assert e.value.field == "init_from"
    with pytest.raises(dlcore.SpecError, match="names no layer") as e:
        prepare_run(DIGITS, TEACHER, tiny_train(1, init_from=parent, freeze=("decoder",)), store=store)
    assert e.value.field == "freeze"
    with pytest.raises(dlcore.SpecError, match="names no layer"):  # without a parent too
        prepare_run(DIGITS, TEACHER, tiny_train(1, freeze=("decoder",)), store=store)
    with pytest.raises(dlcore.SpecError, match="no layer to train"):
        prepare_run(DIGITS, TEACHER, tiny_train(1, freeze=("all",)), store=store)
    with pytest.raises(dlcore.SpecError, match="no run"):
        prepare_run(DIGITS, TEACHER, tiny_train(1, init_from="19990101-000000-abcdef"), store=store)
    n = len(store.list())
    with pytest.raises(dlcore.SpecError, match="head.1"):
        dlcore.start_run(DIGITS, TEACHER.replace(hidden=(32,)), tiny_train(1, init_from=parent), store=store)
    assert len(store.list()) == n  # nothing recorded


def test_cli_reports_a_shape_mismatch_naming_the_layer(jobs_env, teacher_run, capsys):
    from dlcore.cli import main

    rc = main(["train", "--init-from", teacher_run[0], "--model-set", "hidden=[32]", "--epochs", "1",
               "--device", "cpu", "--quiet"])
    assert rc == 2
    assert "head.1" in capsys.readouterr().err


def test_compress_command_prints_one_json_line(store, teacher_run):
    env = {**os.environ, "DLE_DATA_DIR": str(store.root), "DLE_WARM_WORKER_IDLE_S": "5"}
    out = subprocess.run([sys.executable, "-m", "dlcore", "compress", teacher_run[0], "--method", "prune",
                          "--sparsity", "0.5", "--finetune-epochs", "0", "--json"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("run_id", "parent", "test_accuracy", "bytes", "params", "nonzero_params", "latency_ms"):
        assert key in result, key
    assert result["parent"] == teacher_run[0]
    assert result["nonzero_params"] < result["params"]
    assert store.get(result["run_id"]).parent == teacher_run[0]  # the lineage column


def test_a_store_without_the_parent_column_gains_it(tmp_path):
    store = dlcore.RunStore(tmp_path)
    run_id = store.create(DIGITS, TEACHER, tiny_train(1))
    with sqlite3.connect(store.db_path) as con:
        con.execute("ALTER TABLE runs DROP COLUMN parent")
    again = dlcore.RunStore(tmp_path)
    assert again.get(run_id).parent == ""
    child = again.create(DIGITS, TEACHER, tiny_train(1), parent=run_id)
    assert again.get(child).parent == run_id
