"""Overfitting detection on epoch rows, the remedies' specs, augmentation and the L1 penalty."""
from __future__ import annotations

import torch

import dlcore
from dlcore.overfitting import REMEDIES, detect_overfitting, generalization_gap, l1_penalty, remedy_specs, shift_rotate


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


def test_l1_penalty_adds_the_weights_absolute_sum():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 2))
    loss = torch.tensor(1.0)
    got = l1_penalty(m, 0.5)(None, None, loss, None)
    assert torch.allclose(got, 1.0 + 0.5 * m[0].weight.abs().sum())
