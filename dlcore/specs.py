"""Specs: the dataclasses that describe a run, their validation and their JSON form.

Every spec is a frozen dataclass whose fields carry their allowed range in ``metadata``
(``spec_field``). One walker, :func:`validate`, checks any spec against those ranges and raises
:class:`SpecError` naming the field, so the app's forms, the CLI and the tests share one source of truth.

Example:
    >>> spec = TrainSpec(epochs=5, lr=1e-3)
    >>> TrainSpec.from_dict(spec.to_dict()) == spec
    True
"""
from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any


class SpecError(ValueError):
    """A spec field is missing, of the wrong type, or out of its allowed range.

    Attributes:
        field: the name of the offending field (dotted for nested specs).
    """

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def spec_field(default: Any, *, range: tuple | None = None, choices: tuple | None = None,
               help: str = "", log: bool = False) -> Any:
    """A dataclass field that declares its allowed values (used by validation, forms and tests).

    Args:
        default: default value (tuples for sequences, to keep specs hashable and frozen).
        range: inclusive (low, high) for numbers, or for every item of a tuple of numbers.
        choices: allowed values for strings.
        help: one line shown next to the widget in the app.
        log: hint for the UI that a log-scale widget fits (learning rates).
    """
    meta = {"range": range, "choices": choices, "help": help, "log": log}
    return field(default=default, metadata=meta)


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict:
    """typing.get_type_hints per spec class, computed once (it dominates listing many runs otherwise)."""
    return typing.get_type_hints(cls)


