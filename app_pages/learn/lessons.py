"""Lessons: guided tours through the app that follow the tutorial. A lesson is a sequence of steps; each has a
short text, one action (open a page on a run, or train a run), a question the student answers before the
reveal, and a figure from that run. Lesson content lives in ``lessons/*.toml`` (dlcore.lessons), in English
and Chinese; progress is kept per student. The lesson and step are in the URL (?lesson=…&step=…), the
language too (?lang=zh), so a reload or a link shared in class opens the same step."""
from __future__ import annotations

import json

import streamlit as st

import dlcore
from dlcore import lessons as ls
from app_pages.common import identity, ui

# the page's own words, in both lesson languages
WORDS = {
    "title": ("Lessons", "课程"),
    "caption": ("Guided tours through the app, following the tutorial. Answer each question before the reveal: "
                "predict first, then look.",
                "跟随教程的引导式学习。每个问题先作答再揭晓：先预测，再观察。"),
    "language": ("Lesson language", "课程语言"),
    "saved_for": ("Progress is saved for", "学习进度保存在此用户名下："),
    "steps_done": ("{done} of {n} steps done", "已完成 {done} / {n} 步"),
    "start": ("Start", "开始"),
    "continue": ("Continue", "继续"),
    "again": ("Review", "复习"),
    "all": ("All lessons", "全部课程"),
    "step_of": ("Step {i} of {n}", "第 {i} 步，共 {n} 步"),
    "check": ("Check my answer", "提交答案"),
    "pick_first": ("Pick an answer: the figure appears once you have answered.", "先选一个答案：作答之后才会显示图表。"),
    "right": ("Right", "回答正确"),
    "wrong": ("Not quite. The answer is", "不完全对。正确答案是"),
    "you_said": ("You answered", "你的回答"),
    "retry": ("Answer again", "重新作答"),
    "back": ("Back", "上一步"),
    "next": ("Next", "下一步"),
    "finish": ("Finish the lesson", "完成本课"),
    "finished": ("Lesson finished: {done} of {n} steps done.", "本课完成：已完成 {done} / {n} 步。"),
    "train_this": ("Train this: {label}", "训练：{label}"),
    "train_first": ("Train it first: {label}", "先训练：{label}"),
    "open": ("Open {page}", "打开 {page}"),
    "training": ("{label} is training", "{label} 正在训练"),
    "queued": ("{label} is waiting for a free training slot", "{label} 正在排队等待训练"),
    "trained": ("Trained: {label}", "已训练：{label}"),
    "failed": ("{label} did not finish: {why}", "{label} 没有完成：{why}"),
    "needs_parent": ("This run starts from the weights of {label}: train that one first.",
                     "这个运行从 {label} 的权重出发：请先训练它。"),
    "needs_run": ("This figure needs {label}: press the button above to train it.",
                  "这张图需要 {label}：按上面的按钮训练它。"),
    "needs_training": ("The figure appears when {label} has finished training.", "{label} 训练完成后这里会显示图表。"),
    "no_lessons": ("No lessons found in the lessons folder.", "课程文件夹中没有找到课程。"),
    "bad_lesson": ("A lesson file could not be used", "有一个课程文件无法使用"),
    "unknown_lesson": ("There is no lesson {id}: pick one below.", "没有名为 {id} 的课程：请在下面选择。"),
    "drawing": ("Drawing the figure…", "正在绘制图表…"),
}
PAGE_TITLES = {"home": ("Home", "首页"), "data": ("Data", "数据"), "build": ("Build", "搭建"), "train": ("Train", "训练"),
               "runs": ("Runs", "运行记录"), "filters": ("Filters & feature maps", "卷积核与特征图"),
               "attention": ("Attention", "注意力"), "language": ("Language", "语言"),
               "explain": ("Explanations", "解释"), "internals": ("Internals", "内部状态"),
               "compress": ("Compress", "压缩"), "overfitting": ("Overfitting & transfer", "过拟合与迁移")}
