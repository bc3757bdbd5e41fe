"""Text from a character language model: temperature, top-k and top-p (nucleus) sampling, one token at a time
through a key/value cache, with the distribution of every step kept for the UI.

Order of the cut (as Hugging Face's samplers): divide the logits by the temperature, keep the ``top_k`` most
likely tokens, then the smallest set of the most likely whose probability reaches ``top_p``, renormalise.
Temperature 0 is greedy decoding: all the mass on the most likely token.

The decoder has learned absolute positions and reads at most ``max_len`` tokens. The cache holds the keys and
values of the tokens read so far, so each step feeds one new token. When the context is full it keeps its last
half and re-reads it (the positions moved, so no cached key is valid any more) — once per ``max_len / 2``
steps; a sliding window would have to re-read at every step. Cached and uncached generation read the same
tokens, so they give the same tokens and logits.

Example:
    >>> g = generate(run_id, "The ", max_new_tokens=40, temperature=0)
    >>> g.text, g.steps[0].top[:3], g.tokens_per_s
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dlcore.data.base import DataError, DatasetInfo
from dlcore.data.tokens import encode_text
from dlcore.inspect._hooks import model_lock
from dlcore.specs import SpecError, _SpecMixin, build, spec_field


@dataclass(frozen=True)
class SamplingSpec(_SpecMixin):
    """How the next token is drawn from the model's distribution (the page's sliders)."""
    temperature: float = spec_field(1.0, range=(0.0, 10.0),
                                    help="divide the logits by this: < 1 sharpens, > 1 flattens; 0 = greedy")
    top_k: int = spec_field(0, range=(0, 100_000), help="keep only the k most likely tokens (0 = all)")
    top_p: float = spec_field(1.0, range=(0.0, 1.0),
                              help="keep the fewest most likely tokens whose probability reaches p (1 = all)")


@dataclass(frozen=True)
class Step:
    """One generated token.

    Attributes:
        token: the chosen character; token_id its vocabulary id.
        prob: its probability in the distribution it was drawn from (after temperature and the cut).
        model_prob: its probability under the model itself (temperature 1, nothing cut).
        top: up to ``n_top`` (token, probability) of the distribution it was drawn from, most likely first;
            tokens the cut removed are left out, so at temperature 0 only the chosen token is listed.
        context_start: index (into ``Generation.ids``) of the first token the model read for this step.
    """
    token: str
    token_id: int
    prob: float
    model_prob: float
    top: tuple[tuple[str, float], ...]
    context_start: int = 0


@dataclass(frozen=True)
class Generation:
    """A prompt, its continuation and how each token was chosen.

    Attributes:
        ids: prompt and generated token ids; n_prompt of them are the prompt's.
        max_len: the model's context; :meth:`context_ids` gives what it read at each step.
    """
    prompt: str
    text: str
    steps: tuple[Step, ...]
    tokens_per_s: float
    seconds: float
    sampling: SamplingSpec
    seed: int
    use_cache: bool
    ids: tuple[int, ...]
    n_prompt: int
    max_len: int

    def context_ids(self, step: int) -> list[int]:
        """The token ids the model read to choose step ``step`` (for its attention view)."""
        if not 0 <= step < len(self.steps):
            raise IndexError(f"step must be 0..{len(self.steps) - 1}, got {step}")
        return list(self.ids[self.steps[step].context_start: self.n_prompt + step])

    def to_dict(self) -> dict:
        """JSON-ready: prompt, text, steps (token, top as [token, probability] pairs, most likely first), speed.

        Probabilities are rounded down to 6 decimals, so a step's listed probabilities never add up past 1.
        """
        def down(p: float) -> float:
            return math.floor(p * 1e6) / 1e6

        return {"prompt": self.prompt, "text": self.text,
                "steps": [{"token": s.token, "prob": down(s.prob), "model_prob": down(s.model_prob),
                           "top": [[t, down(p)] for t, p in s.top]} for s in self.steps],
                "tokens_per_s": round(self.tokens_per_s, 1), "seconds": round(self.seconds, 4),
                "sampling": self.sampling.to_dict(), "seed": self.seed, "use_cache": self.use_cache}


def sampling_spec(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> SamplingSpec:
    """A validated :class:`SamplingSpec` (SpecError names the field out of range)."""
    return build(SamplingSpec, temperature=temperature, top_k=top_k, top_p=top_p)


def cut_distribution(logits: torch.Tensor, spec: SamplingSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The next-token distribution after the temperature, and after top-k / top-p (renormalised).

    Args:
        logits: (V,) raw model outputs for the next position.
        spec: temperature, top_k, top_p.

    Returns:
        (before_cut, after_cut): two (V,) float64 probability vectors; ``after_cut`` is zero where the cut
        removed a token. Temperature 0 puts all the mass on the most likely token (the first of equals).
    """
    z = logits.detach().to("cpu", torch.float64).reshape(-1)  # (V,)
    if spec.temperature == 0:
        before = torch.zeros_like(z)
        before[int(z.argmax())] = 1.0
    else:
        before = torch.softmax(z / spec.temperature, dim=-1)
    after = before.clone()
    if 0 < spec.top_k < after.numel():
        keep = torch.zeros_like(after, dtype=torch.bool)
        keep[torch.topk(z, spec.top_k).indices] = True  # by logit: the same order as any temperature
        after = torch.where(keep, after, 0.0)
        after = after / after.sum()
    if spec.top_p < 1.0:
        p, order = torch.sort(after, descending=True, stable=True)
        keep_sorted = (p.cumsum(0) - p) < spec.top_p  # the mass before a token has not reached p yet
        keep_sorted[0] = True
        keep = torch.zeros_like(keep_sorted)
        keep[order] = keep_sorted
        after = torch.where(keep, after, 0.0)
        after = after / after.sum()
    return before, after


