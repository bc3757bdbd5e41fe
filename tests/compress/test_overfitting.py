"""Overfitting detection on epoch rows, the remedies' specs, augmentation and the L1 penalty."""
from __future__ import annotations

import torch

import dlcore
from dlcore.overfitting import REMEDIES, detect_overfitting, generalization_gap, remedy_specs, shift_rotate


def _rows(train, val):
    return [{"epoch": i + 1, "train_loss": t, "val_loss": v} for i, (t, v) in enumerate(zip(train, val))]


def test_flags_val_rising_while_train_falls_at_the_best_epoch():
    rows = _rows([1.0, 0.6, 0.4, 0.3, 0.2, 0.1], [0.9, 0.6, 0.5, 0.55, 0.65, 0.8])
    epoch, msg = detect_overfitting(rows)
    assert epoch == 3
    assert "epoch 3" in msg and "0.5 → 0.8" in msg


def test_quiet_when_both_fall_when_both_rise_or_on_one_noisy_epoch():
    assert detect_overfitting(_rows([1.0, 0.6, 0.4, 0.3], [0.9, 0.6, 0.5, 0.45])) is None
    assert detect_overfitting(_rows([0.5, 0.7, 1.2, 3.0], [0.5, 0.8, 1.5, 4.0])) is None  # divergence
    assert detect_overfitting(_rows([1.0, 0.6, 0.4, 0.3, 0.2], [0.9, 0.6, 0.5, 0.45, 0.6])) is None  # one epoch up
    assert detect_overfitting(_rows([1.0, 0.6, 0.4, 0.3, 0.2], [0.9, 0.6, 0.5, 0.51, 0.52])) is None  # within 5 %
    assert detect_overfitting([{"epoch": 1, "train_loss": 1.0}]) is None


def test_gap_and_remedy_specs():
    assert generalization_gap([{"train_accuracy": 1.0, "val_accuracy": 0.75}]) == 0.25
    data, model, train = dlcore.DataSpec(max_train=200), dlcore.get_preset("seed-cnn"), dlcore.TrainSpec()
    assert remedy_specs("more-data", data, model, train)[0].max_train == 800
    assert remedy_specs("dropout", data, model, train)[1].dropout == REMEDIES["dropout"].model["dropout"]
    assert remedy_specs("weight-decay", data, model, train)[2].weight_decay > 0


def test_shift_rotate_moves_images_but_keeps_their_mass():
    torch.manual_seed(0)
    x = torch.zeros(16, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    y = shift_rotate(2.0, 10.0)(x)
    assert y.shape == x.shape and not torch.equal(x, y)
    assert torch.allclose(y.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.1)
    assert torch.equal(shift_rotate(0.0, 0.0)(x), x) or torch.allclose(shift_rotate(0.0, 0.0)(x), x, atol=1e-5)


def _fit(data, **train):
    from tests.compress.tiny import STUDENT, tiny_train

    t = dlcore.Trainer(STUDENT, dlcore.load_dataset(data), tiny_train(epochs=2).replace(**train))
    t.fit()
    return t


def _l1_norm(model) -> float:
    from dlcore.compress import prunable

    return float(sum(getattr(m, n).abs().sum() for m, n in prunable(model)))


def test_l1_field_adds_its_gradient_and_is_not_in_the_logged_loss():
    data = dlcore.DataSpec(name="digits", max_train=256)
    sgd = dict(optimizer="sgd", momentum=0.0, schedule="constant", max_steps=1, lr=0.1)
    plain, sparse = _fit(data, **sgd), _fit(data, l1=0.01, **sgd)
    from dlcore.compress import prunable

    for (m, n), (m2, _) in zip(prunable(plain.raw_model), prunable(sparse.raw_model)):
        w, w2 = getattr(m, n), getattr(m2, n)  # one SGD step apart by exactly lr · l1 · sign(w0)
        assert torch.allclose((w - w2).abs(), torch.full_like(w, 0.1 * 0.01), atol=1e-6)
        big = w.abs() > 0.05  # far from zero the step cannot flip the sign: the penalty pulls towards zero
        assert torch.equal(torch.sign(w - w2)[big], torch.sign(w)[big])
    # the logged training loss is the data loss, the same for both (the penalty would add ~0.01 · Σ|w|)
    assert abs(plain.history[-1]["train_loss"] - sparse.history[-1]["train_loss"]) < 1e-6


def test_augment_fields_change_training_and_refuse_non_images():
    data = dlcore.DataSpec(name="digits", max_train=256)
    a, b = _fit(data), _fit(data, augment_shift=1.0, augment_degrees=10.0)
    assert a.history[-1]["train_loss"] != b.history[-1]["train_loss"]
    again = _fit(data)  # without augmentation: repeatable, so the difference above is the augmentation's
    assert all(torch.equal(p, q) for p, q in zip(a.raw_model.parameters(), again.raw_model.parameters()))
    import pytest

    with pytest.raises(dlcore.SpecError, match="for images"):
        dlcore.prepare_run(dlcore.DataSpec(name="reverse"), dlcore.presets_of("transformer") and
                           dlcore.get_preset(dlcore.presets_of("transformer")[0]),
                           dlcore.TrainSpec(augment_shift=2.0))


def test_remedies_are_spec_changes_only():
    for r in REMEDIES.values():
        assert r.model or r.train or r.data, r.name
    _, _, t = remedy_specs("l1", dlcore.DataSpec(), dlcore.get_preset("seed-cnn"), dlcore.TrainSpec())
    assert t.l1 > 0
    _, _, t = remedy_specs("augment", dlcore.DataSpec(), dlcore.get_preset("seed-cnn"), dlcore.TrainSpec())
    assert t.augment_shift > 0 and t.augment_degrees > 0
