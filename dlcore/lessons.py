"""Guided lessons: typed lesson files, each student's progress, the runs a lesson needs and its figures.

A lesson is a TOML file in ``lessons/`` (a teacher can write one; no code): a title, the runs it uses and
a sequence of steps. A step has a short text, at most one action (open a page on a run, or train a run),
a question the student answers *before* the reveal, and a figure drawn from that run once answered. Every
text is given in English and Chinese (``title.en`` / ``title.zh``). :func:`load_lessons` reads and checks
them; a mistake raises :class:`LessonError` naming the file and the field (``steps[2].question.answer``).

Runs are declared once per lesson (``[runs.cnn]``): a starter run when one is installed
(``starter = "seed-cnn"``, see :func:`dlcore.starter_run`), else one the student trains from ``preset``,
``dataset`` and overrides of the data, model and train specs. :class:`LessonProgress` keeps, per identity,
each step's answer, where the student is in each lesson and the runs they trained for it, in
``lessons.db`` (SQLite, one transaction per change) in the data folder.

Example:
    >>> lesson = load_lessons()[0]
    >>> lesson.title.get("zh"), len(lesson.steps)
    ('卷积看到了什么', 4)
    >>> p = LessonProgress("ada"); p.answer(lesson.id, lesson.steps[0].id, 1, True); p.answers(lesson.id)
    {'filters': (1, True)}
"""
from __future__ import annotations

import sqlite3
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

LANGS = ("en", "zh")
ACTIONS = ("open", "train")  # open a page on a run (training it first when needed) · train a variant
PAGES = ("home", "data", "build", "train", "runs", "filters", "attention", "language", "explain", "internals",
         "compress", "overfitting")  # app pages an action may open (keys of the app's ui.PAGE_FILES)
DEFAULT_FOLDER = Path(__file__).resolve().parents[1] / "lessons"


class LessonError(ValueError):
    """A lesson file that cannot be used: the message names the file and the field, and says what is wrong."""

    def __init__(self, file: str | Path, field: str, message: str):
        self.file, self.field = str(file), field
        super().__init__(f"{Path(file).name}: {field}: {message}" if field else f"{Path(file).name}: {message}")


# ---------------------------------------------------------------------------------------------- the types
@dataclass(frozen=True)
class Text:
    """One text in every lesson language."""
    en: str
    zh: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


@dataclass(frozen=True)
class Question:
    text: Text
    choices: tuple[Text, ...]
    answer: int  # index into choices
    explanation: Text


@dataclass(frozen=True)
class RunRef:
    """A run a lesson uses: the starter run when installed, else one the student trains from these specs."""
    name: str
    label: Text
    preset: str
    dataset: str
    starter: str = ""  # slug for dlcore.starter_run ("seed-cnn", "tiny-transformer", "seed-lstm")
    data: dict = field(default_factory=dict)  # DataSpec overrides
    model: dict = field(default_factory=dict)  # overrides of the preset's model config
    train: dict = field(default_factory=dict)  # TrainSpec overrides (on top of the preset's recipe)
    init_from: str = ""  # another run of the lesson whose weights this one starts from (transfer)

    def specs(self, init_from_id: str = ""):
        """(DataSpec, model config, TrainSpec) of the run to train.

        Raises:
            SpecError: a field of the overrides is unknown or out of range (the lesson test checks every
                shipped lesson, so this is a teacher's typo).
        """
        import dlcore
        from dlcore.specs import SpecError

        preset = dlcore.PRESETS.get(self.preset)
        if preset is None:
            raise SpecError("preset", f"unknown preset {self.preset!r}")
        for what, values, cls in (("data", self.data, dlcore.DataSpec), ("train", self.train, dlcore.TrainSpec),
                                  ("model", self.model, type(preset.config))):
            unknown = sorted(set(values) - set(cls.__dataclass_fields__))
            if unknown:
                raise SpecError(unknown[0], f"{what}.{unknown[0]} is not a field of {cls.__name__}")
        base_data = preset.data_set if self.dataset == preset.data else {}
        data = dlcore.DataSpec(name=self.dataset, **{**base_data, **_tuples(self.data)})
        model = preset.config.replace(**_tuples(self.model))
        train = dlcore.TrainSpec(**{**preset.train, **_tuples(self.train)})
        if init_from_id:
            train = train.replace(init_from=init_from_id)
        return data, model, train


