"""Progress per identity: answers, positions and trained runs round-trip through lessons.db and stay apart
between students; starting a lesson's run trains it as the student's own."""
from __future__ import annotations

import threading

import pytest

import dlcore
from dlcore import lessons as ls


@pytest.fixture
def lesson():
    return next(l for l in ls.load_lessons() if l.id == "overfitting")


def test_round_trip_per_identity(fresh_dir, lesson):
    ada, bo = ls.LessonProgress("ada"), ls.LessonProgress("bo")
    ada.answer(lesson.id, "memorise", 1, True)
    ada.answer(lesson.id, "dropout", 0, False)
    ada.set_position(lesson.id, 2)
    ada.set_run(lesson.id, "small", "run-ada")
    bo.answer(lesson.id, "memorise", 2, False)

    again = ls.LessonProgress("ada")  # a new session of the same student (a reload, another day)
    assert again.answers(lesson.id) == {"memorise": (1, True), "dropout": (0, False)}
    assert again.position(lesson.id) == 2 and again.run_id(lesson.id, "small") == "run-ada"
    assert again.done(lesson) == 2
    assert ls.LessonProgress("bo").answers(lesson.id) == {"memorise": (2, False)}
    assert ls.LessonProgress("bo").position(lesson.id) == 0 and ls.LessonProgress("bo").run_id(lesson.id, "small") is None
    assert (fresh_dir / "lessons.db").exists()

    again.answer(lesson.id, "memorise", 0, False)  # answering again replaces the answer
    assert again.answers(lesson.id)["memorise"] == (0, False)
    again.forget(lesson.id, "memorise")
    assert set(again.answers(lesson.id)) == {"dropout"}
    again.forget(lesson.id)
    assert again.answers(lesson.id) == {} and bo.answers(lesson.id) == {"memorise": (2, False)}


def test_twenty_students_answer_at_once(fresh_dir, lesson):
    def student(i: int) -> None:
        p = ls.LessonProgress(f"s{i}")
        for k, step in enumerate(lesson.steps):
            p.answer(lesson.id, step.id, (i + k) % 3, (i + k) % 3 == step.question.answer)
            p.set_position(lesson.id, k)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(20):
        p = ls.LessonProgress(f"s{i}")
        assert p.answers(lesson.id) == {s.id: ((i + k) % 3, (i + k) % 3 == s.question.answer)
                                        for k, s in enumerate(lesson.steps)}
        assert p.position(lesson.id) == len(lesson.steps) - 1


def test_start_lesson_run_trains_the_students_own_variant(fresh_dir, lesson, monkeypatch):
    started = []

    def fake_start(data, model, train, name=None, store=None, owner=""):
        started.append((data, model, train, name, owner))
        return f"run{len(started)}"

    monkeypatch.setattr(dlcore, "start_run", fake_start)
    p = ls.LessonProgress("ada")
    assert ls.start_lesson_run(lesson, "dropout", p) == "run1"
    data, model, train, name, owner = started[0]
    assert owner == "ada" and "dropout" in name
    assert data.per_class == 30 and model.dropout == 0.25 and train.epochs == 15 and train.lr == 0.002
    assert p.run_id(lesson.id, "dropout") == "run1"
    assert ls.resolve_run(lesson, "dropout", p) is None  # the (fake) id is not in the store: nothing to show


def test_a_transfer_run_needs_its_parent_first(fresh_dir, monkeypatch):
    lesson = next(l for l in ls.load_lessons() if l.id == "reuse-and-shrink")
    monkeypatch.setattr(dlcore, "start_run", lambda *a, **k: pytest.fail("must not start"))
    with pytest.raises(ls.LessonError, match=r"runs\.frozen\.init_from: train .seed CNN on digits 0–4. first"):
        ls.start_lesson_run(lesson, "frozen", ls.LessonProgress("ada"))


def test_a_starter_run_is_used_when_installed(fresh_dir):
    from dlcore.train.worker import run_job

    lesson = next(l for l in ls.load_lessons() if l.id == "convolution")
    p = ls.LessonProgress("ada")
    assert ls.resolve_run(lesson, "cnn", p) is None  # no starter here, nothing trained yet
    store = dlcore.RunStore()
    rid = store.create(dlcore.DataSpec(name="digits"), dlcore.get_preset("cnn-tiny").replace(padding="same"),
                       dlcore.TrainSpec(epochs=1, max_steps=2), name="mine", owner="ada")
    assert run_job(rid, store) == "completed"
    p.set_run(lesson.id, "cnn", rid)
    assert ls.resolve_run(lesson, "cnn", p).id == rid
    assert ls.resolve_run(lesson, "cnn", ls.LessonProgress("bo")) is None  # bo's lesson does not see ada's run
    installed = dlcore.install_starters()
    starter = dlcore.starter_run("seed-cnn")
    assert starter in installed and ls.resolve_run(lesson, "cnn", p).id == starter  # the class-wide starter first
