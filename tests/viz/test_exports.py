"""``dlcore.viz`` exports every figure builder of its modules, so pages need one import."""
from __future__ import annotations

import inspect

import pytest

from dlcore import viz

MODULES = [viz.architecture, viz.attribution, viz.data, viz.evaluation, viz.inspect, viz.training]


def _builders(module) -> dict[str, object]:
    """Public functions defined in the module that return a figure."""
    return {name: fn for name, fn in vars(module).items()
            if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_")
            and str(inspect.signature(fn).return_annotation).endswith("Figure")}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_figure_builder_is_exported(module):
    builders = _builders(module)
    assert builders, f"{module.__name__} has no figure builder"
    missing = sorted(set(builders) - set(viz.__all__))
    assert not missing, f"not in dlcore.viz.__all__: {missing}"
    for name, fn in builders.items():
        assert getattr(viz, name) is fn, name


def test_every_export_exists():
    assert len(set(viz.__all__)) == len(viz.__all__)
    for name in viz.__all__:
        assert getattr(viz, name) is not None, name
