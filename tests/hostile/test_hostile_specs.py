"""Specs out of range, property-based: for every field that ``dlcore.field_specs`` lists (DataSpec,
TrainSpec and every model config), any value outside its range, choices or type is a SpecError that
names the field; any combination of in-range values is either accepted (and round-trips through JSON)
or a SpecError — never another exception."""
from __future__ import annotations

import json
import math
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlcore
from dlcore import SpecError

CLASSES = [dlcore.DataSpec, dlcore.TrainSpec, dlcore.CNNConfig, dlcore.RNNConfig, dlcore.TransformerConfig,
           dlcore.MLPConfig]
SETTINGS = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
NOT_NUMBERS = st.one_of(st.text(max_size=5), st.none(), st.booleans(), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


# a field's kind as the Python type it holds (``FieldSpec.kind`` names it: "int", ..., "ints" for tuple[int, ...])
_TYPES = {"int": int, "float": float, "bool": bool, "str": str,
          "ints": tuple[int, ...], "floats": tuple[float, ...], "strs": tuple[str, ...]}


def _type(f):
    return _TYPES[f.kind]


def _item_type(f):
    return typing.get_args(_type(f))[0] if typing.get_origin(_type(f)) is tuple else None


def _bad_number(kind: type, rng: tuple | None) -> st.SearchStrategy:
    """Numbers outside the range, non-finite and (for ints) fractional values, and things that are not numbers."""
    options = [NOT_NUMBERS, st.sampled_from([math.nan, math.inf, -math.inf])]
    if rng is not None:
        lo, hi = rng
        if kind is int:
            options += [st.integers(max_value=lo - 1), st.integers(min_value=hi + 1)]
        else:
            options += [st.floats(max_value=lo, exclude_max=True, allow_nan=False, allow_infinity=False),
                        st.floats(min_value=hi, exclude_min=True, allow_nan=False, allow_infinity=False)]
    if kind is int:
        options.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: not float(v).is_integer()))
    return st.one_of(options)


def _too_many(f) -> st.SearchStrategy:
    """A list one item longer than the field's bound (``FieldSpec.max_items``, else ``MAX_ITEMS``)."""
    from dlcore.params import MAX_ITEMS

    most = f.max_items or MAX_ITEMS
    item = f.default[0] if f.default else ("a" if f.kind == "strs" else 1)
    return st.just([item] * (most + 1))


def bad_value(f: dict) -> st.SearchStrategy:
    tp, item = _type(f), _item_type(f)
    if item is str:  # a tuple of text: not a list, a list holding a non-text item, or too many items
        return st.one_of(st.integers(), st.text(max_size=3), st.none(), _too_many(f),
                         st.lists(st.one_of(st.integers(), st.none(), st.booleans()), min_size=1, max_size=2))
    if item is not None:  # a tuple of numbers: not a list, a list with one bad item among good ones, too many
        good = st.integers(*f.range) if item is int else st.floats(*f.range)
        return st.one_of(st.integers(), st.text(max_size=3), st.none(), _too_many(f),
                         st.tuples(st.lists(good, max_size=2), _bad_number(item, f.range)
                                   .filter(lambda v: not isinstance(v, list))).map(lambda t: [*t[0], t[1]]))
    if tp in (int, float):
        return _bad_number(tp, f.range)
    if tp is bool:
        return st.one_of(st.integers(), st.text(max_size=4), st.none(), st.floats(allow_nan=False))
    if tp is str:
        wrong_type = st.one_of(st.integers(), st.none(), st.booleans(), st.lists(st.text(max_size=2), max_size=2),
                               st.just("x" * 1001))  # text past MAX_CHARS
        if f.choices:
            return st.one_of(wrong_type, st.text(max_size=12).filter(lambda s: s not in f.choices))
        return wrong_type
    raise AssertionError(f"no strategy for {f.name}: {tp}")


def good_value(f: dict) -> st.SearchStrategy:
    tp, item = _type(f), _item_type(f)
    if item is str:
        return st.lists(st.text(max_size=8), max_size=4)
    if item is not None:
        return st.lists(st.integers(*f.range) if item is int else st.floats(*f.range), min_size=1, max_size=4)
    if tp is int:
        return st.integers(*f.range)
    if tp is float:
        return st.floats(*f.range, allow_nan=False)
    if tp is bool:
        return st.booleans()
    if tp is str:
        return st.sampled_from(f.choices) if f.choices else st.text(max_size=20)
    raise AssertionError(f"no strategy for {f.name}: {tp}")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_any_bad_field_value_is_a_spec_error_naming_it(cls, data):
    f = data.draw(st.sampled_from(dlcore.field_specs(cls)), label="field")
    value = data.draw(bad_value(f), label="value")
    with pytest.raises(SpecError) as info:
        cls.from_dict({f.name: value})
    err = info.value
    assert err.field == f.name or err.field.startswith(f.name + "["), (err.field, str(err))
    assert f.name in str(err)
    with pytest.raises(SpecError):  # the JSON path (the run store, uploads) refuses it the same way
        cls.from_json(json.dumps({f.name: value}, allow_nan=True))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_in_range_values_are_accepted_or_a_spec_error(cls, data):
    fields = dlcore.field_specs(cls)
    chosen = data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4, unique_by=lambda f: f.name))
    values = {f.name: data.draw(good_value(f), label=f.name) for f in chosen}
    try:
        spec = cls.from_dict(values)
    except SpecError as e:  # a rule across fields (heads must divide d_model, pools per block, ...)
        assert e.field and str(e)
        return
    assert cls.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("text, field", [
    ('{"epochs": NaN}', "epochs"), ('{"lr": Infinity}', "lr"), ('{"lr": -1e-9}', "lr"), ('{"batch_size": 0}', "batch_size"),
    ('{"epochs": 1e400}', "epochs"), ('{"optimizer": "lbfgs"}', "optimizer"), ('{"compile": "yes"}', "compile"),
    ('{"not_a_field": 1}', "not_a_field"), ("[]", "json"), ('{"epochs": ', "json"),
])
def test_hostile_train_spec_json(text, field):
    with pytest.raises(SpecError) as info:
        dlcore.TrainSpec.from_json(text)
    assert info.value.field == field


@pytest.mark.parametrize("data, field", [
    ({"family": "cnn", "config": {"channels": []}}, "channels"),
    ({"family": "cnn", "config": {"channels": [8, 8], "pools": [2]}}, "pools"),
    ({"family": "cnn", "config": {"image_size": 4, "channels": [8, 8, 8], "pools": [2, 2, 2]}}, "channels"),
    ({"family": "transformer", "config": {"d_model": 64, "n_heads": 5}}, "n_heads"),
    ({"family": "transformer", "config": {"kind": "vit", "image_size": 28, "patch_size": 5}}, "patch_size"),
    ({"family": "transformer", "config": {"kind": "decoder", "vocab_size": 0}}, "vocab_size"),
    ({"family": "gan"}, "family"), ({"config": {}}, "family"), ("cnn", "family"),
])
def test_model_specs_that_cannot_be_built(data, field):
    with pytest.raises(SpecError) as info:
        dlcore.model_from_dict(data)
    assert info.value.field == field
