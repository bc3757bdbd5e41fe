"""What every dataset is: tensors in memory plus a description (`DatasetInfo`) that models adapt to."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

TASKS = {
    "image-classification": "classify an image",
    "sequence-classification": "classify a sequence",
    "tabular-classification": "classify a row of numbers",
    "seq2seq": "output one token per input token",
    "forecasting": "predict the next values of a series",
    "char-lm": "predict the next character",
}


class DataError(ValueError):
    """A dataset cannot be loaded or a user file is unusable; the message says why and what to do."""


@dataclass(frozen=True)
class DatasetInfo:
    """Everything the UI and the models need to know about a dataset, without its tensors."""
    name: str
    title: str
    description: str
    task: str
    input_kind: str  # "image" (C, H, W) | "sequence" (T, F) | "tokens" (T,) | "tabular" (F,)
    input_shape: tuple[int, ...]
    num_outputs: int  # classes, forecast horizon, or vocabulary size
    class_names: tuple[str, ...] = ()
    vocab: tuple[str, ...] = ()  # token id -> character, for token inputs
    metric: str = "accuracy"  # accuracy | token_accuracy | mae | perplexity
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def per_step(self) -> bool:
        return self.task in ("seq2seq", "char-lm")

    @property
    def loss(self) -> str:
        return "mse" if self.task == "forecasting" else "ce"

    @property
    def higher_is_better(self) -> bool:
        return self.metric in ("accuracy", "token_accuracy")


@dataclass
class Dataset:
    """Train/validation/test tensors (x, y) in memory; small enough for any of our built-in sets."""
    info: DatasetInfo
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train[0]), "val": len(self.val[0]), "test": len(self.test[0])}


def split(x: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int):
    """Seeded shuffle, then cut the last ``val_fraction`` off as validation."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    n_val = int(round(len(x) * val_fraction))
    if n_val == 0 and val_fraction > 0 and len(x) > 1:
        n_val = 1
    tr, va = perm[: len(x) - n_val], perm[len(x) - n_val:]
    return (x[tr], y[tr]), (x[va], y[va])
