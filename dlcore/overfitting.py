"""Overfitting: noticing it in a run's epoch rows, and the remedies a learner can try as variant runs.

:func:`detect_overfitting` reads the rows a run logs per epoch (``train_loss``, ``val_loss``) and says
from which epoch the validation loss rises while the training loss keeps falling. :data:`REMEDIES`
lists the one-click variants (dropout, weight decay, an L1 penalty, early stopping, augmentation, more
data) with defaults picked from measurements (``bench/bench_compress.py overfit``), and
:func:`remedy_specs` turns a run's specs into a variant's. Every remedy is a change of the run's specs: the
L1 penalty and the augmentation are TrainSpec fields (``l1``, ``augment_shift``, ``augment_degrees``) that
the Trainer applies with :func:`shift_rotate` and the weights of :func:`dlcore.compress.prunable`.

Example:
    >>> detect_overfitting([{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9}, ...])
    (6, 'After epoch 6 the validation loss rises (0.31 → 0.52) while the training loss keeps falling ...')
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------------------------------------- detection
def detect_overfitting(epoch_rows: Sequence[dict], rise: float = 0.05, min_epochs_after: int = 2
                       ) -> tuple[int, str] | None:
    """The epoch after which a run overfits, with a sentence saying so; None while it does not.

    Overfitting here means: the validation loss has risen at least ``rise`` (relative) above its lowest
    value, stayed above it for ``min_epochs_after`` epochs or more, and the training loss is lower now
    than at that lowest point. The epoch returned is the one with the lowest validation loss (the
    weights worth keeping; the chart marks it).

    Args:
        epoch_rows: the run's epoch rows in order, each with 'epoch', 'train_loss' and 'val_loss'
            (rows without both losses are skipped).
        rise: how far above its minimum the validation loss must be, as a share of it (0.05 = 5 %).
        min_epochs_after: epochs after the minimum that must all be above it (noise does not count).
    """
    rows = [r for r in epoch_rows if _finite(r.get("train_loss")) and _finite(r.get("val_loss"))]
    if len(rows) < min_epochs_after + 1:
        return None
    val = [float(r["val_loss"]) for r in rows]
    best = min(range(len(val)), key=val.__getitem__)
    after = val[best + 1:]
    if len(after) < min_epochs_after or val[-1] <= val[best] * (1 + rise) + 1e-12:
        return None
    if min(after) <= val[best]:  # pragma: no cover - best is the minimum
        return None
    train_then, train_now = float(rows[best]["train_loss"]), float(rows[-1]["train_loss"])
    if train_now >= train_then:
        return None  # both rising: divergence or a too-high learning rate, not overfitting
    epoch = int(rows[best].get("epoch", best + 1))
    msg = (f"After epoch {epoch} the validation loss rises ({val[best]:.3g} → {val[-1]:.3g}) while the training "
           f"loss keeps falling ({train_then:.3g} → {train_now:.3g}): the model is memorising its training "
           f"examples. The weights of epoch {epoch} generalise best; early stopping, dropout, weight decay, "
           f"augmentation or more data help.")
    return epoch, msg


def overfit_epoch(epoch_rows: Sequence[dict]) -> int | None:
    """The epoch after which the run overfits (:func:`detect_overfitting`), or None."""
    found = detect_overfitting(epoch_rows)
    return found[0] if found else None


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def generalization_gap(epoch_rows: Sequence[dict], metric: str = "accuracy") -> float | None:
    """train − validation metric of the last epoch that has both (the gap the chart shows)."""
    for r in reversed(list(epoch_rows)):
        if _finite(r.get(f"train_{metric}")) and _finite(r.get(f"val_{metric}")):
            return float(r[f"train_{metric}"]) - float(r[f"val_{metric}"])
    return None


# ---------------------------------------------------------------------------------------------- remedies
def shift_rotate(max_shift: float = 2.0, max_degrees: float = 10.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch transform for images (B, C, H, W): a random shift of up to ``max_shift`` pixels and a
    rotation of up to ``max_degrees`` per image, zeros shifted in (one affine resampling per batch).

    It draws from torch's global generator, which the trainer seeds per (seed, epoch): runs repeat.
    """
    def fn(x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            return x
        B, _, H, W = x.shape
        angle = (torch.rand(B, device=x.device) * 2 - 1) * math.radians(max_degrees)  # (B,)
        shift = (torch.rand(B, 2, device=x.device) * 2 - 1) * max_shift  # (B, 2) in pixels
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0] * 2 / W], 1),
                             torch.stack([sin, cos, shift[:, 1] * 2 / H], 1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)

    return fn


