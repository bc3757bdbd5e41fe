"""Lazy package exports (PEP 562): a package maps each public name to the module defining it, and the module
is imported on first use. ``import dlcore`` then costs nothing, and a process that only reads the run store
(a queued worker) never imports torch."""
from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str], submodules: tuple[str, ...] = ()
                 ) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``.

    Args:
        package: the package's ``__name__``.
        exports: public name -> the module that defines it.
        submodules: names of submodules re-exported as attributes (``dlcore.viz``).

    Example:
        >>> __all__, __getattr__, __dir__ = lazy_exports(__name__, {"RunStore": "dlcore.runs.store"})
    """
    names = sorted([*exports, *submodules])

    def __getattr__(name: str):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # resolved once
        return value

    def __dir__() -> list[str]:
        return names

    return names, __getattr__, __dir__
