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


def _from_data(default):
    """A DatasetInfo field computed from the data (its statistics or its split), not part of its description;
    left out of equality so that two cuts of one dataset compare equal."""
    return field(default=default, compare=False, metadata={"from_data": True})


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
    # ---- set from the data when it is loaded (timm's PretrainedCfg input section: mean, std; typed, not a dict)
    n_train: int = _from_data(0)  # training examples after max_train and the validation split
    pixel_mean: float = _from_data(0.0)  # image normalisation, over the training images
    pixel_std: float = _from_data(1.0)
    target_mean: float = _from_data(0.0)  # forecasting: the series was scaled as (s - target_mean) / target_std
    target_std: float = _from_data(1.0)
    series: tuple[float, ...] = _from_data(())  # forecasting: the raw series
    test_start: int | None = _from_data(None)  # forecasting: index in ``series`` where the test part starts
    features: tuple[str, ...] = _from_data(())  # tables: feature column names
    feature_mean: tuple[float, ...] = _from_data(())  # tables: the features were standardised with these
    feature_std: tuple[float, ...] = _from_data(())
    expected_attention: str = _from_data("")  # algorithmic tasks: the known attention pattern ("reverse", "sort")

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

    def split_shapes(self) -> list[dict]:
        """Per split, as plain values: examples, input and target shapes and element types ("float32", …)."""
        return [{"split": name, "examples": len(x), "input_shape": tuple(x.shape),
                 "input_type": str(x.dtype).removeprefix("torch."), "target_shape": tuple(y.shape),
                 "target_type": str(y.dtype).removeprefix("torch.")}
                for name, (x, y) in (("train", self.train), ("val", self.val), ("test", self.test))]

    def class_counts(self, n_classes: int) -> dict[str, list[int]]:
        """Examples per class (tokens per class for per-step tasks) in each non-empty split."""
        return {name: torch.bincount(y.reshape(-1).long(), minlength=n_classes)[:n_classes].tolist()
                for name, (_, y) in (("train", self.train), ("val", self.val), ("test", self.test)) if len(y)}


def n_validation(n: int, val_fraction: float, shuffle: bool = True) -> int:
    """How many of ``n`` training examples :func:`split` holds out (at least one when asked for any)."""
    n_val = int(round(n * val_fraction))
    if shuffle and n_val == 0 and val_fraction > 0 and n > 1:
        n_val = 1
    return n_val


def n_train_after(n: int, max_train: int, val_fraction: float, shuffle: bool = True) -> int:
    """Training examples left of ``n`` after ``max_train`` and the validation split (``DatasetInfo.n_train``)."""
    n = min(n, max_train) if max_train else n
    return n - n_validation(n, val_fraction, shuffle)


def split(x: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int):
    """Seeded shuffle, then cut the last ``val_fraction`` off as validation."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    n_val = n_validation(len(x), val_fraction)
    tr, va = perm[: len(x) - n_val], perm[len(x) - n_val:]
    return (x[tr], y[tr]), (x[va], y[va])


PAD_TOKEN = "␀"  # token 0 of padded text vocabularies (builtin.text_classification, uploaded texts)


def unpadded_length(info: DatasetInfo, tokens) -> int:
    """How many positions of a token sequence come before its padding (all of them when the dataset's
    vocabulary has no padding token).

    Example:
        >>> unpadded_length(info, [5, 3, 0, 0])   # a padded review of two characters
        2
    """
    ids = torch.as_tensor(tokens).reshape(-1)
    if not info.vocab or info.vocab[0] != PAD_TOKEN:
        return len(ids)
    text = torch.nonzero(ids != 0).reshape(-1)
    return int(text[-1]) + 1 if len(text) else len(ids)