def _language_model(model_or_run_id, info: DatasetInfo | None) -> tuple[nn.Module, DatasetInfo]:
    """(decoder, its dataset's info) from a run id or a model + info; typed errors for anything else."""
    if isinstance(model_or_run_id, str):
        import dlcore

        run, model = dlcore.load_run_model(model_or_run_id)
        info = dlcore.dataset_info(run.data)
    else:
        model = model_or_run_id
        if info is None:
            raise TypeError("generate(model, ...) needs info= (the DatasetInfo of the model's data)")
    config = getattr(model, "config", None)
    if getattr(config, "kind", None) != "decoder" or not hasattr(model, "new_cache"):
        family = getattr(type(config), "family", type(model).__name__)
        raise SpecError("model", f"text generation needs a language model (a Transformer decoder trained on a "
                                 f"char-lm dataset such as pydoc-lm); this is a {family} "
                                 f"{getattr(config, 'kind', '')} model".rstrip())
    if len(info.vocab) != config.vocab_size:
        raise DataError(f"the model reads {config.vocab_size} tokens but {info.name!r} has {len(info.vocab)}: "
                        "the dataset changed since the model was trained")
    return model, info


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _Context:
    """Which tokens the model reads, and their logits for the next one. Up to ``max_len`` tokens it reads them all;
    when the window is full it keeps the last half and goes on from there. The positions are learned, so a
    shifted window invalidates every cached key (llama.cpp shifts its context the same way): the re-read
    happens once per ``max_len / 2`` tokens instead of at every step, as a sliding window would need. Cached
    and uncached reading see the same tokens."""

    def __init__(self, model: nn.Module, use_cache: bool):
        self.model, self.use_cache = model, use_cache
        self.max_len = model.config.max_len
        self.device = _device(model)
        self.start: int | None = None  # index of the first token read
        self.cache = None
        self.fed = 0  # tokens already in the cache (as an index into ids)

    def _run(self, ids: list[int], cache) -> torch.Tensor:
        x = torch.tensor([ids], dtype=torch.long, device=self.device)  # (1, T)
        out = self.model(x, cache=cache)[0] if cache is not None else self.model(x)[0]  # (1, T, V)
        return out[0, -1]  # (V,)

    def logits(self, ids: list[int]) -> torch.Tensor:
        """Logits of the token after ``ids`` (which only grows between calls)."""
        n = len(ids)
        if self.start is None:
            self.start = max(0, n - self.max_len)
        elif n - self.start > self.max_len:
            self.start = n - max(1, self.max_len // 2)
            self.cache = None
        if not self.use_cache:
            return self._run(ids[self.start:], None)
        if self.cache is None:
            self.cache, self.fed = self.model.new_cache(), self.start
        new, self.fed = ids[self.fed:], n
        return self._run(new, self.cache)


def generate(model_or_run_id, prompt: str, max_new_tokens: int = 100, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, seed: int = 0, use_cache: bool = True, *, info: DatasetInfo | None = None,
             n_top: int = 10) -> Generation:
    """Continue a prompt with a character language model.

    Args:
        model_or_run_id: a run id (its checkpoint and dataset are loaded) or a decoder Transformer.
        prompt: the text to continue; every character must be in the dataset's vocabulary.
        max_new_tokens: how many characters to generate.
        temperature, top_k, top_p: see :class:`SamplingSpec`; temperature 0 is greedy.
        seed: seeds the draws, so a call is reproducible.
        use_cache: feed one token per step through a key/value cache (same tokens, faster).
        info: the model's DatasetInfo, required when a model (not a run id) is given.
        n_top: candidates listed per step.

    Raises:
        SpecError: a parameter is out of range, or the model is not a language model.
        DataError: the prompt is empty or holds characters the model never saw (they are named).

    Example:
        >>> g = generate(run_id, "def ", max_new_tokens=80, temperature=0.8, top_k=20, seed=1)
        >>> print(g.prompt + g.text)
    """
    spec = sampling_spec(temperature, top_k, top_p)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 0 <= max_new_tokens <= 100_000:
        raise SpecError("max_new_tokens", f"max_new_tokens must be a whole number 0..100000, got {max_new_tokens!r}")
    model, info = _language_model(model_or_run_id, info)
    ids = encode_text(info, prompt, pad=False)
    n_prompt = len(ids)
    g = torch.Generator().manual_seed(int(seed))
    steps: list[Step] = []
    t0 = time.perf_counter()
    with model_lock(model), torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            context = _Context(model, use_cache)
            for _ in range(max_new_tokens):
                logits = context.logits(ids)
                _, after = cut_distribution(logits, spec)
                if spec.temperature == 0:
                    tok = int(after.argmax())
                else:
                    tok = int(torch.multinomial(after, 1, generator=g))
                model_p = float(torch.softmax(logits.double(), -1)[tok])
                shown = [j for j in torch.sort(after, descending=True, stable=True).indices[:n_top].tolist()
                         if after[j] > 0]
                steps.append(Step(info.vocab[tok], tok, float(after[tok]), model_p,
                                  tuple((info.vocab[j], float(after[j])) for j in shown), context.start))
                ids.append(tok)
        finally:
            model.train(was_training)
    seconds = time.perf_counter() - t0
    return Generation(prompt=prompt, text="".join(s.token for s in steps), steps=tuple(steps),
                      tokens_per_s=len(steps) / seconds if seconds > 0 else 0.0, seconds=seconds, sampling=spec,
                      seed=int(seed), use_cache=use_cache, ids=tuple(ids), n_prompt=n_prompt,
                      max_len=model.config.max_len)


def next_token_distribution(model: nn.Module, info: DatasetInfo, prompt: str, temperature: float = 1.0,
                            top_k: int = 0, top_p: float = 1.0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The distribution of the character after ``prompt``, before and after the top-k / top-p cut.

    Returns:
        (tokens, before_cut, after_cut): every vocabulary character, most likely first (by the model's
        logits), with its probability after the temperature and after the cut (0 where the cut removed it).

    Example:
        >>> tokens, before, after = next_token_distribution(model, info, "import ", 0.8, top_k=5)
        >>> removed = [t for t, b, a in zip(tokens, before, after) if b > 0 and a == 0]
    """
    spec = sampling_spec(temperature, top_k, top_p)
    model, info = _language_model(model, info)
    ids = encode_text(info, prompt, pad=False)
    with model_lock(model), torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            logits = _Context(model, use_cache=False).logits(ids)
        finally:
            model.train(was_training)
    before, after = cut_distribution(logits, spec)
    order = torch.sort(logits.detach().cpu().double(), descending=True, stable=True).indices
    return [info.vocab[i] for i in order.tolist()], before[order].numpy(), after[order].numpy()


# ---------------------------------------------------------------------------------------------------- CLI
def run_cli(args) -> int:
    """``python -m dlcore generate``: prints the text, or with --json one JSON object."""
    import json
    import sys

    g = generate(args.run_id, args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                 args.seed, use_cache=not args.no_cache)
    if args.json:
        print(json.dumps(g.to_dict()))
    else:
        print(g.prompt + g.text)
        print(f"{len(g.steps)} tokens in {g.seconds:.2f}s ({g.tokens_per_s:,.0f} tokens/s"
              f"{', cached' if g.use_cache else ''})", file=sys.stderr)
    return 0


__all__ = ["SamplingSpec", "Step", "Generation", "sampling_spec", "cut_distribution", "generate",
           "next_token_distribution", "run_cli"]