START_ERRORS = (dlcore.SpecError, dlcore.ResourceError, dlcore.TrainingError, dlcore.DataError, dlcore.LessonError,
                dlcore.RunNotFound, dlcore.CheckpointError)


def w(key: str, lang: str, **values) -> str:
    """One of the page's own phrases in the lesson language, with user values (labels, names) as text."""
    phrase = WORDS[key][1 if lang == "zh" else 0]
    return phrase.format(**{k: ui.text(v) for k, v in values.items()})


@st.cache_data(ttl=10, show_spinner=False)
def _lessons() -> tuple[list, list[str]]:
    """The lessons (re-read every 10 s, so a teacher's edited file shows up) and the messages of bad files."""
    errors: list = []
    found = ls.load_lessons(errors=errors)
    return found, [str(e) for e in errors]


@st.cache_data(max_entries=64, show_spinner=False)
def _figure(kind: str, names: tuple[str, ...], params_json: str, ids: tuple[str, ...], labels: tuple[str, ...],
            root: str):
    """A step's figure (cached per figure, runs and data folder: a completed run does not change)."""
    fig = ls.Figure(kind, names, json.loads(params_json))
    return ls.draw_figure(fig, dict(zip(names, ids)), dict(zip(names, labels)))


def go_to(lesson_id: str | None, step: int | None = None, finished: str | None = None) -> None:
    """Open a lesson at a step (1-based in the URL), or the list; the language stays in the URL. A button's
    callback: the page then runs once, already there."""
    for key in ("lesson", "step"):
        if key in st.query_params:
            del st.query_params[key]
    if lesson_id:
        st.query_params["lesson"] = lesson_id
        st.query_params["step"] = str(step or 1)
    if finished:
        st.session_state["lessons_finished"] = finished


# ------------------------------------------------------------------ header: title, language, who
st.title("Lessons · 课程")
LANG, LANG_WIDGET = "lessons_language", "lessons_lang"  # kept in the session and in the URL (?lang=zh)


def _set_lang() -> None:
    st.session_state[LANG] = st.query_params["lang"] = st.session_state[LANG_WIDGET]


url_lang = st.query_params.get("lang")
lang = url_lang if url_lang in ls.LANGS else st.session_state.get(LANG, "en")
st.session_state[LANG] = st.session_state[LANG_WIDGET] = lang
if url_lang != lang:
    st.query_params["lang"] = lang
st.segmented_control("Lesson language · 课程语言", list(ls.LANGS), required=True, key=LANG_WIDGET,
                     on_change=_set_lang, format_func={"en": "English", "zh": "中文"}.get)
st.caption(w("caption", lang))
viewer = identity.viewer()
progress = ls.LessonProgress(viewer.identity)
st.caption(f":material/person: {w('saved_for', lang)} **{ui.text(identity.name())}**")

lessons, problems = _lessons()
for problem in problems:
    st.warning(f"{w('bad_lesson', lang)}: {ui.text(problem)}", icon=":material/warning:")
if not lessons:
    st.info(w("no_lessons", lang), icon=":material/info:")
    st.stop()
by_id = {lesson.id: lesson for lesson in lessons}

wanted = st.query_params.get("lesson")
if wanted and wanted not in by_id:
    st.warning(w("unknown_lesson", lang, id=wanted), icon=":material/block:")
    wanted = None

# ------------------------------------------------------------------ the list of lessons
if not wanted:
    identity.ask_name("so that your progress in the lessons is kept")  # a guest may go on; progress is per session
    if (finished := st.session_state.pop("lessons_finished", None)) in by_id:
        f = by_id[finished]
        st.success(w("finished", lang, done=progress.done(f), n=len(f.steps)), icon=":material/celebration:")
    for lesson in lessons:
        n, done = len(lesson.steps), progress.done(lesson)
        with st.container(border=True):
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            with c1:
                st.subheader(ui.text(f"{lesson.order}. {lesson.title.get(lang)}"), anchor=False)
                st.markdown(ui.text(lesson.summary.get(lang)))
                st.progress(done / n, text=w("steps_done", lang, done=done, n=n))
            with c2:
                label = w("again" if done == n else "continue" if done else "start", lang)
                st.button(label, key=f"lessons_open_{lesson.id}", type="primary" if not done else "secondary",
                          icon=":material/school:", width="stretch", on_click=go_to,
                          args=(lesson.id, min(progress.position(lesson.id), n - 1) + 1))
    st.stop()