@dataclass(frozen=True)
class Action:
    kind: str  # "open" or "train"
    run: str  # a name in Lesson.runs
    page: str = ""  # for "open": a key of PAGES
    label: Text | None = None  # the button's text (default: said by the page)


@dataclass(frozen=True)
class Figure:
    kind: str  # a key of FIGURES
    runs: tuple[str, ...]  # names in Lesson.runs (one, or several for "compare")
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    id: str
    title: Text
    text: Text
    action: Action | None = None
    question: Question | None = None
    figure: Figure | None = None


@dataclass(frozen=True)
class Lesson:
    id: str
    order: int
    title: Text
    summary: Text
    runs: dict[str, RunRef]
    steps: tuple[Step, ...]
    path: str = ""

    def step_index(self, step_id: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.id == step_id)


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


# ---------------------------------------------------------------------------------------------- loading
class _Reader:
    """Typed reads from a parsed TOML table, each error naming the file and the dotted field."""

    def __init__(self, file: Path):
        self.file = file

    def fail(self, where: str, message: str):
        raise LessonError(self.file, where, message)

    def table(self, d: Any, where: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if not isinstance(d, dict):
            self.fail(where, f"must be a table, got {type(d).__name__}")
        for k in d:
            if k not in allowed:
                self.fail(_join(where, k), f"unknown field (allowed: {', '.join(sorted(allowed))})")
        for k in sorted(required):
            if k not in d:
                self.fail(_join(where, k), "missing")
        return d

    def string(self, d: dict, key: str, where: str, default: str | None = None, ident: bool = False) -> str:
        if key not in d:
            if default is None:
                self.fail(_join(where, key), "missing")
            return default
        v = d[key]
        if not isinstance(v, str) or not v.strip():
            self.fail(_join(where, key), "must be a non-empty string")
        if ident and not all(c.isalnum() or c in "-_" for c in v):
            self.fail(_join(where, key), f"must be letters, digits, '-' or '_', got {v!r}")
        return v

    def text(self, d: dict, key: str, where: str) -> Text:
        w = _join(where, key)
        if key not in d:
            self.fail(w, f"missing (give {key}.en and {key}.zh)")
        t = self.table(d[key], w, set(LANGS), set(LANGS))
        return Text(**{lang: _unwrap(self.string(t, lang, w), lang) for lang in LANGS})

    def texts(self, d: dict, key: str, where: str) -> tuple[Text, ...]:
        w = _join(where, key)
        if key not in d:
            self.fail(w, f"missing (give {key}.en and {key}.zh as lists)")
        t = self.table(d[key], w, set(LANGS), set(LANGS))
        lists = {}
        for lang in LANGS:
            v = t[lang]
            if not isinstance(v, list) or len(v) < 2 or not all(isinstance(s, str) and s.strip() for s in v):
                self.fail(f"{w}.{lang}", "must be a list of at least two non-empty strings")
            lists[lang] = v
        if len(lists["en"]) != len(lists["zh"]):
            self.fail(w, f"en has {len(lists['en'])} choices, zh has {len(lists['zh'])}")
        return tuple(Text(e, z) for e, z in zip(lists["en"], lists["zh"]))

    def mapping(self, d: Any, where: str) -> dict:
        """A table whose keys are names the author chooses (runs, spec overrides)."""
        if not isinstance(d, dict):
            self.fail(where, f"must be a table, got {type(d).__name__}")
        return d

    def overrides(self, d: dict, key: str, where: str) -> dict:
        if key not in d:
            return {}
        v = self.mapping(d[key], _join(where, key))
        for k, x in v.items():
            ok = isinstance(x, (int, float, str, bool)) or (
                isinstance(x, list) and all(isinstance(i, (int, float, str)) for i in x))
            if not ok:
                self.fail(_join(where, f"{key}.{k}"), "must be a number, string, boolean or list of them")
        return dict(v)


def _unwrap(text: str, lang: str) -> str:
    """A text wrapped over several lines of the file as one paragraph: lines are joined by a space, except
    between two Chinese characters (Chinese has no spaces between words)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    out = lines[0] if lines else ""
    for line in lines[1:]:
        cjk = lang == "zh" and (not out[-1].isascii() or not line[0].isascii())
        out += ("" if cjk else " ") + line
    return out


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _figure_params_ok(kind: str) -> set[str]:
    return set(FIGURES[kind][1])


def load_lesson(path: str | Path) -> Lesson:
    """Read and check one lesson file.

    Raises:
        LessonError: the file does not parse, or a field is missing, unknown, of the wrong type or points
            at a run, page or figure that does not exist; the message names the file and the field.
    """
    path = Path(path)
    r = _Reader(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise LessonError(path, "", f"not valid TOML ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LessonError(path, "", f"cannot be read ({e})") from None
    r.table(raw, "", {"id", "order", "title", "summary", "runs", "steps"}, {"id", "title", "summary", "steps"})
    lesson_id = r.string(raw, "id", "", ident=True)
    order = raw.get("order", 100)
    if not isinstance(order, int) or isinstance(order, bool):
        r.fail("order", "must be a whole number")

    runs: dict[str, RunRef] = {}
    for name, spec in r.mapping(raw.get("runs", {}), "runs").items():
        w = f"runs.{name}"
        r.table(spec, w, {"label", "preset", "dataset", "starter", "data", "model", "train", "init_from"},
                {"preset", "dataset"})
        label = r.text(spec, "label", w) if "label" in spec else Text(name, name)
        runs[name] = RunRef(name=name, label=label, preset=r.string(spec, "preset", w),
                            dataset=r.string(spec, "dataset", w), starter=r.string(spec, "starter", w, ""),
                            data=r.overrides(spec, "data", w), model=r.overrides(spec, "model", w),
                            train=r.overrides(spec, "train", w), init_from=r.string(spec, "init_from", w, ""))
    for name, ref in runs.items():
        if ref.init_from and ref.init_from not in runs:
            r.fail(f"runs.{name}.init_from", f"names no run of this lesson (runs: {', '.join(runs)})")
        if ref.init_from == name:
            r.fail(f"runs.{name}.init_from", "a run cannot start from itself")

    steps_raw = raw["steps"]
    if not isinstance(steps_raw, list) or not steps_raw:
        r.fail("steps", "must be a non-empty list of [[steps]] tables")
    steps, seen = [], set()
    for i, s in enumerate(steps_raw):
        w = f"steps[{i}]"
        r.table(s, w, {"id", "title", "text", "action", "question", "figure"}, {"id", "title", "text"})
        sid = r.string(s, "id", w, ident=True)
        if sid in seen:
            r.fail(f"{w}.id", f"{sid!r} is used by an earlier step")
        seen.add(sid)
        action = None
        if "action" in s:
            aw = f"{w}.action"
            a = r.table(s["action"], aw, {"kind", "run", "page", "label"}, {"kind", "run"})
            kind = r.string(a, "kind", aw)
            if kind not in ACTIONS:
                r.fail(f"{aw}.kind", f"must be one of {', '.join(ACTIONS)}, got {kind!r}")
            run = r.string(a, "run", aw)
            if run not in runs:
                r.fail(f"{aw}.run", f"names no run of this lesson (runs: {', '.join(runs) or 'none'})")
            page = r.string(a, "page", aw, "")
            if kind == "open" and page not in PAGES:
                r.fail(f"{aw}.page", f"must be one of {', '.join(PAGES)}, got {page!r}")
            action = Action(kind, run, page, r.text(a, "label", aw) if "label" in a else None)
        question = None
        if "question" in s:
            qw = f"{w}.question"
            q = r.table(s["question"], qw, {"text", "choices", "answer", "explanation"},
                        {"text", "choices", "answer", "explanation"})
            choices = r.texts(q, "choices", qw)
            ans = q["answer"]
            if not isinstance(ans, int) or isinstance(ans, bool) or not 0 <= ans < len(choices):
                r.fail(f"{qw}.answer", f"must be the index of a choice, 0 to {len(choices) - 1}, got {ans!r}")
            question = Question(r.text(q, "text", qw), choices, ans, r.text(q, "explanation", qw))
        figure = None
        if "figure" in s:
            fw = f"{w}.figure"
            f = r.table(s["figure"], fw, {"kind", "run", "runs", "params"}, {"kind"})
            kind = r.string(f, "kind", fw)
            if kind not in FIGURES:
                r.fail(f"{fw}.kind", f"must be one of {', '.join(FIGURES)}, got {kind!r}")
            names = f.get("runs", [f["run"]] if "run" in f else None)
            if not names or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                r.fail(f"{fw}.run", "missing: name the run (run = \"…\") or runs (runs = [\"…\", …])")
            for n in names:
                if n not in runs:
                    r.fail(f"{fw}.run", f"{n!r} names no run of this lesson (runs: {', '.join(runs) or 'none'})")
            params = r.overrides(f, "params", fw)
            for p in params:
                if p not in _figure_params_ok(kind):
                    r.fail(f"{fw}.params.{p}", f"not a parameter of the {kind} figure "
                                               f"(it takes: {', '.join(FIGURES[kind][1]) or 'none'})")
            figure = Figure(kind, tuple(names), params)
        steps.append(Step(sid, r.text(s, "title", w), r.text(s, "text", w), action, question, figure))
    return Lesson(lesson_id, order, r.text(raw, "title", ""), r.text(raw, "summary", ""), runs, tuple(steps),
                  str(path))


def load_lessons(folder: str | Path | None = None, errors: list | None = None) -> list[Lesson]:
    """Every ``*.toml`` lesson in ``folder`` (default: the project's ``lessons/``), by ``order`` then id.

    Args:
        errors: when given, an invalid file is skipped and its :class:`LessonError` appended here (the app
            lists the good lessons and says what is wrong with the others); otherwise it is raised.

    Raises:
        LessonError: a file is invalid (see :func:`load_lesson`), or two files share a lesson id.
    """
    folder = Path(folder) if folder is not None else DEFAULT_FOLDER
    lessons, ids = [], {}
    for path in sorted(folder.glob("*.toml")):
        try:
            lesson = load_lesson(path)
            if lesson.id in ids:
                raise LessonError(path, "id", f"{lesson.id!r} is also the id of {ids[lesson.id]}")
        except LessonError as e:
            if errors is None:
                raise
            errors.append(e)
            continue
        ids[lesson.id] = path.name
        lessons.append(lesson)
    return sorted(lessons, key=lambda l: (l.order, l.id))


# ---------------------------------------------------------------------------------------------- progress
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (identity TEXT, lesson TEXT, step TEXT, choice INTEGER, correct INTEGER,
                                    at REAL, PRIMARY KEY (identity, lesson, step));
CREATE TABLE IF NOT EXISTS positions (identity TEXT, lesson TEXT, step INTEGER, at REAL,
                                      PRIMARY KEY (identity, lesson));
CREATE TABLE IF NOT EXISTS lesson_runs (identity TEXT, lesson TEXT, ref TEXT, run_id TEXT, at REAL,
                                        PRIMARY KEY (identity, lesson, ref));
"""


class LessonProgress:
    """One student's progress through the lessons, kept in ``lessons.db`` in the data folder.

    Each change is one SQLite transaction (WAL), so twenty students answering at once neither lose nor
    mix up answers; identities are compared as given (the app's identity string).

    Args:
        identity: whose progress (``identity.viewer().identity`` in the app).
        folder: the data folder (default: :func:`dlcore.data_dir`).
    """

    def __init__(self, identity: str, folder: str | Path | None = None):
        from dlcore.config import data_dir

        self.identity = str(identity)
        self.path = Path(folder or data_dir()) / "lessons.db"
        con = sqlite3.connect(self.path, timeout=30)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
        finally:
            con.close()

    def _connect(self) -> "_Tx":
        return _Tx(sqlite3.connect(self.path, timeout=30, isolation_level=None))

    def answer(self, lesson: str, step: str, choice: int, correct: bool) -> None:
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                        (self.identity, lesson, step, int(choice), int(bool(correct)), time.time()))

    def answers(self, lesson: str) -> dict[str, tuple[int, bool]]:
        """step id -> (chosen index, whether it was right)."""
        with self._connect() as con:
            rows = con.execute("SELECT step, choice, correct FROM answers WHERE identity = ? AND lesson = ?",
                               (self.identity, lesson)).fetchall()
        return {s: (c, bool(ok)) for s, c, ok in rows}

    def forget(self, lesson: str, step: str | None = None) -> None:
        """Clear the answers of one step (None: of the whole lesson) to try again."""
        with self._connect() as con:
            if step is None:
                con.execute("DELETE FROM answers WHERE identity = ? AND lesson = ?", (self.identity, lesson))
            else:
                con.execute("DELETE FROM answers WHERE identity = ? AND lesson = ? AND step = ?",
                            (self.identity, lesson, step))

    def position(self, lesson: str) -> int:
        """The step index the student was last on (0 for a lesson not started)."""
        with self._connect() as con:
            row = con.execute("SELECT step FROM positions WHERE identity = ? AND lesson = ?",
                              (self.identity, lesson)).fetchone()
        return int(row[0]) if row else 0

    def set_position(self, lesson: str, step: int) -> None:
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?)",
                        (self.identity, lesson, int(step), time.time()))

    def run_id(self, lesson: str, ref: str) -> str | None:
        """The run this student trained for one of the lesson's runs, if any."""
        with self._connect() as con:
            row = con.execute("SELECT run_id FROM lesson_runs WHERE identity = ? AND lesson = ? AND ref = ?",
                              (self.identity, lesson, ref)).fetchone()
        return row[0] if row else None

    def set_run(self, lesson: str, ref: str, run_id: str) -> None:
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO lesson_runs VALUES (?, ?, ?, ?, ?)",
                        (self.identity, lesson, ref, run_id, time.time()))

    def done(self, lesson: Lesson) -> int:
        """How many of the lesson's steps are done: answered, or (without a question) visited."""
        answered = self.answers(lesson.id)
        seen = self.position(lesson.id)
        return sum(1 for i, s in enumerate(lesson.steps)
                   if s.id in answered or (s.question is None and i <= seen))


