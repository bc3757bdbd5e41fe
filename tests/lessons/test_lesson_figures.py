"""Every figure of every shipped lesson draws from runs trained (briefly) from that lesson's own specs."""
from __future__ import annotations

import plotly.graph_objects as go
import pytest

import dlcore
from dlcore import lessons as ls
from dlcore.train.worker import run_job

SHORT = {"max_steps": 12, "epochs": 1, "eval_max": 200}
SHORTER = {"overfitting": {"epochs": 3, "max_steps": 0}}  # three epochs: curves with several points


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """lesson id -> {run name: run id}: each lesson's runs trained in-process for a few steps."""
    folder = tmp_path_factory.mktemp("lesson-figures")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLE_DATA_DIR", str(folder))
        store = dlcore.RunStore()
        for lesson in ls.load_lessons():
            ids = {}
            for name in sorted(lesson.runs, key=lambda n: bool(lesson.runs[n].init_from)):  # parents first
                ref = lesson.runs[name]
                data, model, train = ref.specs(ids.get(ref.init_from, ""))
                train = train.replace(**{**SHORT, **SHORTER.get(lesson.id, {})}, seed=1234)
                ids[name] = store.create(data, model, train, name=f"{lesson.id}/{name}", owner="ada")
                assert run_job(ids[name], store) == "completed", (lesson.id, name, store.get(ids[name]).error)
            out[lesson.id] = ids
    return folder, out


@pytest.mark.parametrize("lesson_id", [l.id for l in ls.load_lessons()])
def test_every_figure_of_the_lesson_draws(trained, lesson_id, monkeypatch):
    folder, ids = trained
    monkeypatch.setenv("DLE_DATA_DIR", str(folder))
    lesson = next(l for l in ls.load_lessons() if l.id == lesson_id)
    for step in lesson.steps:
        fig = ls.draw_figure(step.figure, ids[lesson_id], {n: r.label.en for n, r in lesson.runs.items()})
        assert isinstance(fig, go.Figure) and fig.data, (lesson_id, step.id)


def test_the_transferred_run_starts_from_its_parent(trained, monkeypatch):
    folder, ids = trained
    monkeypatch.setenv("DLE_DATA_DIR", str(folder))
    for name, freeze in (("frozen", ("body",)), ("finetune", ())):
        run = dlcore.get_run(ids["reuse-and-shrink"][name])
        assert run.train.init_from == ids["reuse-and-shrink"]["base"] and run.train.freeze == freeze
        assert run.data.classes == (5, 6, 7, 8, 9) and run.data.per_class == 20


def test_compare_names_the_runs_in_the_legend(trained, monkeypatch):
    folder, ids = trained
    monkeypatch.setenv("DLE_DATA_DIR", str(folder))
    lesson = next(l for l in ls.load_lessons() if l.id == "overfitting")
    fig = ls.draw_figure(lesson.steps[-1].figure, ids["overfitting"], {"small": "<b>plain</b>", "dropout": "d",
                                                                        "decay": "w"})
    assert [t.name for t in fig.data] == ["&lt;b&gt;plain&lt;/b&gt;", "d", "w"]  # labels are text, not HTML
    assert all(len(t.x) == 3 for t in fig.data)