# ------------------------------------------------------------------ one step of a lesson
lesson = by_id[wanted]
n = len(lesson.steps)
try:
    index = min(max(int(st.query_params.get("step", "1")) - 1, 0), n - 1)
except ValueError:
    index = 0
step = lesson.steps[index]
if progress.position(lesson.id) != index:
    progress.set_position(lesson.id, index)
answers = progress.answers(lesson.id)
K = f"lessons_{lesson.id}_{step.id}"

st.button(w("all", lang), icon=":material/arrow_back:", type="tertiary", key="lessons_all", on_click=go_to,
          args=(None,))
st.header(ui.text(lesson.title.get(lang)), anchor=False)
st.progress((index + 1) / n, text=w("step_of", lang, i=index + 1, n=n))
st.subheader(ui.text(step.title.get(lang)), anchor=False)
st.markdown(ui.text(step.text.get(lang)))


def run_label(ref: str) -> str:
    return lesson.runs[ref].label.get(lang)


def start(ref: str) -> None:
    try:
        ls.start_lesson_run(lesson, ref, progress)
    except START_ERRORS as e:
        ui.user_error(e)
    else:
        st.rerun()


def watch(run_id: str, ref: str) -> None:
    """A training run's progress, refreshed every 2 s; the page redraws once when it ends."""
    @st.fragment(run_every=2)
    @ui.guarded
    def _progress() -> None:
        try:
            r = dlcore.get_run(run_id)
        except dlcore.RunNotFound:
            st.rerun()
            return
        if r.status not in ui.ACTIVE:
            st.rerun()  # the whole page: the button, the figure
        key = "queued" if r.status == "queued" else "training"
        st.progress(min(max(r.progress, 0.0), 1.0), text=f"{w(key, lang, label=run_label(ref))} · {r.progress:.0%}")

    _progress()


# the action: one button
action = step.action
watching = False  # one progress fragment per page: when that run ends the page redraws and looks again
if action is not None:
    run = ls.resolve_run(lesson, action.run, progress)
    label = run_label(action.run)
    if run is not None and run.status in ui.ACTIVE:
        watch(run.id, action.run)
        watching = True
    elif run is None or run.status != "completed":
        if run is not None:
            st.warning(w("failed", lang, label=label, why=run.error or run.status), icon=":material/error:")
        key = "train_this" if action.kind == "train" else "train_first"
        parent_ref = lesson.runs[action.run].init_from  # a transfer run: its parent must be finished first
        parent = ls.resolve_run(lesson, parent_ref, progress) if parent_ref else None
        blocked = bool(parent_ref) and (parent is None or parent.status != "completed")
        if st.button(ui.text(action.label.get(lang)) if action.label else w(key, lang, label=label),
                     key=f"{K}_train", icon=":material/model_training:", type="primary", disabled=blocked):
            start(action.run)
        if blocked:
            st.caption(w("needs_parent", lang, label=run_label(parent_ref)))
    elif action.kind == "open":
        page_title = PAGE_TITLES.get(action.page, (action.page, action.page))[1 if lang == "zh" else 0]
        if st.button(ui.text(action.label.get(lang)) if action.label else w("open", lang, page=page_title),
                     key=f"{K}_open", icon=":material/open_in_new:"):
            st.switch_page(ui.PAGE_FILES[action.page], query_params={"run": run.id})
    else:
        st.success(w("trained", lang, label=label), icon=":material/check_circle:")

