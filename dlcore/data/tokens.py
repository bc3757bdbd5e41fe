"""Text typed by a user, as the token ids a dataset's model reads — and back.

Every token dataset's tokenizer is its vocabulary: token id = position in ``DatasetInfo.vocab`` (characters for
``char_corpus`` and ``text_classification`` in ``builtin.py``, digits for the algorithmic tasks). Padded text
vocabularies start with :data:`PAD_TOKEN` (id 0), and their sequences are padded to the dataset's length, as the
training data was. Encoding inverts the dataset's own vocabulary, so typed text and training data agree.

Example:
    >>> ids = encode_text(info, "the film was not good")   # sentiment-synth: padded to its 56 positions
    >>> decode_tokens(info, ids)
    'the film was not good'
"""
from __future__ import annotations

from collections.abc import Sequence

from dlcore.data.base import PAD_TOKEN, DataError, DatasetInfo


def has_padding(info: DatasetInfo) -> bool:
    """True when the vocabulary's id 0 is the padding token (text classification)."""
    return bool(info.vocab) and info.vocab[0] == PAD_TOKEN


def _lookup(info: DatasetInfo) -> dict[str, int]:
    start = 1 if has_padding(info) else 0
    return {ch: i for i, ch in enumerate(info.vocab) if i >= start}


def encode_text(info: DatasetInfo, text: str, pad: bool = True) -> list[int]:
    """Token ids of ``text`` for a model trained on ``info``'s dataset.

    Args:
        info: a token dataset (``input_kind == "tokens"`` with a vocabulary).
        text: what the user typed.
        pad: for padded vocabularies, pad with id 0 to the dataset's length (what the model was trained on).

    Raises:
        DataError: the dataset does not read text; the text is empty, holds characters outside the vocabulary
            (named, with a hint when lower case would do), or is longer than the model reads; a fixed-length
            task (reverse, sort) gets another length.
    """
    if info.input_kind != "tokens" or not info.vocab:
        raise DataError(f"{info.name!r} does not read text (its inputs are {info.input_kind} data)")
    if not text:
        raise DataError("type at least one character")
    stoi = _lookup(info)
    unknown = sorted({ch for ch in text if ch not in stoi})
    if unknown:
        hint = ""
        if any(ch != ch.lower() and ch.lower() in stoi for ch in unknown):
            hint = " (it has no capital letters: try lower case)"
        names = ", ".join(repr(ch) for ch in unknown[:12]) + (", …" if len(unknown) > 12 else "")
        raise DataError(f"the vocabulary of {info.name!r} ({len(stoi)} characters) lacks {len(unknown)} "
                        f"character{'s' if len(unknown) > 1 else ''} of the text: {names}{hint}")
    length = info.input_shape[0] if info.input_shape else len(text)
    if info.task == "seq2seq" and len(text) != length:
        raise DataError(f"{info.name!r} was trained on sequences of exactly {length} tokens; the text has {len(text)}")
    if has_padding(info) and len(text) > length:
        raise DataError(f"the text has {len(text)} characters; the model reads at most {length}")
    ids = [stoi[ch] for ch in text]
    if pad and has_padding(info):
        ids += [0] * (length - len(ids))
    return ids


def decode_tokens(info: DatasetInfo, ids: Sequence[int], keep_padding: bool = False) -> str:
    """Text of token ids (padding dropped unless ``keep_padding``)."""
    pad = has_padding(info) and not keep_padding
    return "".join(info.vocab[int(i)] for i in ids if not (pad and int(i) == 0))


def token_strings(info: DatasetInfo, ids: Sequence[int]) -> list[str]:
    """One string per token id (the vocabulary's character), for tables and axis labels."""
    return [info.vocab[int(i)] for i in ids]


__all__ = ["PAD_TOKEN", "has_padding", "encode_text", "decode_tokens", "token_strings"]
