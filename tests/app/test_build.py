"""Build page: presets, the form built from the config's field metadata, estimates and errors."""
from __future__ import annotations

from tests.app.conftest import no_errors, open_page

import dlcore


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _params(preset: str, data: str, **changes) -> str:
    info = dlcore.dataset_info(data)
    cfg = dlcore.get_preset(preset).replace(**changes) if changes else dlcore.get_preset(preset)
    seq = info.input_shape[0] if info.input_kind in ("sequence", "tokens") else None
    return f"{dlcore.summarize(dlcore.for_data(cfg, info), seq_len=seq).params:,}"


def test_build_page_starts_with_the_tutorial_cnn(fresh_dir):
    at = open_page("build")
    no_errors(at)
    assert at.selectbox(key="build_preset").value == "seed-cnn"
    assert _metric(at, "Parameters") == "93,322"
    assert at.success[0].value.startswith("Fits")
    assert at.text_input(key="build_f_channels").value == "32, 64, 64"
    readonly = [t for t in at.text_input if t.disabled]  # the fields for_data fills in
    assert {t.label for t in readonly} >= {"in channels", "image size", "num outputs"}
    assert next(t.value for t in readonly if t.label == "image size") == "28"
    assert len(at.get("plotly_chart")) == 2 and len(at.dataframe[0].value) == 12  # drawing, params, layers


def test_choosing_a_family_and_preset_updates_the_estimates(fresh_dir):
    at = open_page("build")
    at.segmented_control(key="build_family").set_value("rnn").run()
    no_errors(at)
    assert at.selectbox(key="build_preset").value == "seed-lstm"
    assert at.selectbox(key="build_data").value == "mnist-rows"
    assert _metric(at, "Parameters") == _params("seed-lstm", "mnist-rows")
    at.selectbox(key="build_preset").set_value("rnn-tiny").run()
    assert _metric(at, "Parameters") == _params("rnn-tiny", "mnist-rows")
    at.number_input(key="build_f_hidden_size").set_value(48)
    at.button[[b.label for b in at.button].index("Apply")].click().run()
    no_errors(at)
    assert _metric(at, "Parameters") == _params("rnn-tiny", "mnist-rows", hidden_size=48)


def test_bad_values_are_shown_next_to_the_form(fresh_dir):
    at = open_page("build")
    at.text_input(key="build_f_channels").set_value("32, x")
    at.button[[b.label for b in at.button].index("Apply")].click().run()
    assert not at.exception
    assert "channels" in at.error[0].value and "comma-separated" in at.error[0].value
    at.text_input(key="build_f_channels").set_value("32, 64")
    at.button[[b.label for b in at.button].index("Apply")].click().run()
    assert "pools must have one entry per conv block" in at.error[0].value
    assert _metric(at, "Parameters") == "93,322"  # the last good model is kept


def test_a_model_too_big_for_the_device_is_a_warning_not_a_crash(fresh_dir):
    at = open_page("build")
    at.selectbox(key="build_preset").set_value("cnn-xl").run()
    assert not at.exception
    report = dlcore.check_fit(dlcore.get_preset("cnn-xl"), dlcore.dataset_info("mnist5k"), dlcore.TrainSpec())
    if report.fits:  # a large GPU holds it
        assert at.success[0].value.startswith("Fits")
    else:
        assert "will not fit" in at.warning[0].value
        assert at.button(key="build_train").disabled


def test_train_this_model_hands_the_config_to_the_train_page(fresh_dir):
    at = open_page("build")
    at.number_input(key="build_batch").set_value(64)
    at.button[[b.label for b in at.button].index("Apply")].click().run()
    at.button(key="build_train").click().run()
    no_errors(at)
    assert at.title[0].value == "Train"
    assert at.selectbox(key="train_model").value == "__build__"
    assert at.selectbox(key="train_data").value == "mnist5k"
    assert at.number_input(key="train_f_batch_size").value == 64