# the question, answered before the reveal (a form: choosing does not redraw the page, submitting does once)
def _answer(who: str, lesson_id: str, step_id: str, right: int, choice_key: str) -> None:
    pick = st.session_state.get(choice_key)
    if pick is None:
        st.session_state["lessons_unanswered"] = choice_key
        return
    ls.LessonProgress(who).answer(lesson_id, step_id, int(pick), int(pick) == right)


def _retry(who: str, lesson_id: str, step_id: str, choice_key: str) -> None:
    ls.LessonProgress(who).forget(lesson_id, step_id)
    st.session_state.pop(choice_key, None)


q = step.question
revealed = q is None or step.id in answers
if q is not None:
    choice_key = f"{K}_choice"
    options = list(range(len(q.choices)))
    label = ui.text(q.text.get(lang))
    if not revealed:
        with st.form(f"{K}_form", border=False):
            st.radio(label, options, index=None, key=choice_key, format_func=lambda i: ui.text(q.choices[i].get(lang)))
            st.form_submit_button(w("check", lang), key=f"{K}_check", type="primary", icon=":material/task_alt:",
                                  on_click=_answer, args=(progress.identity, lesson.id, step.id, q.answer, choice_key))
        if st.session_state.pop("lessons_unanswered", None) == choice_key:
            st.warning(w("pick_first", lang), icon=":material/touch_app:")
        else:
            st.caption(w("pick_first", lang))
    else:
        chosen = answers[step.id][0]
        st.radio(label, options, index=chosen, key=f"{choice_key}_given", disabled=True,
                 format_func=lambda i: ui.text(q.choices[i].get(lang)))
        right = q.choices[q.answer].get(lang)
        if chosen == q.answer:
            st.success(f"**{w('right', lang)}:** {ui.text(right)}", icon=":material/check_circle:")
        else:
            st.warning(f"**{w('wrong', lang)}** “{ui.text(right)}”.", icon=":material/lightbulb:")
        st.info(ui.text(q.explanation.get(lang)), icon=":material/school:")
        st.button(w("retry", lang), key=f"{K}_retry", type="tertiary", icon=":material/replay:", on_click=_retry,
                  args=(progress.identity, lesson.id, step.id, choice_key))

# the reveal: the figure, once answered
fig_spec = step.figure
if revealed and fig_spec is not None:
    runs = {ref: ls.resolve_run(lesson, ref, progress) for ref in fig_spec.runs}
    missing = [ref for ref, r in runs.items() if r is None or r.status not in ("completed",) + ui.ACTIVE]
    active = [ref for ref, r in runs.items() if r is not None and r.status in ui.ACTIVE]
    if missing:
        st.info(w("needs_run", lang, label=run_label(missing[0])), icon=":material/info:")
    elif active:
        st.info(w("needs_training", lang, label=run_label(active[0])), icon=":material/hourglass_top:")
        if not watching:
            watch(runs[active[0]].id, active[0])
    else:
        with st.spinner(w("drawing", lang)):
            fig = _figure(fig_spec.kind, fig_spec.runs, json.dumps(fig_spec.params, sort_keys=True),
                          tuple(runs[ref].id for ref in fig_spec.runs),
                          tuple(ui.text(run_label(ref), "plain") for ref in fig_spec.runs), str(dlcore.data_dir()))
        ui.show_figure(fig, key=f"{K}_figure", filename=f"lesson-{lesson.id}-{step.id}")

# back / next
st.divider()
b1, _, b2 = st.columns([1, 3, 1])
with b1:
    if index > 0:
        st.button(w("back", lang), key="lessons_back", icon=":material/arrow_back:", width="stretch", on_click=go_to,
                  args=(lesson.id, index))
with b2:
    last = index == n - 1
    st.button(w("finish" if last else "next", lang), key="lessons_next", type="primary", width="stretch",
              icon=":material/flag:" if last else ":material/arrow_forward:", on_click=go_to,
              args=(None, None, lesson.id) if last else (lesson.id, index + 2))
