"""AppTest of the Lessons page through app.py: the list with progress, predict-then-reveal (no figure before
the answer), progress kept per student across sessions, the language switch, a train action, presentation
mode and a lesson id that does not exist."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import dlcore
from dlcore import lessons as ls
from dlcore.train.worker import run_job
from tests.app.conftest import APP, PAGE_FILES


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A data folder with ada's seed CNN (a few steps) recorded as her run of the convolution lesson."""
    root = tmp_path_factory.mktemp("lessons-page")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLE_DATA_DIR", str(root))
        lesson = next(l for l in ls.load_lessons() if l.id == "convolution")
        data, model, train = lesson.runs["cnn"].specs()
        store = dlcore.RunStore()
        rid = store.create(data, model, train.replace(epochs=1, max_steps=10, eval_max=200), name="ada's CNN",
                           owner="ada")
        assert run_job(rid, store) == "completed"
        ls.LessonProgress("ada", root).set_run("convolution", "cnn", rid)
    return root


@pytest.fixture
def data(folder, monkeypatch):
    monkeypatch.setenv("DLE_DATA_DIR", str(folder))
    return folder


def lessons_page(who: str = "ada", **params) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["who"] = who
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(PAGE_FILES["lessons"]).run()
    ok(at)
    return at


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def shown(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in [*at.markdown, *at.subheader, *at.header, *at.success, *at.warning,
                                            *at.info, *at.caption])


def test_the_list_shows_every_lesson_with_its_progress(data):
    at = lessons_page()
    for lesson in ls.load_lessons():
        assert at.button(key=f"lessons_open_{lesson.id}").label == "Start"
        assert lesson.title.en in shown(at)
    assert "0 of 4 steps done" in [p.proto.text for p in at.get("progress")][0]


def test_predict_then_reveal_and_progress_is_kept(data):
    at = lessons_page("ada")
    at.button(key="lessons_open_convolution").click().run()
    ok(at)
    assert at.query_params["lesson"] == "convolution" and at.query_params["step"] == "1"
    assert "Small kernels slide over the image" in shown(at)
    assert charts(at) == 0  # nothing revealed before the answer
    at.button(key="lessons_convolution_filters_check").click().run()  # no answer chosen yet: nothing revealed
    assert charts(at) == 0 and any("Pick an answer" in x.value for x in at.warning)
    assert ls.LessonProgress("ada").answers("convolution") == {}
    at.radio(key="lessons_convolution_filters_choice").set_value(0)  # a wrong prediction
    at.button(key="lessons_convolution_filters_check").click().run()
    ok(at)
    assert charts(at) == 1  # the filters of ada's run
    assert any("Not quite" in w.value and "Edge and stroke detectors" in w.value for w in at.warning)
    assert any("too small to hold a whole digit" in i.value for i in at.info)  # the explanation
    assert ls.LessonProgress("ada").answers("convolution") == {"filters": (0, False)}
    assert at.button(key="lessons_convolution_filters_open").label.startswith("Open Filters")
    at.button(key="lessons_convolution_filters_retry").click().run()  # answer again: hidden until answered
    assert charts(at) == 0 and ls.LessonProgress("ada").answers("convolution") == {}
    at.radio(key="lessons_convolution_filters_choice").set_value(0)
    at.button(key="lessons_convolution_filters_check").click().run()
    assert charts(at) == 1

    again = lessons_page("ada", lesson="convolution", step="1")  # another session of ada's
    given = again.radio(key="lessons_convolution_filters_choice_given")
    assert given.disabled and given.value == 0 and charts(again) == 1
    again.button(key="lessons_next").click().run()
    assert again.query_params["step"] == "2" and charts(again) == 0
    assert ls.LessonProgress("ada").position("convolution") == 1

    bo = lessons_page("bo", lesson="convolution", step="1")  # another student: nothing answered, no run
    assert charts(bo) == 0 and not bo.radio(key="lessons_convolution_filters_choice").disabled
    assert bo.button(key="lessons_convolution_filters_train").label.startswith("Train it first")
    listing = lessons_page("ada")
    assert listing.button(key="lessons_open_convolution").label == "Continue"


def test_the_language_switch_shows_chinese(data):
    at = lessons_page("cy", lesson="convolution", step="1", lang="zh")
    text = shown(at)
    assert "卷积看到了什么" in text and "小卷积核在图像上滑动" in text
    assert "先别看" in at.radio(key="lessons_convolution_filters_choice").label
    assert at.button(key="lessons_convolution_filters_check").label == "提交答案"
    at.segmented_control(key="lessons_lang").set_value("en").run()
    ok(at)
    assert "Small kernels slide over the image" in shown(at) and at.query_params["lang"] == "en"
    at.segmented_control(key="lessons_lang").set_value("zh").run()
    assert "小卷积核在图像上滑动" in shown(at) and at.query_params["lang"] == "zh"
    at.button(key="lessons_all").click().run()  # the list keeps the language
    assert "序列中的记忆" in shown(at) and at.button(key="lessons_open_memory").label == "开始"


def test_a_train_action_starts_the_students_run_and_shows_its_progress(data, monkeypatch):
    started = []

    def fake_start(d, m, t, name=None, store=None, owner=""):
        store = store or dlcore.RunStore()
        rid = store.create(d, m, t, name=name, owner=owner)  # queued: nothing trains it in this test
        started.append((rid, owner, m.dropout))
        return rid

    monkeypatch.setattr(dlcore, "start_run", fake_start)
    at = lessons_page("dee", lesson="overfitting", step="2")
    train = at.button(key="lessons_overfitting_dropout_train")
    assert train.label.startswith("Train this") and "dropout 0.25" in train.label
    train.click().run()
    ok(at)
    assert [(o, p) for _, o, p in started] == [("dee", 0.25)]
    assert any("waiting for a free training slot" in p.proto.text for p in at.get("progress"))
    at.radio(key="lessons_overfitting_dropout_choice").set_value(1)
    at.button(key="lessons_overfitting_dropout_check").click().run()
    ok(at)
    assert charts(at) == 0 and "needs seed CNN, 300 digits" in shown(at)  # the plain run is not trained yet


def test_a_transfer_step_waits_for_its_parent_run(data):
    at = lessons_page("fay", lesson="reuse-and-shrink", step="2")
    assert at.button(key="lessons_reuse-and-shrink_frozen_train").disabled
    assert any("starts from the weights of seed CNN on digits 0–4" in c.value for c in at.caption)


def test_presentation_mode_and_an_unknown_lesson(data):
    at = lessons_page("ada", lesson="convolution", step="1", present="true")
    assert at.session_state["present"] is True and charts(at) == 1
    at = lessons_page("ada", lesson="no-such-lesson")
    assert any("There is no lesson no-such-lesson" in w.value for w in at.warning)
    assert at.button(key="lessons_open_memory").label == "Start"