@dataclass(frozen=True)
class Remedy:
    """A one-click variant of a run that fights overfitting.

    Attributes:
        name: short id ('dropout', 'weight-decay', ...).
        label: what the UI shows.
        model: model-config fields to change (e.g. {'dropout': 0.25}).
        train: TrainSpec fields to change.
        data: DataSpec fields to change ('max_train' as a factor of the current size: see remedy_specs).
        images_only: the remedy applies to image inputs only (augmentation).
        why: one line for the learner.
    """
    name: str
    label: str
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    images_only: bool = False
    why: str = ""


# Defaults measured with bench/bench_compress.py overfit: seed-cnn, its recipe, 160 mnist5k training images
# (+40 validation), 30 epochs, test accuracy over seeds 0-2 (no remedy: 0.839 ± 0.010, train−val gap 0.24):
#   dropout 0.1 / 0.25 / 0.5          0.846 / 0.849 / 0.624 (0.5 underfits in 30 epochs)
#   AdamW weight decay 0.01/0.1/0.5/1  0.839 / 0.840 / 0.838 / 0.841 (no effect in 150 steps; Adam's coupled L2
#                                      at 1e-3/1e-2/1e-1: 0.840 / 0.840 / 0.819)
#   L1 1e-5 / 1e-4                    0.845 / 0.841
#   early stopping, patience 3 / 5    0.824 / 0.822 (40 validation images pick too early; the best epoch's
#                                      weights do no better: 0.811)
#   shift/rotate 1px,5° / 2px,10° / 3px,15°   0.870 / 0.906 / 0.902 (2px,10° with dropout 0.25: 0.878)
#   2× / 4× data                      0.906 / 0.929
REMEDIES: dict[str, Remedy] = {r.name: r for r in [
    Remedy("dropout", "Dropout 0.25", model={"dropout": 0.25},
           why="drops a random quarter of the activations at each step, so no unit can rely on another"),
    Remedy("weight-decay", "Weight decay (L2) 0.1", train={"weight_decay": 0.1, "optimizer": "adamw"},
           why="pulls every weight towards zero each step, preferring small weights (it needs many steps to show)"),
    Remedy("l1", "L1 penalty 1e-5", train={"l1": 1e-5},
           why="adds the sum of |weights| to the loss, pushing the unneeded ones to zero"),
    Remedy("early-stopping", "Early stopping (patience 3)", train={"early_stop_patience": 3},
           why="stops when the validation score has not improved for 3 epochs (needs a validation set that "
               "is large enough to trust)"),
    Remedy("augment", "Augmentation: shifts ±2 px, rotations ±10°", train={"augment_shift": 2.0, "augment_degrees": 10.0},
           images_only=True,
           why="shows every image slightly moved and turned, so the model learns the digit, not the pixels"),
    Remedy("more-data", "4× more data", data={"max_train": 4},
           why="the surest remedy when it is available: more examples to learn from"),
]}


def remedy_specs(remedy: Remedy | str, data, model, train):
    """(data, model, train) of the variant run: the run's specs with the remedy's changes.

    'more data' multiplies ``max_train`` (0 = all the data stays all of it).
    """
    r = REMEDIES[remedy] if isinstance(remedy, str) else remedy
    d = dict(r.data)
    if "max_train" in d:
        d["max_train"] = data.max_train * int(d["max_train"]) if data.max_train else 0
    return (data.replace(**d) if d else data, model.replace(**r.model) if r.model else model,
            train.replace(**r.train) if r.train else train)


__all__ = ["detect_overfitting", "overfit_epoch", "generalization_gap", "shift_rotate", "Remedy", "REMEDIES",
           "remedy_specs"]
