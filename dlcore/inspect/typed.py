"""Typed input for token models: the user's own text through a sentiment classifier, an algorithmic task
(reverse, sort) or a character language model — prediction, attention per head, token attributions and how
faithful they are — and an edit-and-compare view of two texts.

The text is encoded with the dataset's own tokenizer (:func:`dlcore.data.tokens.encode_text`). Attributions
are Integrated Gradients on the embedding layer (captum's ``LayerIntegratedGradients``), summed over the
embedding: one score per character, relative to a baseline text — all padding for padded vocabularies (an
empty review), else a text of one neutral character (a space for language models, "0" for digits; positions
that hold the baseline character get no attribution, as always with Integrated Gradients). Faithfulness is
deletion over tokens: replace the characters with the baseline one, most important first, and watch the
explained probability fall (a low area beats the random order's); insertion restores them into the baseline text.

Example:
    >>> r = explain_text(model, info, "the film was not good")
    >>> r.prediction, r.target_prob, r.attributions          # 'negative', 0.97, one score per character
    >>> cmp = compare_texts(model, info, "the film was not good", "the film was good")
    >>> cmp.before.prediction, cmp.after.prediction, cmp.prob_change
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dlcore.data.base import DataError, DatasetInfo
from dlcore.data.tokens import decode_tokens, encode_text, has_padding
from dlcore.inspect._hooks import model_lock, to_batch
from dlcore.inspect.attention import has_attention, record_attention


@dataclass(frozen=True)
class TypedResult:
    """One typed text through a token model.

    Attributes:
        text: what was typed; ids: (T,) what the model read (padded like the training data);
            tokens: the text's characters; n_text: how many positions hold text (the rest is padding).
        prediction: the predicted class, next character (language model) or output sequence (reverse/sort).
        output_names: names of the explained output's entries (classes or vocabulary).
        probs: (outputs,) probabilities of the explained output (the class, the next character, or the
            output position ``position``).
        target, target_name, target_prob: the explained entry, its name and probability.
        position: the output position explained (per-step models), else None.
        attention: (layers, heads, T, T) attention weights, rows = queries (None for an RNN).
        attributions: (n_text,) Integrated Gradients per character; convergence_delta: IG's completeness
            error (small is good).
        baseline_token: the character the attributions and the deletion are relative to.
        fractions, deletion, random_deletion: the target probability after replacing that share of the text's
            characters, most important first / in a seeded random order; deletion_auc, random_deletion_auc
            their mean heights (lower = more faithful). insertion, random_insertion, insertion_auc,
            random_insertion_auc: the same starting from the baseline text and restoring characters (higher =
            more faithful).
    """
    text: str
    ids: np.ndarray
    tokens: list[str]
    n_text: int
    prediction: str
    output_names: list[str]
    probs: np.ndarray
    target: int
    target_name: str
    target_prob: float
    position: int | None
    attention: np.ndarray | None
    attributions: np.ndarray
    convergence_delta: float
    baseline_token: str
    fractions: np.ndarray
    deletion: np.ndarray
    random_deletion: np.ndarray
    deletion_auc: float
    random_deletion_auc: float
    insertion: np.ndarray
    random_insertion: np.ndarray
    insertion_auc: float
    random_insertion_auc: float

    def curves(self) -> dict:
        """The deletion and insertion curves in the form ``dlcore.viz.curves_figure`` draws."""
        return {"fractions": self.fractions, "deletion": self.deletion, "insertion": self.insertion,
                "random_deletion": self.random_deletion, "random_insertion": self.random_insertion,
                "deletion_auc": self.deletion_auc, "insertion_auc": self.insertion_auc}


@dataclass(frozen=True)
class EditComparison:
    """Two texts explained for the same output (the first text's prediction), side by side.

    Attributes:
        prob_change: after.target_prob − before.target_prob; flipped: the predictions differ.
    """
    before: TypedResult
    after: TypedResult
    prob_change: float
    flipped: bool


def _embedding(model: nn.Module) -> nn.Embedding:
    for name in ("tok", "embed"):  # Transformer, RNN
        emb = getattr(model, name, None)
        if isinstance(emb, nn.Embedding):
            return emb
    raise TypeError(f"{type(model).__name__} has no token embedding: typed text needs a token model "
                        "(a Transformer or RNN trained on a text, reverse/sort or language-model dataset)")


def _output_names(model: nn.Module, info: DatasetInfo) -> list[str]:
    n = model.config.num_outputs
    if info.task in ("char-lm", "seq2seq") and len(info.vocab) == n:
        return list(info.vocab)
    return list(info.class_names) if len(info.class_names) == n else [str(i) for i in range(n)]


def _baseline_id(info: DatasetInfo, baseline_token: str | None) -> int:
    if baseline_token is None:
        if has_padding(info):
            return 0
        baseline_token = " " if " " in info.vocab else info.vocab[0]
    if baseline_token not in info.vocab:
        raise DataError(f"the baseline character {baseline_token!r} is not in {info.name!r}'s vocabulary")
    return info.vocab.index(baseline_token)


def _auc(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.trapezoid(y, x) / (x[-1] - x[0])) if x[-1] > x[0] else float(y.mean())


def explain_text(model: nn.Module, info: DatasetInfo, text: str, target: int | None = None,
                 position: int | None = None, n_steps: int = 50, baseline_token: str | None = None,
                 curve_steps: int = 20, seed: int = 0) -> TypedResult:
    """Prediction, attention and Integrated-Gradients attributions for text the user typed.

    Args:
        model: a token model (eval mode is set for the call).
        info: its dataset's description (vocabulary, classes, task).
        text: the typed text (characters outside the vocabulary raise DataError naming them); a language
            model reads its last ``max_len`` characters.
        target: output entry to explain (default: the predicted one).
        position: per-step models: which output position (default: the last character of the text, i.e. the
            next character for a language model).
        n_steps: Integrated Gradients' steps.
        baseline_token: reference character (default: padding, else a space or the first vocabulary entry).
        curve_steps: points on the deletion and insertion curves.
    """
    from captum.attr import LayerIntegratedGradients

    emb = _embedding(model)
    if info.task == "char-lm" and info.input_shape and len(text) > info.input_shape[0]:
        text = text[-info.input_shape[0]:]  # a language model reads its last max_len characters
    ids = encode_text(info, text)
    n_text = min(len(text), len(ids))
    per_step = bool(getattr(model.config, "per_step", False))
    if per_step:
        position = n_text - 1 if position is None else int(position)
        if not 0 <= position < len(ids):
            raise ValueError(f"position must be 0..{len(ids) - 1}, got {position}")
    else:
        position = None
    names = _output_names(model, info)
    x = to_batch(ids, model, single=True)  # (1, T)
    base_id = _baseline_id(info, baseline_token)
    base = torch.full_like(x, base_id)
    if has_padding(info):
        base[:, n_text:] = 0

    def scores(inp: torch.Tensor) -> torch.Tensor:
        out = model(inp)[0]  # (B, [T,] outputs)
        return out[:, position] if position is not None else out  # (B, outputs)

    with model_lock(model):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                probs = torch.softmax(scores(x).double(), -1)[0].cpu().numpy()
                full = model(x)[0][0]
            target = int(probs.argmax()) if target is None else int(target)
            if not 0 <= target < len(names):
                raise ValueError(f"target must be 0..{len(names) - 1}, got {target}")
            lig = LayerIntegratedGradients(scores, emb)
            attr, delta = lig.attribute(x, baselines=base, target=target, n_steps=n_steps,
                                        return_convergence_delta=True)  # (1, T, E)
            attributions = attr[0].sum(-1)[:n_text].detach().double().cpu().numpy()  # (n_text,)
            fractions, curves = _perturbation_curves(scores, x, base_id, target, attributions, curve_steps, seed)
        finally:
            model.train(was_training)
    attention = record_attention(model, ids)[1] if has_attention(model) else None
    if info.task == "seq2seq":
        prediction = decode_tokens(info, full.argmax(-1).tolist())
    else:
        prediction = names[int(probs.argmax())]
    return TypedResult(text=text, ids=np.asarray(ids), tokens=list(text[:n_text]), n_text=n_text,
                       prediction=prediction, output_names=names, probs=probs, target=target,
                       target_name=names[target], target_prob=float(probs[target]), position=position,
                       attention=attention, attributions=attributions, convergence_delta=float(delta.abs().max()),
                       baseline_token=info.vocab[base_id], fractions=fractions,
                       deletion=curves["ranked_deletion"], random_deletion=curves["random_deletion"],
                       deletion_auc=_auc(curves["ranked_deletion"], fractions),
                       random_deletion_auc=_auc(curves["random_deletion"], fractions),
                       insertion=curves["ranked_insertion"], random_insertion=curves["random_insertion"],
                       insertion_auc=_auc(curves["ranked_insertion"], fractions),
                       random_insertion_auc=_auc(curves["random_insertion"], fractions))


def _perturbation_curves(scores, x: torch.Tensor, base_id: int, target: int, attributions: np.ndarray, steps: int,
                         seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Target probability as the text's characters are replaced by the baseline one (deletion) or restored into
    the baseline text (insertion), most important first and in a seeded random order; one batch per curve."""
    n = attributions.size
    ks = np.unique(np.round(np.linspace(0, n, max(1, min(steps, n)) + 1)).astype(int))
    orders = {"ranked": np.argsort(-attributions, kind="stable"), "random": np.random.default_rng(seed).permutation(n)}
    baseline = x.clone()
    baseline[:, :n] = base_id
    curves = {}
    with torch.no_grad():
        for name, order in orders.items():
            chosen = torch.zeros(len(ks), x.shape[1], dtype=torch.bool)  # (S, T): the top-k characters
            for row, k in enumerate(ks):
                chosen[row, torch.as_tensor(order[:k], dtype=torch.long)] = True
            chosen = chosen.to(x.device)
            for key, batch in (("deletion", torch.where(chosen, baseline, x)),
                               ("insertion", torch.where(chosen, x, baseline))):
                curves[f"{name}_{key}"] = torch.softmax(scores(batch).double(), -1)[:, target].cpu().numpy()
    return ks / n, curves


def compare_texts(model: nn.Module, info: DatasetInfo, before: str, after: str, **kwargs) -> EditComparison:
    """Explain two texts (e.g. with and without "not") for the first text's predicted output.

    Keyword arguments go to :func:`explain_text` (n_steps, baseline_token, position, ...).
    """
    first = explain_text(model, info, before, **kwargs)
    kwargs.pop("target", None)
    second = explain_text(model, info, after, target=first.target, **kwargs)
    return EditComparison(before=first, after=second, prob_change=second.target_prob - first.target_prob,
                          flipped=first.prediction != second.prediction)


__all__ = ["TypedResult", "EditComparison", "explain_text", "compare_texts"]