class _Tx:
    """A connection used as ``with``: BEGIN IMMEDIATE … COMMIT (ROLLBACK on error), then closed."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.con.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.con.close()


# ---------------------------------------------------------------------------------------------- runs
def _starter(slug: str, store) -> str | None:
    from dlcore.starters import starter_run

    return starter_run(slug, store)


def resolve_run(lesson: Lesson, ref: str, progress: LessonProgress, store=None):
    """The run a lesson uses for ``ref``: the starter run when installed, else the one this student
    trained for it (any status; the page shows progress or a failure); None when there is none yet."""
    import dlcore

    store = store or dlcore.RunStore()
    spec = lesson.runs[ref]
    for run_id in ((_starter(spec.starter, store) if spec.starter else None), progress.run_id(lesson.id, ref)):
        if run_id:
            try:
                return store.get(run_id)
            except dlcore.RunNotFound:
                continue
    return None


def start_lesson_run(lesson: Lesson, ref: str, progress: LessonProgress, store=None) -> str:
    """Start training the run ``ref`` of a lesson for this student (owned by them), and remember it.

    Raises:
        LessonError: the run starts from another run of the lesson that is not finished yet.
        SpecError, ResourceError, TrainingError: as :func:`dlcore.start_run`.
    """
    import dlcore

    spec = lesson.runs[ref]
    init_id = ""
    if spec.init_from:
        parent = resolve_run(lesson, spec.init_from, progress, store)
        if parent is None or parent.status != "completed":
            first = lesson.runs[spec.init_from].label.en
            raise LessonError(lesson.path, f"runs.{ref}.init_from", f"train “{first}” first: this run starts from its weights")
        init_id = parent.id
    data, model, train = spec.specs(init_id)
    run_id = dlcore.start_run(data, model, train, name=f"Lesson {lesson.order} · {spec.label.en}", store=store,
                              owner=progress.identity)
    progress.set_run(lesson.id, ref, run_id)
    return run_id


# ---------------------------------------------------------------------------------------------- figures
def draw_figure(figure: Figure, run_ids: dict[str, str], labels: dict[str, str] | None = None, store=None):
    """The figure of a step, drawn from its run(s) with dlcore.inspect / explain and dlcore.viz.

    Args:
        figure: the step's figure.
        run_ids: run name -> run id for the names in ``figure.runs`` (completed runs).
        labels: run name -> label for legends (default: the names).

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    import dlcore

    fn, _ = FIGURES[figure.kind]
    ids = [run_ids[n] for n in figure.runs]
    names = [(labels or {}).get(n, n) for n in figure.runs]
    return fn(ids, names, store or dlcore.RunStore(), **figure.params)


