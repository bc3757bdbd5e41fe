"""Train page: starting runs from the form, watching a run chosen by the URL, cancel and queue."""
from __future__ import annotations

from tests.app.conftest import APP, PAGE_FILES, no_errors, open_page
from streamlit.testing.v1 import AppTest

import dlcore


def _submit(at: AppTest) -> AppTest:
    return at.button[[b.label for b in at.button].index("Start training")].click().run()


def test_train_page_on_a_fresh_folder_offers_the_form(fresh_dir):
    at = open_page("train")
    no_errors(at)
    assert "No runs yet" in at.info[0].value
    assert at.selectbox(key="train_model").value == "cnn-tiny"
    assert at.selectbox(key="train_data").value == "mnist5k"  # the preset's dataset
    assert at.number_input(key="train_f_epochs").value == 5


def test_choosing_a_preset_fills_its_dataset_and_recommended_settings(fresh_dir):
    at = open_page("train")
    at.selectbox(key="train_model").set_value("seed-cnn").run()
    assert at.selectbox(key="train_data").value == "mnist5k"
    assert at.number_input(key="train_f_lr").value == dlcore.PRESETS["seed-cnn"].train["lr"]
    at.selectbox(key="train_model").set_value("transformer-tiny").run()
    assert at.selectbox(key="train_data").value == "reverse"
    assert at.number_input(key="train_f_lr").value == dlcore.TrainSpec().lr


def test_a_model_that_cannot_read_the_data_is_an_error_message(fresh_dir):
    at = open_page("train")
    at.selectbox(key="train_data").set_value("digits")
    _submit(at)  # cnn-tiny's 'valid' convolutions shrink an 8×8 digit to nothing
    assert not at.exception
    assert "shrinks to nothing" in at.error[0].value
    assert dlcore.list_runs() == []


def test_start_a_tiny_run_and_watch_it_finish(fresh_dir):
    at = open_page("train")
    at.selectbox(key="train_model").set_value("rnn-tiny").run()
    at.selectbox(key="train_data").set_value("digits")
    at.number_input(key="train_f_epochs").set_value(1)
    at.text_input(key="train_name").set_value("tiny GRU")
    _submit(at)
    no_errors(at)
    run_id = at.query_params["run"]  # the watched run is in the URL
    run = dlcore.get_run(run_id)
    assert run.name == "tiny GRU" and run.train.epochs == 1 and run.data.name == "digits"
    assert at.selectbox(key="train_run").value == run_id
    assert dlcore.wait(run_id, timeout=120).status == "completed"
    at.run()
    no_errors(at)
    labels = [m.label for m in at.metric]
    assert "test accuracy" in labels and "best val accuracy" in labels
    assert at.get("plotly_chart")[0].proto.spec  # the curves


def test_a_reload_shows_the_run_in_the_url(finished_run):
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params["run"] = finished_run
    at.run()
    at.switch_page(PAGE_FILES["train"]).run()
    no_errors(at)
    assert at.selectbox(key="train_run").value == finished_run
    run = dlcore.get_run(finished_run)
    test = next(m.value for m in at.metric if m.label == "test accuracy")
    assert test == f"{run.summary['test_accuracy']:.1%}"


def test_an_unknown_run_in_the_url_falls_back_to_the_latest(finished_run):
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params["run"] = "20000101-000000-nosuch"
    at.run()
    at.switch_page(PAGE_FILES["train"]).run()
    assert not at.exception
    assert "was not found" in at.warning[0].value
    assert at.selectbox(key="train_run").value == finished_run


def test_a_queued_run_shows_its_place_and_can_be_cancelled(fresh_dir):
    store = dlcore.RunStore()
    first = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("rnn-tiny"), dlcore.TrainSpec())
    second = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("rnn-tiny"), dlcore.TrainSpec(),
                          owner="ada")
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params["run"] = second
    at.query_params["who"] = "ada"  # its owner, as a reload of her page has it (only she may cancel it)
    at.run()
    at.switch_page(PAGE_FILES["train"]).run()
    no_errors(at)
    assert "Queued: #2 in line" in at.info[0].value
    at.button(key="train_cancel").click().run()
    assert dlcore.get_run(second).status == "cancelled"
    at.run()
    assert at.button(key="train_resume").label == "Resume"
    store.update(first, status="cancelled")
