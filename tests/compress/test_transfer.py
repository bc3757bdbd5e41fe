"""Transfer learning: weights by name with a new head, a clear error naming the layer that does not fit,
frozen weights bit-identical after training, class subsets with per-class caps, fine-tune lineage."""
from __future__ import annotations

import pytest
import torch

import dlcore
from dlcore.data.base import Dataset
from dlcore.transfer import (TransferError, fine_tune, freeze, freeze_groups, init_weights, output_layer,
                             restrict_dataset, select_classes, start_from)

from tests.compress.tiny import STUDENT, TEACHER, tiny_train


def _built(config, classes=10, seed=1234):
    torch.manual_seed(seed)
    info = dlcore.dataset_info("digits")
    return dlcore.build_model(dlcore.for_data(config, info).replace(num_outputs=classes))


def test_same_architecture_copies_every_weight():
    a, b = _built(TEACHER, seed=1), _built(TEACHER, seed=2)
    report = init_weights(b, a.state_dict())
    assert report["new_head"] is None
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_other_class_count_gets_a_new_head():
    parent, child = _built(TEACHER, 5, seed=1), _built(TEACHER, 3, seed=2)
    fresh_head = child.head[-1].weight.detach().clone()
    report = init_weights(child, {f"model.{k}": v for k, v in parent.state_dict().items()})  # checkpoint keys
    assert report["new_head"] == output_layer(child) == "head.3"
    assert torch.equal(child.head[-1].weight, fresh_head)
    assert torch.equal(child.features[0][0].weight, parent.features[0][0].weight)
    with pytest.raises(TransferError, match="output layer head.3 does not fit"):
        init_weights(_built(TEACHER, 3), parent.state_dict(), new_head=False)


def test_weights_that_do_not_fit_name_the_layer():
    wide = _built(TEACHER)
    narrow = _built(TEACHER.replace(channels=(16, 24)))
    with pytest.raises(TransferError, match=r"layer features\.1\.0 does not fit: .*\(32, 16, 3, 3\).*\(24, 16, 3, 3\)"):
        init_weights(narrow, wide.state_dict())
    with pytest.raises(TransferError, match="another architecture: the run has layer head.3 that this model lacks"):
        init_weights(_built(TEACHER.replace(hidden=())), wide.state_dict())


def test_unknown_freeze_group_lists_the_groups():
    with pytest.raises(TransferError, match="names no layer.*body, all, features"):
        freeze(_built(TEACHER), ["decoder"])
    assert "features.0.0" in freeze_groups(_built(TEACHER))


@pytest.mark.parametrize("groups", [("body",), ("features",)])
def test_frozen_weights_are_bit_identical_after_training(groups):
    cfg = TEACHER.replace(batch_norm=True)  # batch-norm statistics must not move either
    ds = dlcore.load_dataset(dlcore.DataSpec(name="digits", max_train=300))
    t = dlcore.Trainer(cfg, ds, tiny_train(2, weight_decay=0.1))  # decoupled decay must skip frozen weights
    before = {k: v.detach().clone() for k, v in t.raw_model.state_dict().items()}
    frozen = freeze(t.raw_model, groups)
    t.fit()
    after = t.raw_model.state_dict()
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    moved = [k for k in after
             if k not in frozen and after[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert "head.3.weight" in moved
    if groups == ("features",):
        assert "features.0.1.running_mean" in frozen


def _toy(n=60, classes=10):
    from dlcore.data.base import DatasetInfo

    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    x = torch.rand(n, 1, 4, 4, generator=g)
    info = DatasetInfo("toy", "toy", "", "image-classification", "image", (1, 4, 4), classes,
                       tuple(str(i) for i in range(classes)))
    return Dataset(info, (x[:40], y[:40]), (x[40:50], y[40:50]), (x[50:], y[50:]))


def test_select_classes_relabels_and_caps():
    x, y = torch.arange(40.0), torch.arange(40) % 4
    xs, ys = select_classes(x, y, (3, 1), per_class=5, seed=0)
    assert ys.tolist().count(0) == 5 and ys.tolist().count(1) == 5
    assert torch.equal(y[xs.long()], torch.where(ys == 0, 3, 1))  # label 0 is the old 3
    again, _ = select_classes(x, y, (1, 2), per_class=5, seed=0)
    assert set(xs[ys == 1].tolist()) == set(again[:5].tolist()) or \
        set(xs[ys == 1].tolist()) <= set(again.tolist())  # which 1s are kept does not depend on the other classes
    with pytest.raises(TransferError, match="repeat"):
        select_classes(x, y, (1, 1))


def test_restrict_dataset_info_follows_the_subset():
    ds = restrict_dataset(_toy(), (7, 8, 9), per_class=3, val_fraction=0.0)
    assert ds.info.num_outputs == 3 and ds.info.class_names == ("7", "8", "9")
    assert len(ds.train[0]) == 9 and sorted(ds.train[1].tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert set(ds.test[1].tolist()) <= {0, 1, 2}
    with pytest.raises(TransferError, match="class 12"):
        restrict_dataset(_toy(), (12,))


def test_fine_tune_run_from_a_pretrained_one(store):
    data = dlcore.DataSpec(name="digits")
    pre = fine_tune(None, tiny_train(2), classes=(0, 1, 2, 3, 4), data=data, model=STUDENT, store=store)
    assert dlcore.load_run_model(pre["run_id"], store)[1].config.num_outputs == 5
    res = fine_tune(pre["run_id"], tiny_train(2), classes=(5, 6, 7), per_class=10, groups=("body",), store=store)
    assert res["new_head"] == "head.3" and res["parent"] == pre["run_id"]
    run = store.get(res["run_id"])
    assert run.summary["lineage"] == {"parent": pre["run_id"], "method": "fine-tune",
                                      "options": {"classes": [5, 6, 7], "per_class": 10, "freeze": ["body"]}}
    _, parent_model = dlcore.load_run_model(pre["run_id"], store)
    _, child = dlcore.load_run_model(res["run_id"], store)
    assert child.config.num_outputs == 3
    assert torch.equal(parent_model.features[1][0].weight, child.features[1][0].weight)  # frozen
    assert run.summary["params"] == sum(p.numel() for p in child.parameters())


def test_start_from_keeps_the_optimizers_parameters():
    ds = dlcore.load_dataset(dlcore.DataSpec(name="digits", max_train=128))
    src = _built(STUDENT, seed=7)
    t = dlcore.Trainer(STUDENT, ds, tiny_train(1))
    held = [p for g in t.optimizer.param_groups for p in g["params"]]
    start_from(t, src.state_dict(), ("features",))
    assert all(any(p is q for q in held) for p in t.raw_model.parameters())
    assert torch.equal(t.raw_model.features[0][0].weight, src.features[0][0].weight)


def test_check_init_refuses_before_training(store, teacher_run):
    from dlcore.transfer import check_init

    info = dlcore.dataset_info("digits")
    report = check_init(TEACHER, teacher_run[0], ("body",), info=info, store=store)
    assert report["new_head"] is None and "features.0.0.weight" in report["frozen"]
    with pytest.raises(TransferError, match=r"layer features\.0\.0 does not fit") as e:
        check_init(TEACHER.replace(channels=(8, 32)), teacher_run[0], info=info, store=store)
    assert e.value.field == "init_from" and isinstance(e.value, dlcore.SpecError)
    with pytest.raises(TransferError, match="no run with id") as e:
        check_init(TEACHER, "nope", store=store)
    with pytest.raises(TransferError, match="names no layer") as e:
        check_init(TEACHER, teacher_run[0], ("encoder",), info=info, store=store)
    assert e.value.field == "freeze"