def _open(run_id: str, store):
    import dlcore

    run, model = dlcore.load_run_model(run_id, store)
    return run, model, dlcore.load_dataset(run.data)


def _fig_filters(ids, names, store, layer: str = ""):
    import dlcore.inspect as ins
    from dlcore import viz

    _, model, _ = _open(ids[0], store)
    layer = layer or ins.conv_layers(model)[0][0]
    w = ins.kernels(model, layer)  # (out, in, k, k)
    shown = w[:, 0] if w.shape[1] != 3 else w
    return viz.kernel_grid(shown, title=f"{layer}: {w.shape[0]} filters of {w.shape[2]}×{w.shape[3]}")


def _fig_feature_maps(ids, names, store, index: int = 0, layer: str = "", channels: int = 16):
    import dlcore.inspect as ins
    from dlcore import viz

    _, model, ds = _open(ids[0], store)
    x, y = ins.example(ds, int(index))
    maps = ins.feature_maps(model, x)
    convs = {n for n, _ in ins.conv_layers(model)}
    layer = layer or next((n for n in maps if n not in convs), next(iter(maps)))
    m = maps[layer]
    return viz.feature_map_grid(m[: int(channels)], title=f"{layer}: {min(m.shape[0], int(channels))} of "
                                                          f"{m.shape[0]} feature maps for test example {index}")


