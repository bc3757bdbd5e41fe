"""Lesson files: every shipped lesson loads in both languages and builds its runs' specs; a bad file raises
LessonError naming the file and the field."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import dlcore
from dlcore import lessons as ls

REQUIRED = {"convolution", "memory", "attention", "overfitting", "explanations"}  # the tutorial's five

GOOD = '''
id = "mini"
title.en = "Mini"
title.zh = "小"
summary.en = "A lesson."
summary.zh = "一课。"

[runs.cnn]
preset = "cnn-tiny"
dataset = "digits"
train = { epochs = 1 }

[[steps]]
id = "one"
title.en = "One"
title.zh = "一"
text.en = "Text."
text.zh = "文字。"
action = { kind = "open", page = "filters", run = "cnn" }
[steps.question]
text.en = "Q?"
text.zh = "问？"
choices.en = ["a", "b"]
choices.zh = ["甲", "乙"]
answer = 1
explanation.en = "Because."
explanation.zh = "因为。"
[steps.figure]
kind = "filters"
run = "cnn"
'''


def _write(folder: Path, text: str, name: str = "mini.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _texts(obj) -> list[ls.Text]:
    """Every Text inside a lesson (titles, step texts, questions, choices, explanations, labels)."""
    out = []
    if isinstance(obj, ls.Text):
        return [obj]
    if isinstance(obj, (list, tuple)):
        for x in obj:
            out += _texts(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            out += _texts(x)
    elif hasattr(obj, "__dataclass_fields__"):
        for f in obj.__dataclass_fields__:
            out += _texts(getattr(obj, f))
    return out


def test_every_shipped_lesson_loads_in_both_languages():
    lessons = ls.load_lessons()
    assert REQUIRED <= {l.id for l in lessons}
    assert [l.order for l in lessons] == sorted(l.order for l in lessons)
    for lesson in lessons:
        texts = _texts(lesson)
        assert len(texts) >= 4 + 4 * len(lesson.steps), lesson.id
        for t in texts:
            assert t.get("en").strip() and t.get("zh").strip()
            assert t.get("zh") != t.get("en") or len(t.en) < 12, (lesson.id, t)  # translated, not copied
            assert any("\u4e00" <= c <= "\u9fff" for c in t.zh) or len(t.zh) < 12, (lesson.id, t.zh)
        for step in lesson.steps:
            assert step.question is not None, (lesson.id, step.id)  # predict-then-reveal everywhere
            assert step.figure is not None, (lesson.id, step.id)
            assert len(step.question.choices) >= 2


def test_shipped_runs_build_valid_specs():
    """Every run a lesson may train passes the same check as the Train page (prepare_run)."""
    for lesson in ls.load_lessons():
        for ref in lesson.runs.values():
            data, model, train = ref.specs("parent-run" if ref.init_from else "")
            assert data.name == ref.dataset
            if not ref.init_from:  # init_from is checked against a real run when the lesson starts it
                dlcore.prepare_run(data, model, train)


def test_the_five_lessons_follow_the_tutorial():
    by_id = {l.id: l for l in ls.load_lessons()}
    kinds = {lid: {s.figure.kind for s in by_id[lid].steps} for lid in REQUIRED}
    assert {"filters", "feature_maps"} <= kinds["convolution"]
    assert {"gates", "trajectories"} <= kinds["memory"]
    assert {"attention", "pattern_scores", "knockout"} <= kinds["attention"]
    assert "compare" in kinds["overfitting"]
    assert {"explanations", "sanity"} <= kinds["explanations"]
    ovf = by_id["overfitting"].runs
    assert ovf["dropout"].model.get("dropout", 0) > 0 and ovf["decay"].train.get("weight_decay", 0) > 0
    starters = {r.starter for l in by_id.values() for r in l.runs.values() if r.starter}
    assert starters == {"seed-cnn", "seed-lstm", "tiny-transformer"}
    later = {s.figure.kind for l in by_id.values() for s in l.steps}
    assert {"knockout", "next_token", "pruning"} <= later  # head knock-out, generation, compression
    assert any(r.init_from for l in by_id.values() for r in l.runs.values())  # transfer


def test_a_good_file_loads(tmp_path):
    lesson = ls.load_lesson(_write(tmp_path, GOOD))
    assert lesson.id == "mini" and lesson.steps[0].question.answer == 1
    assert lesson.steps[0].question.choices[1].get("zh") == "乙"
    assert lesson.steps[0].action == ls.Action("open", "cnn", "filters", None)


@pytest.mark.parametrize("change, field", [
    (("answer = 1", "answer = 2"), "steps[0].question.answer"),
    (('answer = 1', 'answer = "b"'), "steps[0].question.answer"),
    (('explanation.zh = "因为。"', ""), "steps[0].question.explanation.zh"),
    (('title.zh = "一"', ""), "steps[0].title.zh"),
    (('choices.zh = ["甲", "乙"]', 'choices.zh = ["甲"]'), "steps[0].question.choices.zh"),
    (('choices.zh = ["甲", "乙"]', 'choices.zh = ["甲", "乙", "丙"]'), "steps[0].question.choices"),
    (('kind = "open"', 'kind = "teleport"'), "steps[0].action.kind"),
    (('page = "filters"', 'page = "nowhere"'), "steps[0].action.page"),
    (('run = "cnn" }', 'run = "rnn" }'), "steps[0].action.run"),
    (('kind = "filters"', 'kind = "hologram"'), "steps[0].figure.kind"),
    (('run = "cnn"\n', 'run = "cnn"\nparams = { zoom = 2 }\n'), "steps[0].figure.params.zoom"),
    (('explanation.en', 'explanaton.en'), "steps[0].question.explanaton"),
    (('preset = "cnn-tiny"\n', ''), "runs.cnn.preset"),
    (('id = "one"', 'id = "one two"'), "steps[0].id"),
    (('id = "mini"', ''), "id"),
    (('train = { epochs = 1 }', 'train = { epochs = { a = 1 } }'), "runs.cnn.train.epochs"),
])
def test_a_bad_file_names_the_field(tmp_path, change, field):
    old, new = change
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ls.LessonError) as e:
        ls.load_lesson(path)
    assert e.value.field == field and e.value.file == str(path)
    assert str(e.value).startswith(f"mini.toml: {field}:")


def test_invalid_toml_and_duplicates(tmp_path):
    _write(tmp_path, "id = ", "broken.toml")
    with pytest.raises(ls.LessonError, match=r"broken\.toml: not valid TOML"):
        ls.load_lessons(tmp_path)
    (tmp_path / "broken.toml").unlink()
    _write(tmp_path, GOOD, "a.toml")
    _write(tmp_path, GOOD, "b.toml")
    with pytest.raises(ls.LessonError, match=r"b\.toml: id: 'mini' is also the id of a\.toml"):
        ls.load_lessons(tmp_path)


def test_bad_files_can_be_collected_instead(tmp_path):
    _write(tmp_path, GOOD, "a.toml")
    _write(tmp_path, GOOD.replace('id = "mini"', 'id = "other"').replace("answer = 1", "answer = 9"), "b.toml")
    errors = []
    assert [l.id for l in ls.load_lessons(tmp_path, errors=errors)] == ["mini"]
    assert len(errors) == 1 and errors[0].field == "steps[0].question.answer"


def test_a_bad_override_is_a_spec_error(tmp_path):
    lesson = ls.load_lesson(_write(tmp_path, GOOD.replace("epochs = 1", "epoks = 1")))
    with pytest.raises(dlcore.SpecError, match="epoks"):
        lesson.runs["cnn"].specs()
    lesson = ls.load_lesson(_write(tmp_path, GOOD.replace("epochs = 1", "epochs = -3")))
    with pytest.raises(dlcore.SpecError):
        lesson.runs["cnn"].specs()


def test_pages_named_by_lessons_exist():
    from app_pages.common.ui import PAGE_FILES

    assert set(ls.PAGES) <= set(PAGE_FILES)
    for lesson in ls.load_lessons():
        for s in lesson.steps:
            if s.action and s.action.kind == "open":
                assert s.action.page in PAGE_FILES


def test_the_lessons_readme_documents_every_figure_and_action():
    readme = (ls.DEFAULT_FOLDER / "README.md").read_text(encoding="utf-8")
    for kind, (_, params) in ls.FIGURES.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{kind}` |")), None)
        assert row is not None, kind
        assert all(f"`{p}`" in row for p in params), kind
    assert all(f"`{a}`" in readme for a in ls.ACTIONS)
