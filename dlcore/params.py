"""Declared parameters: one description of a value a user may set — its kind, default, allowed range or
choices, help text — shared by spec fields (``dlcore.specs.field_specs``) and explanation methods'
parameters (``dlcore.explain.number/choice/flag``). Validation and the app's widgets both read it, so a
range is written once (captum Insights ``config.py``: ``NumberConfig(value=25, limit=(2, None))``).

Example:
    >>> n = FieldSpec("n_steps", "int", 50, range=(2, 1000))
    >>> n.check(10.0)
    10
    >>> n.check(1)
    Traceback (most recent call last):
    SpecError: n_steps must be 2..1000, got 1
"""
from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass
from typing import Any

KINDS = ("int", "float", "bool", "str", "ints", "floats", "strs")  # the last three: tuples of items
MAX_ITEMS = 256  # items of a tuple field unless it declares its own bound (a spec's cost grows with its lists)
MAX_CHARS = 1000  # characters of a text value (names, ids, layer names)


class SpecError(ValueError):
    """A spec field or a parameter is missing, of the wrong type, or out of its allowed range.

    Attributes:
        field: the name of the offending field (dotted for nested specs).
    """

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _is_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    np = sys.modules.get("numpy")  # a numpy bool can only exist once numpy is imported
    return np is not None and isinstance(value, np.bool_)


@dataclass(frozen=True)
class FieldSpec:
    """One declared value.

    Attributes:
        name: the field or parameter name (errors name it).
        kind: int, float, bool, str, or ints/floats/strs for tuples of those.
        default: the default value.
        range: inclusive (low, high) for numbers (each item of a tuple); either end may be None (open).
        choices: the allowed values, or None.
        help: one line shown next to the widget.
        log: a log-scale widget fits (learning rates).
        from_data: filled in from the dataset (``for_data``), not chosen by the user: shown read-only.
        optional: None is allowed.
        label: the widget's label (default: the name with spaces).
        max_items: most items a tuple may hold (default :data:`MAX_ITEMS`): what a model costs to build and
            to summarise grows with its lists, so 10,000 conv blocks are refused at once.
    """
    name: str
    kind: str
    default: Any = None
    range: tuple | None = None
    choices: tuple | None = None
    help: str = ""
    log: bool = False
    from_data: bool = False
    optional: bool = False
    label: str = ""
    max_items: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))

    @property
    def item_kind(self) -> str:
        """The kind of one value: ``int`` for ``ints``; the kind itself for scalars."""
        return {"ints": "int", "floats": "float", "strs": "str"}.get(self.kind, self.kind)

    @property
    def is_tuple(self) -> bool:
        return self.kind in ("ints", "floats", "strs")

    def check(self, value: Any, name: str | None = None) -> Any:
        """The value normalised (whole floats to int, lists to tuples, numpy scalars to Python ones).

        Args:
            value: the value to check.
            name: the name to report instead of ``self.name`` (a dotted path in a nested spec).

        Raises:
            SpecError: naming the field, with the rule it breaks and the value it got (NaN included).
        """
        name = name or self.name
        if value is None:
            if self.optional:
                return None
            raise SpecError(name, f"{name} is required")
        if not self.is_tuple:
            return self._check_item(name, name, value)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise SpecError(name, f"{name} must be a list, got {_short(value)}")
        most = MAX_ITEMS if self.max_items is None else self.max_items
        if len(value) > most:
            raise SpecError(name, f"{name} may list at most {most:,} items, got {len(value):,}")
        # number items are reported as name[i] (the range applies to each); text items under the field's name
        return tuple(self._check_item(f"{name}[{i}]" if self.item_kind != "str" else name, f"{name}[{i}]", v)
                     for i, v in enumerate(value))

    def _check_item(self, field: str, label: str, value: Any) -> Any:
        kind = self.item_kind
        if kind in ("int", "float"):
            value = _number(field, label, value, kind, self.range)
        elif kind == "bool":
            if not _is_bool(value):
                raise SpecError(field, f"{label} must be true or false, got {_short(value)}")
            value = bool(value)
        elif not isinstance(value, str):
            raise SpecError(field, f"{label} must be text, got {_short(value)}")
        elif len(value) > MAX_CHARS:
            raise SpecError(field, f"{label} may be at most {MAX_CHARS:,} characters, got {len(value):,}")
        if self.choices is not None and value not in self.choices:
            raise SpecError(field, f"{label} must be one of {', '.join(map(str, self.choices))}; got {_short(value)}")
        return value


def _short(value: Any) -> str:
    """repr of a value for a message, cut to 60 characters (a hostile value may be megabytes)."""
    try:
        text = repr(value)
    except ValueError:  # an int of more than 4,300 digits has no repr
        return "a number too long to print"
    return text if len(text) <= 60 else text[:57] + "..."


def _number(field: str, label: str, value: Any, kind: str, rng: tuple | None) -> int | float:
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise SpecError(field, f"{label} must be a number, got {_short(value)}")
    if kind == "int":
        if isinstance(value, numbers.Integral):
            value = int(value)
        else:
            f = float(value)
            if not f.is_integer():  # NaN and ±inf included
                raise SpecError(field, f"{label} must be a whole number, got {_short(value)}")
            value = int(f)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise SpecError(field, f"{label} must be a finite number, got {_short(value)}")
    if rng is not None:
        lo, hi = rng
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            low, high = "-∞" if lo is None else lo, "∞" if hi is None else hi
            raise SpecError(field, f"{label} must be {low}..{high}, got {_short(value)}")
    return value


__all__ = ["FieldSpec", "SpecError", "KINDS", "MAX_ITEMS", "MAX_CHARS"]