def _fig_input(ids, names, store, index: int = 0):
    import dlcore.inspect as ins
    from dlcore import viz

    _, model, ds = _open(ids[0], store)
    x, y = ins.example(ds, int(index))
    probs = ins.predict_proba(model, x, ds.info)
    names = [str(n) for n in (ds.info.class_names or range(len(probs)))]
    return viz.probabilities_figure(probs, names, true=int(y), title=f"Test example {index}: the model's probabilities")


def _attention(ids, store, index):
    import dlcore.inspect as ins

    _, model, ds = _open(ids[0], store)
    x, _ = ins.example(ds, int(index))
    _, attn = ins.record_attention(model, x)  # (layers, heads, T, T)
    return model, ds, x, attn


def _fig_attention(ids, names, store, index: int = 0):
    import dlcore.inspect as ins
    from dlcore import viz

    model, ds, x, attn = _attention(ids, store, index)
    tokens = ds.info.input_kind == "tokens"
    labels = [viz_text(t) for t in (ins.token_labels(x, ds.info.vocab) if tokens else
                                    ins.position_labels(model, attn.shape[-1]))]
    highlight = {}
    if ds.info.expected_attention:
        scores = ins.pattern_scores(attn, ins.expected_attention(ds.info.expected_attention, x))
        highlight = {(l, h): f"{scores[l, h]:.0%}" for l in range(attn.shape[0]) for h in range(attn.shape[1])}
    return viz.attention_heads(attn, labels, highlight=highlight,
                               title=f"Every head for test example {index} (share on the expected pattern)")