def _base_type(tp: Any) -> Any:
    """Strip Optional[...] and return the underlying type (tuple stays tuple)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else tp
    return tp


def _is_optional(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _check_number(name: str, value: Any, want: type, rng: tuple | None) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(name, f"{name} must be a number, got {value!r}")
    if want is int:
        if isinstance(value, float) and not value.is_integer():
            raise SpecError(name, f"{name} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise SpecError(name, f"{name} must be a finite number, got {value!r}")
    if rng is not None:
        lo, hi = rng
        if not (lo <= value <= hi):
            raise SpecError(name, f"{name} must be {lo}..{hi}, got {value!r}")
    return value


def validate(spec: Any, prefix: str = "") -> Any:
    """Check every field of a spec dataclass against its declared type and range.

    Returns a copy with values normalised (ints as int, lists as tuples); raises SpecError.
    """
    hints = _hints(type(spec))
    changes = {}
    for f in dataclasses.fields(spec):
        name = prefix + f.name
        value = getattr(spec, f.name)
        tp = hints[f.name]
        meta = f.metadata
        if value is None:
            if _is_optional(tp):
                continue
            raise SpecError(name, f"{name} is required")
        base = _base_type(tp)
        origin = typing.get_origin(base)
        if base in (int, float):
            value = _check_number(name, value, base, meta.get("range"))
        elif base is bool:
            if not isinstance(value, bool):
                raise SpecError(name, f"{name} must be true or false, got {value!r}")
        elif base is str:
            if not isinstance(value, str):
                raise SpecError(name, f"{name} must be text, got {value!r}")
            choices = meta.get("choices")
            if choices and value not in choices:
                raise SpecError(name, f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
        elif origin is tuple:
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise SpecError(name, f"{name} must be a list, got {value!r}")
            item_t = typing.get_args(base)[0]
            items = []
            for i, v in enumerate(value):
                if item_t in (int, float):
                    items.append(_check_number(f"{name}[{i}]", v, item_t, meta.get("range")))
                elif item_t is str:
                    if not isinstance(v, str):
                        raise SpecError(name, f"{name}[{i}] must be text, got {v!r}")
                    items.append(v)
                else:
                    items.append(v)
            value = tuple(items)
        changes[f.name] = value
    out = dataclasses.replace(spec, **changes)
    check = getattr(out, "_check", None)
    if check is not None:
        check()
    return out


def build(cls: type, data: dict | None = None, **overrides: Any) -> Any:
    """Build and validate a spec from a dict, refusing unknown keys by name.

    Raises:
        SpecError: an unknown field, or a value out of range.
    """
    data = dict(data or {})
    data.update(overrides)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(unknown[0], f"unknown field {unknown[0]!r} for {cls.__name__}; "
                                    f"known fields: {', '.join(sorted(names))}")
    try:
        obj = cls(**data)
    except TypeError as e:  # pragma: no cover - every field has a default
        raise SpecError("?", str(e)) from e
    return validate(obj)


def field_specs(cls: type) -> list[dict]:
    """Describe each field of a spec class (name, default, range, choices, help) for UI forms."""
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        out.append({"name": f.name, "type": _base_type(hints[f.name]), "default": f.default,
                    "optional": _is_optional(hints[f.name]), **f.metadata})
    return out


class _SpecMixin:
    """JSON round-trip shared by every spec."""

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Any:
        return build(cls, data)

    @classmethod
    def from_json(cls, text: str) -> Any:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError("json", f"spec is not valid JSON: {e}") from e
        if not isinstance(data, dict):
            raise SpecError("json", "spec JSON must be an object")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> Any:
        """A validated copy with some fields changed."""
        return build(type(self), {**self.to_dict(), **changes})


@dataclass(frozen=True)
class DataSpec(_SpecMixin):
    """Which dataset, and how to cut it."""
    name: str = spec_field("mnist5k", help="dataset name from the registry, or an uploaded dataset id")
    val_fraction: float = spec_field(0.1, range=(0.0, 0.5), help="share of the training set held out for validation")
    max_train: int = spec_field(0, range=(0, 10_000_000), help="use at most this many training examples (0 = all)")
    seq_len: int = spec_field(8, range=(2, 256), help="length of the algorithmic sequences (reverse/sort)")
    window: int = spec_field(24, range=(2, 1024), help="input window for forecasting; context for the char LM")
    horizon: int = spec_field(1, range=(1, 256), help="how many future steps a forecaster predicts")
    seed: int = spec_field(0, range=(0, 2**31 - 1), help="seed for splits and generated data")


@dataclass(frozen=True)
class TrainSpec(_SpecMixin):
    """How to train."""
    epochs: int = spec_field(5, range=(1, 10_000), help="passes over the training set")
    batch_size: int = spec_field(32, range=(1, 65_536), help="examples per forward/backward pass, in total over all processes; an optimizer step uses batch_size × grad_accum")
    lr: float = spec_field(1e-3, range=(1e-7, 10.0), log=True, help="peak learning rate")
    optimizer: str = spec_field("adamw", choices=("adamw", "adam", "sgd"), help="optimizer")
    momentum: float = spec_field(0.9, range=(0.0, 0.999), help="SGD momentum")
    weight_decay: float = spec_field(0.0, range=(0.0, 1.0), help="decoupled weight decay")
    schedule: str = spec_field("cosine", choices=("constant", "cosine", "onecycle"), help="learning-rate schedule")
    warmup_steps: int = spec_field(0, range=(0, 1_000_000), help="linear warm-up steps (constant/cosine)")
    grad_clip: float = spec_field(0.0, range=(0.0, 1e6), help="clip gradient norm to this (0 = off)")
    grad_accum: int = spec_field(1, range=(1, 1024), help="micro-batches per optimizer step")
    early_stop_patience: int = spec_field(0, range=(0, 1000), help="stop after this many epochs without improvement (0 = off)")
    precision: str = spec_field("auto", choices=("auto", "fp32", "bf16"), help="bf16 autocast on CUDA when auto")
    device: str = spec_field("auto", choices=("auto", "cpu", "cuda", "mps"), help="compute device")
    seed: int = spec_field(0, range=(0, 2**31 - 1), help="seed for weights and batch order")
    max_steps: int = spec_field(0, range=(0, 100_000_000), help="stop after this many optimizer steps (0 = no limit)")
    eval_max: int = spec_field(0, range=(0, 10_000_000), help="evaluate on at most this many examples (0 = all)")
    compile: bool = spec_field(False, help="torch.compile the model (CUDA)")
    checkpointing: bool = spec_field(False, help="activation checkpointing to save memory")
    log_every: int = spec_field(10, range=(1, 100_000), help="record the loss every N steps")
