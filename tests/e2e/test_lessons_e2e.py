"""The five tutorial lessons, end to end in Chromium (issue 12): for every step, the action (a train button
starts the student's own run), the answer chosen before the reveal, the explanation and the figure after it,
then Next — driven by the lesson files themselves. The starter runs are installed, so the convolution,
memory, attention and explanation lessons open them at once; the overfitting lesson trains its three runs
from the browser. One step is photographed in English and in Chinese:
test-artifacts/e2e/lessons-*.png, and assets/lesson_step_{en,zh}.png with DLE_UPDATE_SCREENSHOTS=1.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from _server import CHROMIUM, chromium_page, exceptions, full_page_screenshot, ROOT, serving, settle

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
FIVE = ("convolution", "memory", "attention", "overfitting", "explanations")
WHO = "eve"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian chromium at {CHROMIUM}")
    root = tmp_path_factory.mktemp("dle-e2e-lessons")
    old = os.environ.get("DLE_DATA_DIR")
    os.environ["DLE_DATA_DIR"] = str(root)
    try:
        import dlcore

        assert len(dlcore.install_starters(dlcore.RunStore(root))) == 3
    finally:
        if old is None:
            os.environ.pop("DLE_DATA_DIR", None)
        else:
            os.environ["DLE_DATA_DIR"] = old
    with serving(root) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with chromium_page() as pg:
        yield pg


@pytest.fixture(scope="module")
def lessons():
    from dlcore import lessons as ls

    return {l.id: l for l in ls.load_lessons()}


def _key(page, key: str):
    """The element Streamlit drew for a widget key (its container carries the class st-key-<key>)."""
    return page.locator(f".st-key-{key}")


def _start(page, lesson, i: int, lang: str = "en") -> None:
    """Press the train button of step i and see the run's progress."""
    step = lesson.steps[i]
    _key(page, f"lessons_{lesson.id}_{step.id}_train").locator("button").click()
    label = lesson.runs[step.action.run].label.get(lang)
    page.locator('[data-testid="stMain"] [data-testid="stProgress"]').filter(has_text=label).wait_for()


def _step(page, lesson, i: int, lang: str = "en") -> None:
    """Do step i: its action, the answer (the right one), the reveal, and check what appears."""
    step = lesson.steps[i]
    K = f"lessons_{lesson.id}_{step.id}"
    page.get_by_role("heading", name=step.title.get(lang)).wait_for()
    figure = _key(page, f"{K}_figure")
    assert figure.count() == 0  # predict first: no figure before the answer
    if step.action and step.action.kind == "train" and _key(page, f"{K}_train").count():
        _start(page, lesson, i, lang)
    q = step.question
    _key(page, f"{K}_choice").locator("label").filter(has_text=q.choices[q.answer].get(lang)).first.click()
    _key(page, f"{K}_check").locator("button").click()
    page.get_by_text(" ".join(q.explanation.get(lang).split())[:30]).first.wait_for()
    figure.locator(".js-plotly-plot").wait_for(timeout=120_000)  # a training run: when it has finished
    assert not exceptions(page), (lesson.id, step.id)
    assert not page.locator('[data-testid="stAlertContentError"]').count(), (lesson.id, step.id)


def test_the_five_lessons_end_to_end(server, page, lessons):
    t0 = time.time()
    # the overfitting lesson's three runs first, so that they train while the other lessons are done (Next
    # does not need an answer: a student may look ahead)
    ovf = lessons["overfitting"]
    for i, step in enumerate(ovf.steps):
        if step.action and step.action.kind == "train":
            page.goto(f"{server.url}/lessons?who={WHO}&lesson=overfitting&step={i + 1}")
            page.get_by_role("heading", name=step.title.en).wait_for()
            _start(page, ovf, i)
    page.goto(f"{server.url}/lessons?who={WHO}")
    page.get_by_role("heading", name="Lessons · 课程").wait_for()
    settle(page, quiet=0.5)
    for lid in ("convolution", "memory", "attention", "explanations", "overfitting"):
        lesson = lessons[lid]
        _key(page, f"lessons_open_{lid}").locator("button").click()
        page.wait_for_url("**step=*")
        for j in range(int(page.url.rsplit("step=", 1)[1].split("&")[0]) - 1, 0, -1):  # back to step 1
            page.get_by_role("heading", name=lesson.steps[j].title.en).wait_for()
            _key(page, "lessons_back").locator("button").click()
        for i in range(len(lesson.steps)):
            t_step = time.time()
            _step(page, lesson, i)
            print(f"{lid}/{lesson.steps[i].id}: {time.time() - t_step:.1f} s", flush=True)
            if lid == "convolution" and i == 0:  # the action opens the Filters page on the starter run
                _key(page, "lessons_convolution_filters_open").locator("button").click()
                page.get_by_role("heading", name="Filters & feature maps", exact=True).wait_for()
                assert "run=" in page.url
                page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
                page.locator('[data-testid="stSidebarNav"]').get_by_text("Lessons", exact=True).click()
                _key(page, "lessons_open_convolution").get_by_role("button", name="Continue").click()  # where she was
                page.get_by_role("heading", name=lesson.steps[0].title.en).wait_for()
                _key(page, "lessons_convolution_filters_figure").locator(".js-plotly-plot").wait_for()  # still answered
            _key(page, "lessons_next").locator("button").click()
        page.get_by_role("heading", name="Lessons · 课程").wait_for()
        card = page.locator('[data-testid="stVerticalBlock"]').filter(
            has=_key(page, f"lessons_open_{lid}")).filter(has_text=lesson.title.en).last  # the lesson's box
        assert f"{len(lesson.steps)} of {len(lesson.steps)} steps done" in card.inner_text(), lid
        assert _key(page, f"lessons_open_{lid}").get_by_role("button").inner_text().endswith("Review")
    elapsed = time.time() - t0
    print(f"five lessons, {sum(len(lessons[l].steps) for l in FIVE)} steps, in {elapsed:.0f} s")
    assert elapsed < 150  # about 60 s on an idle 2-core machine; a hang fails here


def test_one_step_in_english_and_chinese(server, page, lessons):
    """The attention lesson's first step, answered (in the previous test or here), in both languages."""
    from dlcore import lessons as ls

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lesson = lessons["attention"]
    shots = {}
    for lang in ("en", "zh"):
        page.goto(f"{server.url}/lessons?who={WHO}&lesson=attention&step=1&lang={lang}")
        page.get_by_role("heading", name=lesson.steps[0].title.get(lang)).wait_for()
        if "pattern" not in ls.LessonProgress(WHO, server.data_dir).answers("attention"):  # run alone: answer now
            _step(page, lesson, 0, lang)
        _key(page, "lessons_attention_pattern_figure").locator(".js-plotly-plot").wait_for()
        page.get_by_text(" ".join(lesson.steps[0].question.explanation.get(lang).split())[:20]).first.wait_for()
        settle(page)
        assert not exceptions(page)
        shots[lang] = full_page_screenshot(page, ARTIFACTS / f"lessons-attention-{lang}.png")
    assert page.get_by_role("button", name="下一步").count() == 1  # the page's own words are Chinese too
    if os.environ.get("DLE_UPDATE_SCREENSHOTS"):
        for lang, path in shots.items():
            shutil.copyfile(path, ROOT / "assets" / f"lesson_step_{lang}.png")
