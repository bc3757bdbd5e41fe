"""Knowledge distillation: the loss against a reference formula, and a student run beside its baseline."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlcore.compress import compress_run, distillation_loss
from tests.compress.tiny import STUDENT


def test_loss_matches_hinton_formula():
    g = torch.Generator().manual_seed(1234)
    s, t = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    T, a = 3.0, 0.7
    p_t, log_p_s = F.softmax(t / T, -1), F.log_softmax(s / T, -1)
    kl = (p_t * (p_t.log() - log_p_s)).sum(-1).mean()
    ref = a * T * T * kl + (1 - a) * F.cross_entropy(s, y)
    assert torch.allclose(distillation_loss(s, t, y, T, a), ref, atol=1e-6)
    assert torch.allclose(distillation_loss(s, t, y, T, 0.0), F.cross_entropy(s, y))
    assert distillation_loss(t, t, y, T, 1.0).abs() < 1e-6  # a student equal to its teacher has nothing to learn


def test_soft_gradient_scale_does_not_shrink_with_temperature():
    """T² keeps the soft part's gradient on the hard part's scale (Hinton et al.); without it, it falls as 1/T²."""
    g = torch.Generator().manual_seed(0)
    t, y = torch.randn(16, 10, generator=g) * 3, torch.randint(0, 10, (16,), generator=g)
    norms = []
    for T in (2.0, 8.0):
        s = (torch.randn(16, 10, generator=g) * 3).requires_grad_()
        distillation_loss(s, t, y, T, 1.0).backward()
        norms.append(float(s.grad.norm()))
    assert 0.1 < norms[1] / norms[0] < 2.0


def test_distilled_student_and_baseline(store, teacher_run):
    parent, _ = teacher_run
    out = compress_run(parent, "distill", store=store, student=STUDENT, temperature=4.0, alpha=0.5, epochs=1,
                       baseline=True, measure_latency=False)
    assert out["params"] * 4 <= out["teacher_params"]
    base = out["baseline"]
    assert base["run_id"] != out["run_id"] and 0.0 < base["test_accuracy"] and 0.0 < out["test_accuracy"]
    a, b = store.get(out["run_id"]), store.get(base["run_id"])
    options = a.summary["lineage"]["options"]
    assert options["student"]["family"] == "cnn" and (options["temperature"], options["alpha"]) == (4.0, 0.5)
    assert b.summary["lineage"]["method"] == "baseline"
    assert a.train == b.train  # same budget: epochs, seed, recipe
    assert a.model == b.model
    assert len(store.metrics(a.id, "epoch")) == 1 == len(store.metrics(b.id, "epoch"))


def test_unknown_method_and_student(store, teacher_run):
    with pytest.raises(ValueError, match="method"):
        compress_run(teacher_run[0], "zip", store=store)
    with pytest.raises(ValueError, match="student"):
        compress_run(teacher_run[0], "distill", store=store, student="nope")
