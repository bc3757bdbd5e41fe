"""Specs: the dataclasses that describe a run, their validation and their JSON form.

Every spec is a frozen dataclass whose fields carry their allowed range in ``metadata``
(``spec_field``), read back as :class:`dlcore.params.FieldSpec` by :func:`field_specs`. Every construction
is checked (``__post_init__`` runs ``FieldSpec.check`` on each field, then the spec's cross-field
``_check``), so ``TrainSpec(batch_size=0)`` raises :class:`SpecError` naming the field however a spec is
made: directly, from JSON, from a form, through ``dataclasses.replace``. The app's forms, the CLI, the
tests and the explanation methods' parameters share this one source of truth.

Example:
    >>> spec = TrainSpec(epochs=5, lr=1e-3)
    >>> TrainSpec.from_dict(spec.to_dict()) == spec
    True
"""
from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from dlcore.params import FieldSpec, SpecError

__all__ = ["SpecError", "FieldSpec", "spec_field", "field_specs", "data_fields", "validate", "build",
           "expect_spec", "DataSpec", "TrainSpec"]

MAX_JSON_CHARS = 1_000_000  # a spec's JSON text; real ones are a few hundred characters
_UNCHECKED = contextvars.ContextVar("dle_unchecked_spec", default=False)  # see _SpecMixin.unchecked_replace


def spec_field(default: Any, *, range: tuple | None = None, choices: tuple | None = None,
               help: str = "", log: bool = False, from_data: bool = False, max_items: int | None = None) -> Any:
    """A dataclass field that declares its allowed values (used by validation, forms and tests).

    Args:
        default: default value (tuples for sequences, to keep specs hashable and frozen).
        range: inclusive (low, high) for numbers, or for every item of a tuple of numbers.
        choices: allowed values for strings.
        help: one line shown next to the widget in the app.
        log: hint for the UI that a log-scale widget fits (learning rates).
        from_data: the field is filled in from the dataset by ``for_data`` (input sizes, outputs, loss):
            the app shows it read-only and :meth:`diff` can leave it out.
        max_items: for a tuple, the most items it may hold (default ``dlcore.params.MAX_ITEMS``).
    """
    meta = {"range": range, "choices": choices, "help": help, "log": log, "from_data": from_data,
            "max_items": max_items}
    return field(default=default, metadata=meta)


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


_KIND = {int: "int", float: "float", bool: "bool", str: "str"}


def _kind(tp: Any, where: str) -> str:
    base = _base_type(tp)
    if base in _KIND:
        return _KIND[base]
    if typing.get_origin(base) is tuple and typing.get_args(base)[0] in _KIND:
        return _KIND[typing.get_args(base)[0]] + "s"
    raise TypeError(f"{where}: spec fields are int, float, bool, str or tuple[...] of those, got {tp!r}")


