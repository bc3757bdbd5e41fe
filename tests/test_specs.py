"""Specs: every field's declared range is enforced with a SpecError naming the field; JSON round-trips."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dlcore import (PRESETS, CNNConfig, DataSpec, MLPConfig, RNNConfig, SpecError, TrainSpec, TransformerConfig,
                    field_specs, model_from_dict, model_to_dict)
from dlcore.specs import build

SPECS = [DataSpec, TrainSpec, CNNConfig, RNNConfig, TransformerConfig, MLPConfig]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# a field's kind as the Python type it holds (``FieldSpec.kind`` names it: "int", ..., "ints" for tuple[int, ...])
_TYPES = {"int": int, "float": float, "bool": bool, "str": str,
          "ints": tuple[int, ...], "floats": tuple[float, ...], "strs": tuple[str, ...]}


def _type(f):
    return _TYPES[f.kind]


def _fields(cls, pred):
    return [(cls, f) for f in field_specs(cls) if pred(f)]


def _is_tuple(f) -> bool:
    return getattr(_type(f), "__origin__", None) is tuple


NUMERIC = [p for c in SPECS for p in _fields(c, lambda f: _type(f) in (int, float) and f.range)]
TUPLES = [p for c in SPECS for p in _fields(c, lambda f: _is_tuple(f) and f.range)]
CHOICES = [p for c in SPECS for p in _fields(c, lambda f: f.choices)]
BOOLS = [p for c in SPECS for p in _fields(c, lambda f: _type(f) is bool)]


def _outside(f) -> st.SearchStrategy:
    """Numbers strictly outside a field's declared range (and of the field's type)."""
    lo, hi = f.range
    if _type(f) is int:
        return st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1))
    below = st.floats(max_value=lo, allow_nan=False, allow_infinity=False).filter(lambda v: v < lo)
    above = st.floats(min_value=hi, allow_nan=False, allow_infinity=False).filter(lambda v: v > hi)
    return st.one_of(below, above)


def _inside(f) -> st.SearchStrategy:
    lo, hi = f.range
    if _type(f) is int:
        return st.integers(min_value=lo, max_value=hi)
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


# ---------------------------------------------------------------- the example, verbatim
def test_error_message_names_field_and_range():
    with pytest.raises(SpecError) as err:
        RNNConfig().replace(hidden_size=-3)
    assert err.value.field == "hidden_size"
    assert str(err.value) == "hidden_size must be 1..8192, got -3"


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


# ---------------------------------------------------------------- properties over every declared field
def test_the_walk_covers_every_spec_family():
    """Guards the parametrisation below: if field_specs stopped reporting ranges, these lists would be empty."""
    assert {c for c, _ in NUMERIC} == set(SPECS)
    assert {"channels", "pools", "hidden"} <= {f.name for _, f in TUPLES}
    assert {"optimizer", "schedule", "cell", "kind", "padding"} <= {f.name for _, f in CHOICES}


def _assert_names(cls, name: str, value, field: str | None = None):
    with pytest.raises(SpecError) as err:
        build(cls, {name: value})
    assert err.value.field == (field or name), (cls.__name__, name, value, str(err.value))
    assert (field or name) in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("cls", SPECS, ids=lambda c: c.__name__)
def test_just_outside_each_range_names_the_field_and_the_range(cls):
    for c, f in NUMERIC:
        if c is cls:
            lo, hi = f.range
            step = 1 if _type(f) is int else max(abs(lo), abs(hi), 1.0) * 1e-6
            for value in (lo - step, hi + step):
                msg = _assert_names(cls, f.name, value)
                assert msg.startswith(f"{f.name} must be {lo}..{hi}, got ")


@pytest.mark.parametrize("cls", SPECS, ids=lambda c: c.__name__)
def test_wrong_types_and_non_finite_numbers_name_the_field(cls):
    for c, f in NUMERIC:
        if c is cls:
            bads = ["12", None, True, [1]] + ([1.5] if _type(f) is int else [math.nan, math.inf, -math.inf])
            for bad in bads:
                _assert_names(cls, f.name, bad)


@FAST
@given(pair=st.sampled_from(NUMERIC), data=st.data())
def test_any_out_of_range_number_names_its_field(pair, data):
    cls, f = pair
    value = data.draw(_outside(f))
    msg = _assert_names(cls, f.name, value)
    lo, hi = f.range
    assert msg.startswith(f"{f.name} must be {lo}..{hi}, got ")


@FAST
@given(pair=st.sampled_from([(c, f) for c, f in NUMERIC if c in (DataSpec, TrainSpec)]), data=st.data())
def test_any_in_range_number_is_accepted_for_data_and_train(pair, data):
    cls, f = pair  # (model configs also check fields against each other, see below)
    value = data.draw(_inside(f))
    spec = build(cls, {f.name: value})
    assert getattr(spec, f.name) == (int(value) if _type(f) is int else float(value))
    assert type(getattr(spec, f.name)) is _type(f)


@FAST
@given(pair=st.sampled_from(TUPLES), data=st.data())
def test_out_of_range_list_item_names_its_field_and_index(pair, data):
    cls, f = pair
    items = list(f.default) or [f.range[0]]  # an empty default (DataSpec.classes): one valid item
    i = data.draw(st.integers(0, len(items) - 1))
    items[i] = data.draw(_outside(f))
    msg = _assert_names(cls, f.name, items, field=f"{f.name}[{i}]")
    assert msg.startswith(f"{f.name}[{i}] must be")


def test_list_fields_refuse_a_scalar_or_a_string():
    for cls, f in TUPLES:
        for bad in (3, "32,64"):
            _assert_names(cls, f.name, bad)


@FAST
@given(pair=st.sampled_from(CHOICES), value=st.text(max_size=12))
def test_unknown_choice_names_its_field_and_lists_the_choices(pair, value):
    cls, f = pair
    assume(value not in f.choices)
    msg = _assert_names(cls, f.name, value)
    assert all(c in msg for c in f.choices)


def test_bool_fields_refuse_non_bools():
    for cls, f in BOOLS:
        for bad in (1, "yes", None):
            _assert_names(cls, f.name, bad)


@pytest.mark.parametrize("cls", SPECS, ids=lambda c: c.__name__)
def test_unknown_field_is_named_with_the_known_ones(cls):
    with pytest.raises(SpecError) as err:
        build(cls, {"hiden_size": 3})
    assert err.value.field == "hiden_size"
    assert "known fields" in str(err.value)


def test_whole_number_floats_become_ints_and_lists_become_tuples():
    spec = TrainSpec.from_dict({"epochs": 3.0, "batch_size": 16})
    assert spec.epochs == 3 and type(spec.epochs) is int
    cfg = CNNConfig.from_dict({"channels": [4, 8], "pools": [2, 2], "hidden": [16]})
    assert cfg.channels == (4, 8) and isinstance(cfg.channels, tuple)
    hash(cfg)  # frozen and hashable


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainSpec().epochs = 3  # type: ignore[misc]


# ---------------------------------------------------------------- cross-field checks
@pytest.mark.parametrize("cls,changes,field", [
    (TransformerConfig, {"d_model": 64, "n_heads": 5}, "n_heads"),
    (TransformerConfig, {"kind": "vit", "image_size": 28, "patch_size": 5}, "patch_size"),
    (TransformerConfig, {"kind": "decoder", "vocab_size": 0}, "vocab_size"),
    (CNNConfig, {"channels": [], "pools": []}, "channels"),
    (CNNConfig, {"channels": [8, 16], "pools": [2]}, "pools"),
    (CNNConfig, {"image_size": 8, "channels": [8, 8, 8], "pools": [2, 2, 2]}, "channels"),
])
def test_cross_field_checks_name_the_field(cls, changes, field):
    with pytest.raises(SpecError) as err:
        build(cls, changes)
    assert err.value.field == field


# ---------------------------------------------------------------- JSON round-trip
def _valid(cls) -> st.SearchStrategy:
    """Random valid DataSpec/TrainSpec instances drawn from the declared ranges and choices."""
    parts = {}
    for f in field_specs(cls):
        if _type(f) in (int, float) and f.range:
            parts[f.name] = _inside(f)
        elif f.choices:
            parts[f.name] = st.sampled_from(f.choices)
        elif _type(f) is bool:
            parts[f.name] = st.booleans()
    return st.fixed_dictionaries(parts).map(lambda d: build(cls, d))


@settings(max_examples=40, deadline=None)
@given(spec=st.one_of(_valid(TrainSpec), _valid(DataSpec)))
def test_json_round_trip_of_random_valid_specs(spec):
    text = spec.to_json()
    assert json.loads(text) == spec.to_dict()
    assert type(spec).from_json(text) == spec


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_round_trips_through_json(name):
    cfg = PRESETS[name].config
    text = json.dumps(model_to_dict(cfg))
    again = model_from_dict(json.loads(text))
    assert again == cfg and type(again) is type(cfg)
    assert type(cfg).from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_recommended_train_settings_are_valid(name):
    TrainSpec().replace(**PRESETS[name].train)


@pytest.mark.parametrize("text,field", [("{not json", "json"), ("[1, 2]", "json"), ('{"epochs": 0}', "epochs")])
def test_bad_json_is_a_spec_error(text, field):
    with pytest.raises(SpecError) as err:
        TrainSpec.from_json(text)
    assert err.value.field == field


@pytest.mark.parametrize("data,field", [({}, "family"), ({"family": "gan"}, "family"),
                                        ({"family": "rnn", "config": {"cell": "elman"}}, "cell")])
def test_model_from_dict_refuses_bad_families_and_fields(data, field):
    with pytest.raises(SpecError) as err:
        model_from_dict(data)
    assert err.value.field == field


def test_field_specs_describe_forms():
    rows = {r.name: r for r in field_specs(TrainSpec)}
    assert rows["lr"].range == (1e-7, 10.0) and rows["lr"].log is True
    assert rows["schedule"].choices == ("constant", "cosine", "onecycle")
    assert all(r.help for r in rows.values())
    assert all(r.default is not dataclasses.MISSING for r in rows.values())