def _fig_pattern_scores(ids, names, store, index: int = 0):
    import dlcore.inspect as ins
    from dlcore import viz

    model, ds, x, attn = _attention(ids, store, index)
    expected = ins.expected_attention(ds.info.expected_attention or "reverse", x)
    chance = float((expected > 0).sum(1).mean() / attn.shape[-1])
    return viz.pattern_scores_figure(ins.pattern_scores(attn, expected), chance,
                                     title="Share of each head's attention on the expected pattern")


def _fig_gates(ids, names, store, index: int = 0, units: int = 32):
    import dlcore.inspect as ins
    from dlcore import viz

    _, model, ds = _open(ids[0], store)
    x, y = ins.example(ds, int(index))
    states = ins.rnn_states(model, x)
    layer = model.config.num_layers - 1
    s = next(s for s in states.layers if s["layer"] == layer and s["direction"] == "forward")
    keys = list(ins.GATES[states.cell]) + ["h"] + (["c"] if states.cell == "lstm" else [])
    gate_names = {**ins.GATE_NAMES, "h": "hidden state h", "c": "cell state c"}
    return viz.gates_figure(s, gate_names, keys, max_units=int(units),
                            title=f"{states.cell.upper()} layer {layer + 1}, test example {index} "
                                  f"(true {ins.label_text(ds.info, y)})")