@functools.lru_cache(maxsize=None)
def _field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """Computed once per class (type hints dominated listing many runs otherwise)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        out.append(FieldSpec(f.name, _kind(hints[f.name], f"{cls.__name__}.{f.name}"), f.default,
                             range=m.get("range"), choices=m.get("choices"), help=m.get("help", ""),
                             log=m.get("log", False), from_data=m.get("from_data", False),
                             optional=_is_optional(hints[f.name]), max_items=m.get("max_items")))
    return tuple(out)


def field_specs(cls: type) -> list[FieldSpec]:
    """The declared fields of a spec class (name, kind, default, range, choices, help, from_data, ...),
    from which validation runs and the app builds its forms.

    Example:
        >>> [f.name for f in field_specs(CNNConfig) if f.from_data]
        ['in_channels', 'image_size', 'num_outputs', 'loss', 'input_mean', 'input_std']
    """
    return list(_field_specs(cls))


def data_fields(cls: type) -> frozenset[str]:
    """Names of the fields ``for_data`` fills in (``spec_field(..., from_data=True)``)."""
    return frozenset(f.name for f in _field_specs(cls) if f.from_data)


def validate(spec: Any, prefix: str = "") -> Any:
    """Check every field of a spec dataclass with its :class:`FieldSpec` (type, range, choices), then the
    spec's own cross-field ``_check`` if it has one.

    Returns a copy with values normalised (ints as int, lists as tuples); raises SpecError (also when
    ``spec`` is not a spec at all).
    """
    if not (dataclasses.is_dataclass(spec) and isinstance(spec, _SpecMixin)):
        raise SpecError(prefix.rstrip(".") or "spec", f"expected a spec (DataSpec, TrainSpec or a model config), got "
                                                      f"{type(spec).__name__} {_short(spec)}")
    changes = {fs.name: fs.check(getattr(spec, fs.name), prefix + fs.name) for fs in _field_specs(type(spec))}
    return dataclasses.replace(spec, **changes)  # __post_init__ runs the cross-field _check


def expect_spec(value: Any, cls: type, what: str, hint: str = "") -> Any:
    """``value`` if it is an instance of the spec class ``cls``, else a SpecError naming the argument and
    what to pass instead (``start_run("digits", ...)`` instead of ``DataSpec(name="digits")``).

    Example:
        >>> expect_spec("digits", DataSpec, "data")
        Traceback (most recent call last):
        SpecError: data must be a DataSpec, got str 'digits': pass DataSpec(...) (for a dict: DataSpec.from_dict(d))
    """
    if not isinstance(value, cls):
        hint = hint or f"{cls.__name__}(...) (for a dict: {cls.__name__}.from_dict(d))"
        raise SpecError(what, f"{what} must be a {cls.__name__}, got {type(value).__name__} {_short(value)}: pass "
                              f"{hint}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        return cls(**data)  # checked in __post_init__
    except TypeError as e:  # pragma: no cover - every field has a default
        raise SpecError("?", str(e)) from e


def load_json_object(text: Any, what: str = "the spec") -> dict:
    """A JSON object from untrusted text; SpecError (field ``json``) for anything else: not text, too long,
    invalid, nested too deep (``'[' * 100000``), numbers too long to read, or not an object."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise SpecError("json", f"{what} is not UTF-8 text (byte {e.start})") from e
    if not isinstance(text, str):
        raise SpecError("json", f"{what} must be JSON text, got {type(text).__name__}")
    if len(text) > MAX_JSON_CHARS:
        raise SpecError("json", f"{what} is {len(text):,} characters of JSON; at most {MAX_JSON_CHARS:,} are read")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError("json", f"{what} is not valid JSON: {e}") from e
    except RecursionError as e:
        raise SpecError("json", f"{what} is nested too deeply to be a spec") from e
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        raise SpecError("json", f"{what} is not valid JSON: {str(e)[:100]}") from e
    if not isinstance(data, dict):
        raise SpecError("json", f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


class _SpecMixin:
    """Validation on construction and the JSON round-trip, shared by every spec."""

    def __post_init__(self) -> None:
        """Check and normalise every field (a frozen dataclass: through ``object.__setattr__``), then the
        spec's own cross-field ``_check``; raises SpecError naming the field."""
        if _UNCHECKED.get():
            return
        for fs in _field_specs(type(self)):
            object.__setattr__(self, fs.name, fs.check(getattr(self, fs.name)))
        check = getattr(self, "_check", None)
        if check is not None:
            check()

    def unchecked_replace(self, **changes: Any) -> Any:
        """A copy with some fields changed and *not* validated — for comparing configs (``with_data_of``),
        never for building a model or a run."""
        token = _UNCHECKED.set(True)
        try:
            return dataclasses.replace(self, **changes)
        finally:
            _UNCHECKED.reset(token)

    def to_dict(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def diff(self, include_data: bool = True) -> dict:
        """The fields whose value differs from the class default, JSON-ready like :meth:`to_dict`
        (Hugging Face ``to_json_string(use_diff=True)``).

        Args:
            include_data: False leaves out the fields set from the data (``from_data``).

        Example:
            >>> TrainSpec(epochs=3).diff()
            {'epochs': 3}
        """
        return {fs.name: _jsonable(v) for fs in _field_specs(type(self))
                if (v := getattr(self, fs.name)) != fs.default and (include_data or not fs.from_data)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Any:
        if not isinstance(data, dict):
            raise SpecError("json", f"a {cls.__name__} must be given as an object of fields, got "
                                    f"{type(data).__name__} {_short(data)}")
        return build(cls, data)

    @classmethod
    def from_json(cls, text: str) -> Any:
        return cls.from_dict(load_json_object(text, f"a {cls.__name__}"))

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
    classes: tuple[int, ...] = spec_field((), range=(0, 100_000), help="keep only these classes, relabelled 0..k-1 in this order (empty = all)")
    per_class: int = spec_field(0, range=(0, 10_000_000), help="at most this many labelled examples per class, validation included (0 = all)")


@dataclass(frozen=True)
class TrainSpec(_SpecMixin):
    """How to train."""
    epochs: int = spec_field(5, range=(1, 10_000), help="passes over the training set")
    batch_size: int = spec_field(32, range=(1, 65_536), help="examples per forward/backward pass, in total over all processes; an optimizer step uses batch_size × grad_accum")
    lr: float = spec_field(1e-3, range=(1e-7, 10.0), log=True, help="peak learning rate")
    optimizer: str = spec_field("adamw", choices=("adamw", "adam", "sgd"), help="optimizer")
    momentum: float = spec_field(0.9, range=(0.0, 0.999), help="SGD momentum")
    weight_decay: float = spec_field(0.0, range=(0.0, 1.0), help="decoupled weight decay")
    l1: float = spec_field(0.0, range=(0.0, 1.0), help="L1 penalty: this times the sum of |weights| is added to the training loss (0 = off)")
    augment_shift: float = spec_field(0.0, range=(0.0, 8.0), help="images: shift each training image by up to this many pixels (0 = off)")
    augment_degrees: float = spec_field(0.0, range=(0.0, 45.0), help="images: rotate each training image by up to this many degrees (0 = off)")
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
    init_from: str = spec_field("", help="start from this finished run's weights; a new output layer when the classes differ")
    freeze: tuple[str, ...] = spec_field((), help="layers not trained: 'body' (all but the output layer), 'all', or names such as features.0")
