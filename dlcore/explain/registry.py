"""One registry of attribution methods, each declaring its parameters so that pages build widgets from them
(captum Insights ``config.py``: ``"n_steps": NumberConfig(value=25, limit=(2, None))``).

Example:
    >>> [m.key for m in available_methods(model)]
    ['saliency', 'integrated_gradients', ..., 'grad_cam', ...]
    >>> METHODS["integrated_gradients"].params[0]
    FieldSpec(name='n_steps', kind='int', default=50, range=(2, 1000), ...)
    >>> res = explain(subject, "integrated_gradients", n_steps=50)
"""
from __future__ import annotations

import threading
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from dlcore.explain.subject import Subject
from dlcore.inspect._hooks import model_lock
from dlcore.params import FieldSpec, SpecError


Param = FieldSpec  # a method parameter is a declared field like any spec's (dlcore.params)


def number(name: str, value: int | float, limit: tuple | None = None, help: str = "", label: str = "") -> FieldSpec:
    """A numeric parameter (captum Insights' ``NumberConfig``); int or float after ``value``'s type.

    Args:
        limit: inclusive (low, high); either end may be None (open).
    """
    kind = "int" if isinstance(value, int) and not isinstance(value, bool) else "float"
    return FieldSpec(name, kind, value, range=limit, help=help, label=label)


def choice(name: str, value: str, options: tuple, help: str = "", label: str = "") -> FieldSpec:
    """A parameter with a fixed set of values (captum Insights' ``StrEnumConfig``)."""
    return FieldSpec(name, "str", value, choices=tuple(options), help=help, label=label)


def flag(name: str, value: bool, help: str = "", label: str = "") -> FieldSpec:
    return FieldSpec(name, "bool", bool(value), help=help, label=label)


@dataclass(frozen=True)
class Method:
    """An attribution method.

    Attributes:
        key: registry key ("integrated_gradients").
        title: display name.
        library: where the implementation comes from ("captum", "shap").
        params: declared parameters (widgets are built from them).
        run: ``run(subject, inputs, params) -> attributions`` for inputs (B, ...) in attribution space.
        applies: ``applies(model) -> None`` when usable, else the reason it is not offered.
    """
    key: str
    title: str
    library: str
    description: str
    params: tuple[FieldSpec, ...]
    run: Callable[[Subject, torch.Tensor, dict], torch.Tensor]
    applies: Callable[[nn.Module], str | None] = lambda model: None

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def resolve(self, params: dict | None) -> dict:
        """Defaults overridden by ``params``, each checked with ``FieldSpec.check``.

        Raises:
            SpecError: (a ValueError) naming the parameter: unknown (listing the known ones), or a value that
                does not fit — out of range, not a whole number, NaN.
        """
        params = dict(params or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise SpecError(unknown[0], f"{self.title} has no parameter {unknown[0]!r}; its parameters: "
                                        f"{', '.join(known) or 'none'}")
        return {name: p.check(params.get(name, p.default)) for name, p in known.items()}


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.key in METHODS:
        raise ValueError(f"method {method.key!r} is already registered")
    METHODS[method.key] = method
    return method


def available_methods(model: nn.Module) -> list[Method]:
    """The methods that apply to a model, in registry order (Grad-CAM only for conv models, ...)."""
    return [m for m in METHODS.values() if m.applies(model) is None]


def unavailable_methods(model: nn.Module) -> dict[str, str]:
    """key -> why the method is not offered for this model."""
    return {m.key: reason for m in METHODS.values() if (reason := m.applies(model)) is not None}


def get_method(key: str) -> Method:
    if key not in METHODS:
        raise KeyError(f"unknown explanation method {key!r}; known: {', '.join(METHODS)}")
    return METHODS[key]


@dataclass
class Explanation:
    """The result of one method on one subject.

    Attributes:
        attributions: in attribution space, same shape as the subject's inputs without batch.
        map: the display map (image (H, W), tokens (T,), sequence (T, F), table (F,)).
        extras: method-specific numbers (Integrated Gradients: convergence delta).
    """
    method: str
    title: str
    params: dict
    attributions: np.ndarray
    map: np.ndarray
    seconds: float
    extras: dict = field(default_factory=dict)


# The global generators (torch's CPU one, numpy's) are one per process, shared by every session's thread:
# a block that seeds them and draws holds this lock, or another thread's draws land in its stream. Take it after
# any model lock (``run_method`` does), never the other way round.
RNG_LOCK = threading.RLock()


@contextmanager
def seeded(seed: int):
    """Seed torch's CPU generator and numpy's global one for a block and restore both afterwards: captum's
    GradientShap draws from numpy, shap re-seeds numpy, NoiseTunnel and LIME draw from torch. Explanations run on
    the CPU (``load_run_model``); the state is handled directly because ``torch.manual_seed``/``fork_rng`` also
    queue CUDA seeding with a recorded stack trace, ~0.5 ms a call. Holds :data:`RNG_LOCK`."""
    with RNG_LOCK:
        np_state, cpu_state = np.random.get_state(), torch.get_rng_state()
        torch.default_generator.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            torch.set_rng_state(cpu_state)


def run_method(method: Method, subject: Subject, inputs: torch.Tensor, params: dict) -> torch.Tensor:
    """Run a method on a batch of inputs under the model lock; methods that sample (those with a ``seed``
    parameter) run with seeded generators and leave the global RNG state as they found it."""
    rng = seeded(int(params["seed"])) if "seed" in params else nullcontext()
    with model_lock(subject.model), rng, warnings.catch_warnings(), torch.enable_grad():
        # captum notes that it switched requires_grad on for the inputs: expected, as inputs are fresh tensors
        warnings.filterwarnings("ignore", message=".*did not already require gradients.*")
        return method.run(subject, inputs, params)


def explain(subject: Subject, key: str, **params) -> Explanation:
    """Explain a subject with a registered method.

    Args:
        subject: model + example + target (:meth:`Subject.build`).
        key: a registry key (see :func:`available_methods`).
        **params: overrides of the method's declared parameters.

    Raises:
        KeyError: unknown method. ValueError: a parameter out of range or a method that does not apply.
    """
    method = get_method(key)
    reason = method.applies(subject.model)
    if reason is not None:
        raise ValueError(f"{method.title} does not apply to this model: {reason}")
    p = method.resolve(params)
    t0 = time.perf_counter()
    out = run_method(method, subject, subject.inputs, p)
    extras = {}
    if isinstance(out, tuple):  # (attributions, extras)
        out, extras = out
    seconds = time.perf_counter() - t0
    attr = out.detach().float().cpu()
    return Explanation(method=key, title=method.title, params=p, attributions=attr[0].numpy(),
                       map=subject.reduce(attr), seconds=seconds, extras=extras)
