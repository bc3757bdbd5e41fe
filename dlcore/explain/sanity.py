"""Sanity check for explanations: cascading model-parameter randomisation (Adebayo et al. 2018, "Sanity Checks
for Saliency Maps"). Layers are re-initialised one after another from the output down; an explanation that
depends on what the model learned changes as they go, while one that merely reflects the input (an edge
detector) stays the same. Similarity is the Spearman rank correlation of |attributions| (scipy).

The model is deep-copied under its inspection lock (``dlcore.inspect.model_lock``): the caller's (possibly
cached, shared) model is never touched, and the copy never picks up another session's temporary hooks.

Example:
    >>> res = cascading_randomization(subject, ["saliency", "integrated_gradients", "grad_cam"])
    >>> res.similarity["saliency"]      # one score per randomised layer, top first
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dlcore.explain.registry import RNG_LOCK, explain
from dlcore.explain.subject import Subject
from dlcore.inspect._hooks import model_lock


def randomization_groups(model: nn.Module) -> list[tuple[str, list[nn.Module], list[nn.Parameter]]]:
    """The layers the check re-initialises, from the output down: (name, modules, bare parameters) per layer.

    A layer is a top-level child, or an item of a top-level Sequential/ModuleList (conv blocks, dense layers,
    transformer blocks); parameters held directly by the model (positions, [CLS]) join the embedding layer.
    """
    groups: dict[str, tuple[list, list]] = {}
    order: list[str] = []
    for cname, child in model.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            items = [(f"{cname}.{n}", m) for n, m in child.named_children()]
        else:
            items = [(cname, child)]
        for name, mod in items:
            if any(True for _ in mod.parameters()):
                groups[name] = ([mod], [])
                order.append(name)
    bare = [p for _, p in model.named_parameters(recurse=False)]
    if bare:
        if not order:
            groups["parameters"], order = ([], []), ["parameters"]
        groups[order[0]][1].extend(bare)
    return [(name, *groups[name]) for name in reversed(order)]


def _randomize(modules: list[nn.Module], params: list[nn.Parameter]) -> None:
    """Re-initialise: each module's own ``reset_parameters`` (PyTorch's default init) where it has one,
    otherwise normal noise with the parameter's own scale."""
    with torch.no_grad():
        for mod in modules:
            for m in mod.modules():
                reset = getattr(m, "reset_parameters", None)
                if callable(reset) and any(True for _ in m.parameters(recurse=False)):
                    reset()
                elif not isinstance(m, (nn.Sequential, nn.ModuleList)):
                    for p in m.parameters(recurse=False):
                        p.normal_(0.0, float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.02)
        for p in params:
            p.normal_(0.0, float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.02)


def _randomize_from(stream: torch.Tensor, modules: list[nn.Module], params: list[nn.Parameter]) -> torch.Tensor:
    """:func:`_randomize` drawing from a private stream (a CPU generator state; the next state is returned).
    ``reset_parameters`` draws from torch's global generator, which other sessions' threads share: the draws
    happen under :data:`RNG_LOCK` and the global state is put back, so the result depends on the seed alone."""
    with RNG_LOCK:
        saved = torch.get_rng_state()
        torch.set_rng_state(stream)
        try:
            _randomize(modules, params)
            return torch.get_rng_state()
        finally:
            torch.set_rng_state(saved)


def rank_similarity(a: np.ndarray, b: np.ndarray, absolute: bool = True) -> float:
    """Spearman rank correlation of |a| and |b| (or of a and b when not ``absolute``; scipy); 0 when either map
    is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if absolute:
        a, b = np.abs(a), np.abs(b)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


PASS_BELOW, FAIL_FROM = 0.3, 0.6  # final rank correlation: below 0.3 the map follows the model; 0.6 and up it does not


@dataclass
class SanityResult:
    """Per method: the original map, the map after each cascading step, and its similarity to the original
    (Spearman of |attributions|, as Adebayo et al.; ``signed_similarity`` keeps the signs)."""
    layers: list[str]  # randomised layer at each step, output side first
    original: dict[str, np.ndarray] = field(default_factory=dict)
    maps: dict[str, list[np.ndarray]] = field(default_factory=dict)
    similarity: dict[str, list[float]] = field(default_factory=dict)
    signed_similarity: dict[str, list[float]] = field(default_factory=dict)

    def final_similarity(self) -> dict[str, float]:
        """Similarity once every layer is random: near 0 passes, near 1 fails the check."""
        return {m: s[-1] for m, s in self.similarity.items() if s}

    def verdicts(self) -> dict[str, str]:
        """Per method, the check's verdict on the final similarity ρ: "passes" (ρ < 0.3: the map changed with
        the weights), "partly" (ρ < 0.6: some of it survives randomisation) or "fails" (the map barely depends
        on the weights: it shows the input, not the model)."""
        return {m: "passes" if rho < PASS_BELOW else "partly" if rho < FAIL_FROM else "fails"
                for m, rho in self.final_similarity().items()}


def cascading_randomization(subject: Subject, methods: list[str], params: dict[str, dict] | None = None,
                            max_layers: int | None = None, seed: int = 0, progress=None) -> SanityResult:
    """Explain with each method before and after randomising layers top-down (cumulatively).

    Args:
        subject: the model, example and target; its model is copied, never modified.
        methods: registry keys.
        params: per-method parameter overrides.
        max_layers: stop after this many layers (default: all).
        seed: seeds the re-initialisation (the same seed gives the same random layers in any thread).
        progress: optional ``progress(fraction, text)`` callback (for a progress bar).
    """
    params = params or {}
    with model_lock(subject.model):  # no other thread's hooks or switched attention path get copied
        model = copy.deepcopy(subject.model).eval()
    groups = randomization_groups(model)[: max_layers or None]
    twin = Subject.build(model, subject.info, subject.x[0], target=subject.target, position=subject.position,
                         background=subject.background)
    res = SanityResult(layers=[g[0] for g in groups])
    total = (len(groups) + 1) * len(methods)
    done = 0

    def step(text: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / total, text)

    for m in methods:
        res.original[m] = explain(twin, m, **params.get(m, {})).map
        res.maps[m], res.similarity[m], res.signed_similarity[m] = [], [], []
        step(f"{m}: trained model")
    stream = torch.Generator().manual_seed(seed).get_state()  # the randomisation's own stream of draws
    for name, mods, bare in groups:
        stream = _randomize_from(stream, mods, bare)
        for m in methods:
            e = explain(twin, m, **params.get(m, {}))
            res.maps[m].append(e.map)
            res.similarity[m].append(rank_similarity(res.original[m], e.map))
            res.signed_similarity[m].append(rank_similarity(res.original[m], e.map, absolute=False))
            step(f"{m}: randomised down to {name}")
    return res
