"""Runs page: the table, comparison, a run's test results, rename, delete, checkpoint downloads."""
from __future__ import annotations

from tests.app.conftest import no_errors, open_page

import dlcore


def test_runs_page_on_a_fresh_folder(fresh_dir):
    at = open_page("runs")
    no_errors(at)
    assert "No runs yet" in at.info[0].value


def test_runs_page_with_a_finished_run(finished_run):
    at = open_page("runs")
    no_errors(at)
    run = dlcore.get_run(finished_run)
    table = at.dataframe[0].value
    row = table[table["id"] == finished_run].iloc[0]
    assert row["status"] == "completed" and row["data"] == "digits" and row["params"] == run.params
    assert row["test"] == f"{run.summary['test_accuracy']:.1%}"
    assert at.multiselect(key="runs_compare").value == [finished_run]
    assert at.selectbox(key="runs_detail").value == finished_run
    acc = next(m.value for m in at.metric if m.label == "Test accuracy")
    assert acc == f"{run.summary['test_accuracy']:.1%}"  # recomputed from the checkpoint, same number
    keys = {c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")}
    assert {"runs_compare_fig", "runs_cm", "runs_perclass", "runs_gallery"} <= keys
    labels = [b.label for b in at.get("download_button")]
    assert "Weights (.safetensors)" in labels and "Spec (checkpoint.json)" in labels


def test_compare_another_curve(finished_run):
    at = open_page("runs")
    at.selectbox(key="runs_curve").set_value("loss (per step)").run()
    no_errors(at)
    fig = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("runs_compare_fig"))
    assert "Training loss per logged step" in fig.proto.spec


def test_rename_then_delete_a_run(fresh_dir):
    store = dlcore.RunStore()
    rid = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("rnn-tiny"), dlcore.TrainSpec(),
                       name="old name", owner="ada")
    store.update(rid, status="cancelled", error="cancelled before it started")
    at = open_page("runs", who="Ada")  # its owner (tests/access: nobody else may)
    assert not at.exception
    assert "no checkpoint" in at.error[0].value  # results need one: said plainly
    at.text_input(key=f"runs_rename_{rid}").set_value("new name")
    at.button[[b.label for b in at.button].index("Rename")].click().run()
    assert dlcore.get_run(rid).name == "new name"
    at.button(key="runs_delete").click().run()
    no_errors(at)
    assert dlcore.list_runs() == []
    assert "No runs yet" in at.info[0].value