def _fig_trajectories(ids, names, store, n: int = 30):
    import numpy as np

    import dlcore.inspect as ins
    from dlcore import viz

    _, model, ds = _open(ids[0], store)
    x, y = ins.example_batch(ds, np.arange(min(int(n), ins.split_size(ds))))
    pts, ev = ins.pca_trajectories(ins.hidden_trajectories(model, x, layer=model.config.num_layers - 1), 2)
    return viz.trajectory_figure(pts, y, [viz_text(c) for c in ds.info.class_names], explained=ev,
                                 title="Hidden state after each row, projected with PCA")


def _fig_losses(ids, names, store):
    import dlcore
    from dlcore import viz

    rows = _epochs(ids[0], store)
    found = dlcore.detect_overfitting(rows)
    return viz.overfitting_figure([r.get("epoch") for r in rows], [r.get("train_loss") for r in rows],
                                  [r.get("val_loss") for r in rows], found[0] if found else None,
                                  title=f"Loss of {viz_text(names[0])}")


def _fig_compare(ids, names, store, metric: str = "val_loss"):
    from dlcore import viz

    curves = {viz_text(n): _epochs(i, store) for i, n in zip(ids, names)}
    return viz.compare_curves(curves, metric, title=metric.replace("_", " ").replace("val ", "validation "))


def _epochs(run_id: str, store) -> list[dict]:
    latest = {}
    for r in store.metrics(run_id, "epoch"):
        latest[r["step"]] = r
    return sorted(latest.values(), key=lambda r: r["step"])


def _fig_explanations(ids, names, store, index: int = 0, methods: list | tuple = ("integrated_gradients", "grad_cam")):
    import numpy as np

    import dlcore.explain as ex
    import dlcore.inspect as ins
    from dlcore import viz

    _, model, ds = _open(ids[0], store)
    x, y = ins.example(ds, int(index))
    target = int(np.argmax(ins.predict_proba(model, x, ds.info)))
    s = ex.subject_for(model, ds, x, target=target)
    panels = []
    for key in methods:
        e = ex.explain(s, key)
        f = ex.faithfulness(s, e, infidelity=False)
        panels.append(viz.Panel(e.title, s.display_input(), e.map, s.kind, None,
                                caption=f"deletion AUC {f.deletion_auc:.2f} (random {f.random_deletion_auc:.2f})"))
    return viz.attribution_panels(panels, title=f"Why “{ins.label_text(ds.info, target)}” for test example {index}")


