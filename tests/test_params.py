"""Declared parameters: one FieldSpec checks spec fields and explanation-method parameters alike."""
from __future__ import annotations

import math

import numpy as np
import pytest

import dlcore
from dlcore import RNNConfig, SpecError, TrainSpec, field_specs
from dlcore.params import FieldSpec


def _refused(fs: FieldSpec, value, match: str, field: str | None = None) -> SpecError:
    with pytest.raises(SpecError, match=match) as err:
        fs.check(value)
    assert err.value.field == (field or fs.name)
    return err.value


def test_numbers_are_normalised_and_checked_against_their_range():
    n = FieldSpec("n_steps", "int", 50, range=(2, 1000))
    assert n.check(10.0) == 10 and type(n.check(10.0)) is int
    assert n.check(np.int64(7)) == 7 and type(n.check(np.int64(7))) is int
    _refused(n, 1, r"^n_steps must be 2\.\.1000, got 1$")
    _refused(n, 2.5, "n_steps must be a whole number, got 2.5")
    for bad in (math.nan, math.inf, -math.inf):
        _refused(n, bad, "n_steps must be a whole number")
    for bad in ("3", None, True, [3], np.bool_(True)):
        _refused(n, bad, "n_steps must be a number|n_steps is required")
    x = FieldSpec("noise", "float", 0.1, range=(0.0, None))
    assert x.check(5) == 5.0 and type(x.check(np.float32(0.5))) is float
    _refused(x, math.nan, "noise must be a finite number, got nan")
    _refused(x, -1.0, "noise must be 0.0..∞, got -1.0")
    assert FieldSpec("t", "float", 0.0).check(-1e300) == -1e300  # no range: any finite number


def test_text_flags_lists_and_optional_values():
    c = FieldSpec("baseline", "str", "zero", choices=("zero", "mean"))
    assert c.check("mean") == "mean"
    _refused(c, "blur", "baseline must be one of zero, mean; got 'blur'")
    _refused(c, 0, "baseline must be text")
    b = FieldSpec("absolute", "bool", True)
    assert b.check(np.bool_(False)) is False
    _refused(b, 1, "absolute must be true or false")
    t = FieldSpec("channels", "ints", (8,), range=(1, 64))
    assert t.check([4, 8.0]) == (4, 8)
    _refused(t, "4, 8", "channels must be a list")
    _refused(t, [4, 0], r"channels\[1\] must be 1\.\.64, got 0", field="channels[1]")
    s = FieldSpec("names", "strs", ())
    _refused(s, ["a", 3], r"names\[1\] must be text", field="names")
    assert FieldSpec("limit", "int", None, optional=True).check(None) is None
    _refused(FieldSpec("limit", "int", 0), None, "limit is required")


def test_a_field_spec_knows_its_label_and_refuses_unknown_kinds():
    assert FieldSpec("n_steps", "int", 1).label == "n steps"
    assert FieldSpec("n_steps", "int", 1, label="steps").label == "steps"
    with pytest.raises(ValueError, match="kind must be one of"):
        FieldSpec("x", "complex", 1j)


def test_spec_validation_is_the_field_specs_own_check():
    """The same object declares, validates and draws a field: validate's message is FieldSpec.check's."""
    hidden = next(f for f in field_specs(RNNConfig) if f.name == "hidden_size")
    with pytest.raises(SpecError) as direct:
        hidden.check(-3)
    with pytest.raises(SpecError) as via_spec:
        RNNConfig().replace(hidden_size=-3)
    assert str(direct.value) == str(via_spec.value) == "hidden_size must be 1..8192, got -3"
    lr = next(f for f in field_specs(TrainSpec) if f.name == "lr")
    assert (lr.kind, lr.range, lr.log, lr.from_data, lr.label) == ("float", (1e-7, 10.0), True, False, "lr")


@pytest.mark.parametrize("name,value,match", [
    ("n_steps", math.nan, "n_steps must be a whole number, got nan"),
    ("n_steps", math.inf, "n_steps must be a whole number"),
    ("integration", math.nan, "integration must be text"),
])
def test_nan_given_to_an_explanation_parameter_is_a_spec_error_naming_it(name, value, match):
    ig = dlcore.explain.get_method("integrated_gradients")
    with pytest.raises(SpecError, match=match) as err:
        ig.resolve({name: value})
    assert err.value.field == name
    noise = dlcore.explain.get_method("smoothgrad")
    with pytest.raises(SpecError, match="noise must be a finite number, got nan") as err:
        noise.resolve({"noise": math.nan})
    assert err.value.field == "noise"


def test_explanation_parameters_are_field_specs():
    for m in dlcore.explain.METHODS.values():
        assert all(isinstance(p, FieldSpec) for p in m.params)
    assert dlcore.explain.number("k", 3, (1, None)).kind == "int"
    assert dlcore.explain.number("k", 0.5).kind == "float"
    assert dlcore.explain.choice("c", "a", ("a", "b")).choices == ("a", "b")
    assert dlcore.explain.flag("f", True).kind == "bool"
