"""Global magnitude pruning: the same masks as torch's global_unstructured, zeros kept through fine-tuning,
a plain model after prune.remove, and a pruned run with its lineage."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.utils import prune

import dlcore
from dlcore.compress import (compress_run, make_pruning_permanent, prunable, prune_global, state_bytes,
                             weight_sparsity)

from tests.compress.tiny import TEACHER


def _model(config=TEACHER, seed=1234):
    torch.manual_seed(seed)
    info = dlcore.dataset_info("digits")
    return dlcore.build_model(dlcore.for_data(config, info))


def test_masks_match_torch_global_unstructured():
    ours, ref = _model(), _model()
    prune_global(ours, 0.6)
    prune.global_unstructured(prunable(ref), pruning_method=prune.L1Unstructured, amount=0.6)
    for (m1, n), (m2, _) in zip(prunable(ours), prunable(ref)):
        assert torch.equal(getattr(m1, n + "_mask"), getattr(m2, n + "_mask"))
    assert weight_sparsity(ours) == pytest.approx(0.6, abs=1e-4)


def test_channels_last_weights_prune_like_contiguous_ones():
    a = _model()
    b = copy.deepcopy(a).to(memory_format=torch.channels_last)  # the trainer's CNN layout
    prune_global(a, 0.5)
    prune_global(b, 0.5)
    for (m1, n), (m2, _) in zip(prunable(a), prunable(b)):
        assert torch.equal(getattr(m1, n + "_mask"), getattr(m2, n + "_mask").contiguous())


def test_pruned_weights_stay_zero_through_training_then_become_plain():
    ds = dlcore.load_dataset(dlcore.DataSpec(name="digits", max_train=256))
    t = dlcore.Trainer(TEACHER, ds, dlcore.TrainSpec(epochs=1, batch_size=32, device="cpu", lr=1e-2))
    model = t.raw_model
    prune_global(model, 0.5)
    masks = {id(m): getattr(m, n + "_mask").clone() for m, n in prunable(model)}
    before = {id(m): getattr(m, n + "_orig").detach().clone() for m, n in prunable(model)}
    t.fit()
    for m, n in prunable(model):
        w = getattr(m, n)
        assert torch.all(w[masks[id(m)] == 0] == 0)
        assert not torch.equal(getattr(m, n + "_orig"), before[id(m)])  # the kept weights trained
    make_pruning_permanent(model)
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert weight_sparsity(model) >= 0.5
    rebuilt = dlcore.build_model(model.config)
    rebuilt.load_state_dict(model.state_dict())  # a plain model of the same config


def test_sparsity_out_of_range_is_refused():
    with pytest.raises(ValueError, match="sparsity"):
        prune_global(_model(), 1.0)


def test_recurrent_weights_are_prunable():
    cfg = dlcore.for_data(dlcore.get_preset("rnn-tiny"), dlcore.dataset_info("digits"))
    torch.manual_seed(0)
    m = dlcore.build_model(cfg)
    prune_global(m, 0.5)
    out, _ = m(torch.rand(2, 1, 8, 8))
    assert torch.isfinite(out).all()
    make_pruning_permanent(m)
    assert weight_sparsity(m) == pytest.approx(0.5, abs=1e-3)


def test_prune_run_records_zeros_accuracy_and_lineage(store, teacher_run):
    parent, res = teacher_run
    out = compress_run(parent, "prune", store=store, sparsity=0.5, finetune_epochs=1, measure_latency=False)
    assert out["parent"] == parent and out["method"] == "prune"
    assert out["zero_share"] == pytest.approx(0.5, abs=1e-3)
    assert out["nonzero_params"] < 0.55 * out["params"]
    assert out["test_accuracy"] > res["test_accuracy"] - 0.1
    run = store.get(out["run_id"])
    assert run.status == "completed"
    assert run.summary["lineage"] == {"parent": parent, "method": "prune",
                                      "options": {"sparsity": 0.5, "finetune_epochs": 1,
                                                  "finetune_lr": pytest.approx(store.get(parent).train.lr)}}
    _, model = dlcore.load_run_model(out["run_id"], store)  # inspection pages open it like any run
    assert weight_sparsity(model) == pytest.approx(0.5, abs=1e-3)
    assert state_bytes(model) == out["bytes"]