def _fig_sanity(ids, names, store, index: int = 0, methods: list | tuple = ("integrated_gradients", "grad_cam")):
    import numpy as np

    import dlcore.explain as ex
    import dlcore.inspect as ins
    from dlcore import viz

    _, model, ds = _open(ids[0], store)
    x, _ = ins.example(ds, int(index))
    target = int(np.argmax(ins.predict_proba(model, x, ds.info)))
    res = ex.cascading_randomization(ex.subject_for(model, ds, x, target=target), list(methods),
                                     params={k: {} for k in methods})
    return viz.sanity_figure(res.layers, {ex.get_method(k).title: v for k, v in res.similarity.items()})


def _fig_knockout(ids, names, store, limit: int = 256):
    import dlcore.inspect as ins
    from dlcore import viz

    ko = ins.run_knockout(ids[0], limit=int(limit))
    return viz.knockout_figure(ko.table, ko.metric, ko.before)


def _fig_next_token(ids, names, store, prompt: str = "def ", temperature: float = 1.0, top_k: int = 0,
                    top_p: float = 1.0):
    import dlcore
    from dlcore import viz

    _, model, ds = _open(ids[0], store)
    tokens, before, after = dlcore.next_token_distribution(model, ds.info, prompt, max(float(temperature), 1e-6),
                                                           top_k=int(top_k), top_p=float(top_p))
    return viz.next_token_figure([viz_text(t) for t in tokens], before, after,
                                 title=f"Next character after {viz_text(repr(prompt))} at temperature {temperature:g}")


def _fig_pruning(ids, names, store, sparsities: list | tuple = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95),
                 limit: int = 500):
    import copy

    import torch

    from dlcore import viz
    from dlcore.compress import accuracy, prune_global

    _, model, ds = _open(ids[0], store)
    x, y = ds.test[0][: int(limit)], ds.test[1][: int(limit)]
    rows = []
    for s in sparsities:
        m = copy.deepcopy(model)
        if s > 0:
            prune_global(m, float(s))
        with torch.no_grad():
            out, _ = m(x)
        rows.append({"sparsity": float(s), "test_accuracy": accuracy(out, y)})
    return viz.compare_curves({viz_text(names[0]): rows}, "test_accuracy", x="sparsity",
                              title="Test accuracy when the smallest weights are set to zero (no fine-tuning)")


def viz_text(s) -> str:
    """A label for a figure: HTML escaped (run names and tokens are text, not markup)."""
    import html

    return html.escape(str(s).replace("\n", " "), quote=False)


# kind -> (builder(run_ids, run_labels, store, **params), the params a lesson may set)
FIGURES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "filters": (_fig_filters, ("layer",)),
    "feature_maps": (_fig_feature_maps, ("index", "layer", "channels")),
    "prediction": (_fig_input, ("index",)),
    "attention": (_fig_attention, ("index",)),
    "pattern_scores": (_fig_pattern_scores, ("index",)),
    "gates": (_fig_gates, ("index", "units")),
    "trajectories": (_fig_trajectories, ("n",)),
    "losses": (_fig_losses, ()),
    "compare": (_fig_compare, ("metric",)),
    "explanations": (_fig_explanations, ("index", "methods")),
    "sanity": (_fig_sanity, ("index", "methods")),
    "knockout": (_fig_knockout, ("limit",)),
    "next_token": (_fig_next_token, ("prompt", "temperature", "top_k", "top_p")),
    "pruning": (_fig_pruning, ("sparsities", "limit")),
}

__all__ = ["ACTIONS", "FIGURES", "LANGS", "PAGES", "Action", "Figure", "Lesson", "LessonError", "LessonProgress",
           "Question", "RunRef", "Step", "Text", "draw_figure", "load_lesson", "load_lessons", "resolve_run",
           "start_lesson_run"]
