"""The model-family registry (torchvision ``models/_api.py``: ``@register_model()`` beside each builder).

Each family's config class registers itself next to its model, and says through its methods how it
adapts to a dataset, what an example input looks like and which inspection views apply. Adding a family
is one new module, imported by ``dlcore/models/__init__.py``.

Example:
    >>> @register_family("mlp", label="MLP", module="MLP")
    ... @dataclass(frozen=True)
    ... class MLPConfig(ModelConfig): ...
    >>> FAMILIES["mlp"].label, [f.name for f in list_families()]
    ('MLP', ['cnn', 'rnn', 'transformer', 'mlp'])
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

from dlcore.specs import SpecError


@dataclass(frozen=True)
class Family:
    """A registered model family.

    Attributes:
        name: the registry key, stored with every run ("cnn").
        label: the display name ("CNN").
        config: the config dataclass (a ``ModelConfig`` subclass).
        module_ref: the ``nn.Module`` class, or its name in the config's module (the model is usually
            defined below its config); read it as :attr:`module`.
    """
    name: str
    label: str
    config: type
    module_ref: type | str

    @property
    def module(self) -> type:
        """The ``nn.Module`` class built from a config of this family."""
        ref = self.module_ref
        return getattr(sys.modules[self.config.__module__], ref) if isinstance(ref, str) else ref


FAMILIES: dict[str, Family] = {}


def register_family(name: str, *, label: str, module: type | str) -> Callable[[type], type]:
    """Class decorator registering a config class as the family ``name``, built into ``module``.

    Args:
        name: registry key (also set as the class's ``family`` attribute).
        label: display name.
        module: the ``nn.Module`` class, or its name in the same module.

    Raises:
        ValueError: the name is already taken by another class.
    """
    def wrap(cls: type) -> type:
        old = FAMILIES.get(name)
        if old is not None and old.config.__qualname__ != cls.__qualname__:
            raise ValueError(f"model family {name!r} is already registered (by {old.config.__qualname__})")
        cls.family = name
        FAMILIES[name] = Family(name, label, cls, module)
        return cls
    return wrap


def unregister_family(name: str) -> None:
    """Remove a family (tests register toy families and take them out again)."""
    FAMILIES.pop(name, None)


def list_families() -> list[Family]:
    """Every registered family, in registration order."""
    return list(FAMILIES.values())


def get_family(name: str) -> Family:
    """The family registered as ``name``; SpecError listing the known ones."""
    if name not in FAMILIES:
        raise SpecError("family", f"family must be one of {', '.join(FAMILIES)}, got {name!r}")
    return FAMILIES[name]


__all__ = ["Family", "FAMILIES", "register_family", "unregister_family", "list_families", "get_family"]
