"""What every page shares: user-supplied text shown as text, cached read-only objects, the figure display
with downloads, formatting, the selected run in the URL, forms built from declared fields, and the inspection
pages' scaffold (run picker, "no suitable run" message). Not a page: it lies outside the section folders and
app.py does not list it.

Only read-only shared objects are cached here (datasets, models, model summaries, test predictions);
per-user state lives in ``st.session_state`` under page-prefixed keys.
"""
from __future__ import annotations

import functools
import html
import json
import logging
import re
import threading
import time

import streamlit as st

import dlcore
from dlcore import evaluation, viz

PAGE_FILES = {name: f"app_pages/explore/{name}.py" for name in ("home", "data", "build", "train", "runs")} | {
    name: f"app_pages/look_inside/{name}.py" for name in ("filters", "attention", "language", "explain", "internals")} | {
    name: f"app_pages/advanced/{name}.py" for name in ("compress", "overfitting")} | {
    "lessons": "app_pages/learn/lessons.py"}
ACTIVE = ("queued", "running")
STATUS_ICONS = {"queued": ":gray[:material/hourglass_top:]", "running": ":blue[:material/directions_run:]",
                "completed": ":green[:material/check_circle:]", "failed": ":red[:material/error:]",
                "cancelled": ":orange[:material/stop_circle:]"}  # for st.markdown only
PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
PRESENT = "present"  # the presentation toggle's key, bound to the URL (?present=true survives a reload)


# ------------------------------------------------------------------ user-supplied text is shown as text
# Streamlit reads Markdown in st.markdown/caption/alerts/toasts, widget labels, radio options, metric labels,
# progress texts and page links; Plotly reads HTML (<a href>, <b>) in titles and tick labels. A run name,
# dataset or class name, file name, CSV header, query parameter or typed text must never be interpreted there.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>~$&])")  # inline Markdown, HTML, math and entities, anywhere
_MD_LEADING = re.compile(r"^(\s*)(#|[-+=]|\d+(?=[.)]))")  # headings, lists, rules: only at the start of a line
_NO_AUTOLINK = re.compile(r"(:(?=[A-Za-z0-9/])|@|(?i:www)(?=\.))")  # URL schemes, e-mails, www., :red[…], :emoji:, :material/…:
_WJ = "\u2060"  # WORD JOINER: invisible, and breaks the patterns above without changing what is read
_REPR = re.compile(r"<(?:[\w.]+ )?[\w.]+ object at 0x[0-9a-fA-F]+>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def text(value, where: str = "markdown") -> str:
    """A user-supplied value as literal text for one kind of display: the one way pages show such strings.

    Args:
        value: anything (run/dataset/class/file names, CSV headers, query parameters, typed text).
        where: ``"markdown"`` (st.markdown, st.caption, alerts, toasts, widget labels, radio options,
            st.progress and st.metric texts, page links): Markdown syntax, HTML, math, colour directives,
            emoji shortcodes and auto-links are escaped; line breaks become spaces.
            ``"figure"`` (Plotly titles, tick labels, annotations, hover text): HTML is escaped.
            ``"plain"`` (selectbox/multiselect options, st.dataframe cells, st.text, st.code, file names):
            shown verbatim by Streamlit, so only control characters are removed.

    Example:
        >>> text("[sign in](http://evil) **now**")
        '\\[sign in\\](http:\u2060//evil) \\*\\*now\\*\\*'
    """
    s = _CONTROL.sub(" ", str(value))
    if where == "plain":
        return s
    if where == "figure":
        return html.escape(s.replace("\n", " "), quote=False)
    if where != "markdown":
        raise ValueError(f"where must be markdown, figure or plain, got {where!r}")
    s = _MD_SPECIAL.sub(r"\\\1", " ".join(s.split()) if "\n" in s or "\r" in s else s)
    s = _MD_LEADING.sub(lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2)[0].isdigit() else "\\" + m.group(2)), s)
    return _NO_AUTOLINK.sub(lambda m: m.group(0) + _WJ, s)


class PageError(Exception):
    """What the browser is shown of an unexpected error: its message, without the traceback or server paths."""


_LOG = logging.getLogger("dle.app")
_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/](?:[^\s'\"\\/]+[\\/])+([^\s'\"\\/]*)")


def guarded(fn):
    """Run a page (or a fragment) so that an unexpected exception shows its message, not a traceback.

    The traceback goes to the server log (``logging``, logger ``dle.app``); the page shows the exception's
    type and message with server paths cut to file names. ``st.stop``/``st.rerun``/``st.switch_page`` pass
    through (they are not ``Exception``\\ s). ``.streamlit/config.toml`` sets ``showErrorDetails = "type"``
    for what escapes this (no traceback, a generic message).
    """
    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            _LOG.exception("unexpected error on page %s", getattr(fn, "__name__", fn))
            shown = " ".join(_PATH.sub(lambda m: m.group(1) or "…", _REPR.sub("", str(e))).split())
            named = type(type(e).__name__, (PageError,), {})  # shown as "ValueError: …", but a fresh exception
            st.exception(named(shown or "no message"))
    return run


def message(e: BaseException | str) -> str:
    """An error's message for a user: no Python reprs (``<_io.BytesIO object at 0x…>``), as literal text."""
    return text(" ".join(_REPR.sub("", str(e)).split()) or type(e).__name__)


# ------------------------------------------------------------------ cached, read-only objects
@st.cache_resource(max_entries=8, show_spinner="Loading the dataset…")
def _dataset(name: str, root: str, version: float):
    return dlcore.load_dataset(dlcore.DataSpec(name=name))


def dataset(name: str):
    """The dataset with default split settings (shared by all sessions; never mutate it).

    Raises:
        DataError: unknown, unavailable offline, or a damaged upload.
    """
    return _dataset(name, str(dlcore.data_dir()), dlcore.dataset_version(name))


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _run_model(run_id: str, root: str, epoch: int | None, version: float):
    if epoch is None:
        return dlcore.load_run_model(run_id)
    return dlcore.load_snapshot_model(run_id, epoch)


def model_version(run_id: str, epoch: int | None = None) -> float:
    """When the weights behind ``run_model(run_id, epoch=epoch)`` were written: a cache key for results
    computed from them (a running run's checkpoint changes at every epoch end)."""
    return dlcore.checkpoint_version(run_id) if epoch is None else dlcore.snapshot_version(run_id, epoch)


def run_model(run_id: str, root: str, epoch: int | None = None):
    """(run, model) shared read-only by the inspection pages: the run's latest checkpoint (a running run's
    too: a newer checkpoint is loaded once it is written), or its snapshot after ``epoch`` epochs. ``root``
    keys the cache by data folder.

    Raises:
        CheckpointError (SnapshotError for an epoch): no such checkpoint or snapshot.
    """
    return _run_model(run_id, root, epoch, model_version(run_id, epoch))


@st.cache_data(max_entries=64, show_spinner=False)
def _snapshots(run_id: str, root: str, version: float) -> list:
    return dlcore.list_snapshots(run_id)


def snapshots(run_id: str, root: str) -> list:
    """``dlcore.list_snapshots`` of a run, re-read when its snapshots change (a running run adds one per epoch)."""
    return _snapshots(run_id, root, dlcore.snapshot_version(run_id))


LIVE_S = 3  # a running run's inspection page looks for a newer checkpoint this often (seconds)


def inspect_run(run, key: str, what: str, draw) -> None:
    """The body of an inspection page for the picked run, under its epoch slider: ``draw(run, model, dataset,
    epoch)`` with the model of the epoch picked (None: the latest checkpoint). For a running run a small
    fragment looks every ``LIVE_S`` seconds whether a newer checkpoint was written or the run ended, and only
    then reruns the page: drawing the page (about a second of server time for Filters) happens once per
    checkpoint, not once per look.

    Args:
        run: the run from :func:`pick_run`. key: the slider's key prefix (page-prefixed).
        what: what the slider changes, for its help text.
    """
    root = str(dlcore.data_dir())
    if run.status == "running":
        def versions() -> tuple[float, float]:  # the checkpoint, and the snapshots written just after it
            return dlcore.checkpoint_version(run.id), dlcore.snapshot_version(run.id)

        seen = versions()

        @st.fragment(run_every=LIVE_S)
        def watch() -> None:
            if dlcore.get_run(run.id).status != "running" or versions() != seen:
                st.rerun()  # the whole page: the new checkpoint (or, once it ended, the final one and the slider)

        watch()
        st.info(f"This run is training: showing its latest checkpoint (after {_epochs_done(run)} of "
                f"{run.train.epochs} epochs). The page follows it: it looks for a newer one every {LIVE_S} s.",
                icon=":material/directions_run:")
    epoch = epoch_picker(run, key, what)
    try:
        run, model = run_model(run.id, root, epoch)
        ds = run_dataset(run.data.to_json())
    except (dlcore.CheckpointError, dlcore.DataError, dlcore.RunNotFound) as e:
        st.error(f"Cannot open this run: {message(e)}")
        return
    draw(run, model, ds, epoch)


def epoch_picker(run, key: str, what: str = "these views") -> int | None:
    """The epoch slider of an inspection page: scrub the run's per-epoch snapshots. Shown when the run kept
    at least two; returns the epoch picked, or None for the run's latest checkpoint (the default: the end of
    training, or where a running run is now).

    Args:
        run: the picked run. key: the slider's key (page-prefixed; the run id is added).
        what: what the slider changes, for its help text.
    """
    snaps = snapshots(run.id, str(dlcore.data_dir()))
    if len(snaps) < 2:
        return None
    epochs = [s.epoch for s in snaps]
    final = run.summary.get("epochs_done") if run.status == "completed" else None
    latest = "now" if run.status == "running" else "end"  # the latest checkpoint, exact (snapshots are fp16)
    options = epochs[:-1] + [latest] if final == epochs[-1] else [*epochs, latest]
    fmt = {e: f"epoch {e}" + (" (before training)" if e == 0 else "") for e in epochs}
    fmt[latest] = "now (training)" if latest == "now" else f"epoch {final} (end)" if final == epochs[-1] else "end"
    picked = st.select_slider("Epoch", options, value=latest, key=f"{key}_{run.id}_{latest}", format_func=fmt.get,
                              help=f"Scrub {what} through training: the run kept a snapshot of its weights at "
                                   f"epochs {', '.join(map(str, epochs))}.")
    return None if picked == latest else int(picked)


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def run_dataset(spec_json: str):
    """The dataset of a run's DataSpec (as JSON, so it can key the cache); never mutate it."""
    return dlcore.load_dataset(dlcore.DataSpec.from_json(spec_json))


@st.cache_data(max_entries=64, show_spinner=False)
def _summary(model_json: str, seq_len: int | None):
    return dlcore.summarize(dlcore.model_from_dict(json.loads(model_json)), seq_len=seq_len)


def summary(config, info) -> "dlcore.ModelSummary":
    """``dlcore.summarize`` of a config already adapted to ``info`` (cached by value)."""
    return _summary(json.dumps(dlcore.model_to_dict(config), sort_keys=True), config.sequence_length(info))


@st.cache_resource(show_spinner=False)
@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Once per server, in the background: load the quick start's dataset and start the warm worker (a
    training process with torch imported, so a click on Start shows its first metric in about a second).
    (Not ``dlcore.preload_imports``: imports in a second thread race the pages' own, and a page can then see
    a half-initialised module, e.g. PIL.Image.)"""
    def work():
        dlcore.dataset_info("mnist5k")
        try:
            dlcore.start_warm_worker()
        except Exception as e:  # runs still start, only more slowly (each one imports torch)
            _LOG.warning("no warm worker: %s", e)

    thread = threading.Thread(target=work, name="dle-warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_data(ttl=15, show_spinner=False)
def device() -> dict:
    return dlcore.device_description()


@st.cache_resource(max_entries=4, show_spinner="Predicting the test set…")
def _predictions(run_id: str, root: str, version: float):
    return evaluation.test_predictions(run_id)


def test_predictions(run_id: str):
    """Test-set predictions of a run's latest checkpoint (recomputed when the checkpoint changes)."""
    return _predictions(run_id, str(dlcore.data_dir()), dlcore.checkpoint_version(run_id))


# ------------------------------------------------------------------ figures
def presenting() -> bool:
    return bool(st.session_state.get(PRESENT, False))


def show_figure(fig, key: str, filename: str, on_select=None):
    """Draw a figure (enlarged in presentation mode) with PNG export in its toolbar and an HTML download.

    Args:
        fig: a ``plotly.graph_objects.Figure`` from ``dlcore.viz``.
        key: the chart's widget key (page-prefixed); the download button gets ``key + "_html"``.
        filename: the downloads' file name without extension.
        on_select: ``"rerun"`` to make points clickable; the selection event is returned.
    """
    if presenting():
        fig = viz.for_presentation(fig)
    config = {**PLOT_CONFIG, "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}}
    select = {"on_select": on_select, "selection_mode": "points"} if on_select else {}
    # theme=None: the figure looks as it will in the HTML and PNG downloads (and keeps its large type)
    event = st.plotly_chart(fig, key=key, config=config, width="stretch", theme=None, **select)
    st.download_button("Download HTML", data=lambda: fig.to_html(include_plotlyjs=True, full_html=True),
                       file_name=f"{filename}.html", mime="text/html", key=f"{key}_html", on_click="ignore",
                       icon=":material/download:", type="tertiary",
                       help="An interactive copy of this figure that opens in any browser, offline. "
                            "For a PNG, use the camera icon in the figure's toolbar.")
    return event


# ------------------------------------------------------------------ formatting
def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit, div in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} B"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "–"
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def fmt_metric(metric: str, value) -> str:
    if value is None:
        return "–"
    if metric in ("accuracy", "token_accuracy"):
        return f"{value:.1%}"
    return f"{value:.4g}"


def device_text(dev: dict) -> str:
    if dev["type"] == "cuda":
        n = f"{dev['count']}× " if dev.get("count", 1) > 1 else ""
        return f"GPU: {n}{dev['name']} · {fmt_bytes(dev['total_bytes'])} ({fmt_bytes(dev['free_bytes'])} free)"
    threads = f" · {dev['threads']} threads" if dev.get("threads") else ""
    return f"{dev['name']}{threads} · {fmt_bytes(dev['free_bytes'])} of {fmt_bytes(dev['total_bytes'])} RAM free"


def run_label(run) -> str:
    """A run in a select box (plain text there): name and id; no status, which would go stale in the box."""
    return text(f"{run.name} · {run.id}", "plain")


def dataset_labels(names: list[str]) -> dict[str, str]:
    """Readable names for dataset ids, for a select box's format function (plain text): uploads show the
    name they were given, not their id."""
    titles = {i.name: i.title for i in dlcore.list_user()}
    out = {}
    for name in names:
        if name.startswith("user-"):
            out[name] = text(f"{titles.get(name, name)} (upload)", "plain")
        elif name.startswith("tv-"):
            out[name] = f"{name} (download, needs torchvision)"
        else:
            out[name] = name
    return out


def dataset_title(name: str) -> str:
    """The name a user knows a dataset by (an upload's given name instead of ``user-people-2fe292``), as
    plain text: pass it through :func:`text` for Markdown or a figure."""
    if name.startswith("user-"):
        return next((i.title for i in dlcore.list_user() if i.name == name), name)
    return name


def dataset_metric(run, epoch_rows: list[dict] | None = None) -> str:
    """The metric name of a run's dataset, without loading the tensors when the store knows it."""
    for key in run.summary:
        if key.startswith("test_") and key != "test_loss":
            return key[5:]
    for key in (epoch_rows[-1] if epoch_rows else {}):
        if key.startswith("val_") and key != "val_loss":
            return key[4:]
    try:
        return dataset(run.data.name).info.metric
    except dlcore.DataError:
        return "accuracy"


def best_metric(run) -> float | None:
    return run.summary.get("best_metric")


# ------------------------------------------------------------------ the selected run lives in the URL
def selected_run() -> str | None:
    return st.query_params.get("run")


def select_run(run_id: str | None) -> None:
    if run_id:
        st.query_params["run"] = run_id
    elif "run" in st.query_params:
        del st.query_params["run"]


def open_run(run_id: str) -> None:
    """Go to the Train page watching this run (the id is kept in the URL, so a reload keeps it)."""
    st.switch_page(PAGE_FILES["train"], query_params={"run": run_id})


def runs(status: tuple[str, ...] | None = None) -> list:
    """The runs this session's person may see (their own, the shared and class-wide ones; a teacher: all),
    filtered in SQL, newest first; with ``status``, only those."""
    from app_pages.common import identity

    return dlcore.list_runs(status=status, viewer=identity.viewer())


def curve_rows(rows: list[dict], log_every: int | None = None) -> list[dict]:
    """Metric rows to plot, one per step, in step order.

    The store keeps a resumed run's rows up to its checkpoint and the worker logs from there (a row logged
    twice for a step: the newest wins). The trainer also logs the first step after every start, a window of
    one batch: for a fresh run that is the quick first point, after a resume it is a spike (or dip) of one
    batch's loss on top of the averaged curve, so off-grid one-step rows after the first are left out.

    Args:
        rows: ``RunStore.metrics`` rows (ordered by insertion).
        log_every: the run's logging interval, for step rows; None for epoch rows.
    """
    latest: dict[int, dict] = {}
    for r in rows:  # ordered by id: a later row replaces an earlier one of the same step
        latest[r["step"]] = r
    out = sorted(latest.values(), key=lambda r: r["step"])
    if not log_every or log_every <= 1:
        return out
    kept = out[:1]
    for prev, r in zip(out, out[1:]):
        epoch = r.get("epoch") or 0.0
        end_of_epoch = abs(epoch - round(epoch)) < 1e-9
        if r["step"] % log_every and not end_of_epoch and r["step"] - prev["step"] < log_every:
            continue
        kept.append(r)
    return kept


def user_error(e: BaseException) -> None:
    """A clear message for an error the user can act on (never a traceback; user values in it stay text)."""
    field = getattr(e, "field", None)
    prefix = f"**{text(field)}**: " if field and field not in ("?", "json") else ""
    st.error(f"{prefix}{message(e)}", icon=":material/error:")


def since(t: float | None) -> str:
    return fmt_duration(time.time() - t) + " ago" if t else "–"


# ------------------------------------------------------------------ widgets built from declared fields
def _to_widget(fs, value):
    if fs.is_tuple:
        return ", ".join(str(v) for v in (value or ()))
    if fs.kind == "float" and value is not None and not fs.choices:
        return float(value)  # a number input refuses an int next to float bounds
    return value


def _from_widget(fs, raw):
    """A widget's value as the field's type; SpecError (naming the field) when a list does not parse."""
    if not fs.is_tuple:
        return raw
    item = {"ints": int, "floats": float, "strs": str}[fs.kind]
    parts = [p.strip() for p in str(raw).replace(";", ",").split(",") if p.strip()]
    try:
        return tuple(item(p) for p in parts)
    except ValueError:
        kind = "numbers" if item is float else "whole numbers"
        raise dlcore.SpecError(fs.name, f"{fs.label} must be a comma-separated list of {kind}, e.g. "
                                        f"{_example(fs)}; got “{raw}”") from None


def _example(fs) -> str:
    return ", ".join(str(v) for v in fs.default) if fs.is_tuple and fs.default else "32, 64"


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else f"{v:,}"


def field_problem(fs, raw) -> str | None:
    """What is wrong with a widget's value for a declared field, in words (None when it is fine).

    An emptied number field is reported as empty (it never silently becomes the minimum), a number out of
    range says which end it passed and what the limit is.
    """
    lo, hi = fs.range or (None, None)
    span = (f"between {_num(lo)} and {_num(hi)}" if lo is not None and hi is not None else
            f"at least {_num(lo)}" if lo is not None else f"at most {_num(hi)}" if hi is not None else "")
    if raw is None:  # an emptied number field (a list field may be empty: it reads as no items)
        if fs.optional:
            return None
        return f"{fs.label} is empty: enter a number{' ' + span if span else ''}."
    try:
        value = _from_widget(fs, raw)
        if fs.kind in ("int", "float") and not fs.choices and isinstance(value, (int, float)) and value == value:
            if lo is not None and value < lo:
                return f"{fs.label} {_num(value)} is too small: it must be {span}."
            if hi is not None and value > hi:
                return f"{fs.label} {_num(value)} is too large: it must be {span}."
        fs.check(value)
    except dlcore.SpecError as e:
        return str(e)
    return None


def field_widget(fs, key: str, values: dict, reset: bool = False, problem: str | None = None) -> str | None:
    """One widget for one declared field (a spec field or an explanation method's parameter), bound to
    ``st.session_state[key]`` and initialised from ``values`` (else the field's default).

    Number widgets take any number (a browser refuses an out-of-range value in a bounded field without a
    word, and empties a cleared field into its minimum): what is wrong is said under the field instead, in
    words, as soon as the value reaches the server (inside a form: when it is submitted).

    Args:
        fs: a ``dlcore.FieldSpec`` (from ``dlcore.field_specs(cls)`` or ``Method.params``).
        key: the session-state key (page-prefixed).
        values: current values by field name.
        reset: overwrite what the user had typed (a new preset was chosen).
        problem: a refusal that names this field, found when the form was last submitted (a rule across
            fields, such as "pools must have one entry per conv block"); shown under it.

    Returns:
        The problem shown under the field, or None when its value is valid.
    """
    if reset or key not in st.session_state:
        st.session_state[key] = _to_widget(fs, values.get(fs.name, fs.default))
    lo, hi = fs.range or (None, None)
    span = f" Allowed: {_num(lo)} to {_num(hi)}." if lo is not None and hi is not None else ""
    helptext = ((fs.help[:1].upper() + fs.help[1:] + ".") if fs.help else "") + span or None
    if fs.choices:
        st.selectbox(fs.label, list(fs.choices), key=key, help=helptext)
    elif fs.kind == "bool":
        st.checkbox(fs.label, key=key, help=helptext)
    elif fs.kind in ("int", "float"):
        # value=None: an emptied field stays empty (and is reported) instead of becoming a number
        st.number_input(fs.label, value=None, step=1 if fs.kind == "int" else 1e-4 if fs.log else 0.05,
                        format=None if fs.kind == "int" else "%.1e" if fs.log else "%.3f", key=key, help=helptext,
                        placeholder=f"{_num(lo)} to {_num(hi)}" if span else None)
    else:  # tuples (layer widths) and free text
        hint = f" Comma-separated; each {_num(lo)} to {_num(hi)}." if fs.is_tuple and fs.range else ""
        st.text_input(fs.label, key=key, help=(helptext or "") + hint or None)
    problem = field_problem(fs, st.session_state.get(key)) or problem
    if problem:
        st.error(text(problem), icon=":material/error:")
    return problem


def read_fields(specs, prefix: str) -> dict:
    """Values of the widgets created by :func:`field_widget` (keys ``prefix + name``).

    Raises:
        SpecError: the first field whose value is empty, out of range or does not parse, in the words shown
            under that field.
    """
    out = {}
    for fs in specs:
        if prefix + fs.name not in st.session_state:
            continue
        raw = st.session_state[prefix + fs.name]
        if problem := field_problem(fs, raw):
            raise dlcore.SpecError(fs.name, problem)
        out[fs.name] = _from_widget(fs, raw)
    return out


# ------------------------------------------------------------------ the inspection pages' scaffold
def prepare_training(model: str, data: str) -> None:
    """Open the Train page with its start form filled in for a preset and a dataset (nothing watched yet)."""
    st.session_state["train_model"], st.session_state["train_data"] = model, data
    st.session_state["train_reset"] = True
    st.session_state["train_open_form"] = True
    st.switch_page(PAGE_FILES["train"])


def no_run_message(need: str | None, example: tuple[str, str], what: str = "page", key: str = "") -> None:
    """Say which run an inspection page needs and how to train one in the browser, with a button that opens
    the Train page with that run's form filled in.

    Args:
        need: what the view needs (``dlcore.inspect.VIEWS[view]``); None when any completed run will do.
        example: (preset, dataset) of a suitable run, e.g. ("seed-cnn", "mnist5k").
        what: "page", or "view" for one tab of a page.
        key: widget key of the button (page-prefixed; needed when a page shows two such messages).
    """
    model, data = example
    lead = (f"No completed run fits this {what}: it needs {need}." if need else "No completed run yet.")
    st.info(f"{lead} Train one first: on the **Train** page choose the model **{text(model)}** and the dataset "
            f"**{text(dataset_title(data))}**, then press **Start training**. The button below fills that in.",
            icon=":material/info:")
    if st.button(f"Set up {text(model)} on {text(dataset_title(data))}", icon=":material/model_training:",
                 key=key or f"no_run_{what}_{model}_{data}"):
        prepare_training(model, data)


def _epochs_done(run) -> int:
    """Epochs a running run has finished (its epoch rows in the store)."""
    return len(dlcore.RunStore().metrics(run.id, "epoch"))


def pick_run(view: str | None, key: str, example: tuple[str, str], what: str = "page", running: bool = False):
    """The run picker of an inspection page: the completed runs that suit ``view`` (None: any), the run in
    the URL chosen first.

    Args:
        example: (preset, dataset) of a suitable run, offered when there is none (:func:`no_run_message`).
        running: offer running runs too, once they wrote a checkpoint (labelled "training… epoch k"); their
            model is the latest checkpoint, reloaded when a newer one is written.

    Returns:
        (run, model, dataset) of the chosen run, shared read-only; None, with :func:`no_run_message` shown,
        when no run suits. A run that cannot be opened shows an error box and stops the page.
    """
    done = [r for r in runs(("completed", "running") if running else ("completed",))
            if r.status == "completed" or dlcore.checkpoint_version(r.id) > 0]
    suitable = [r for r in done if view is None or dlcore.inspect.unsuitable(r.model, view) is None]
    wanted = selected_run()
    if wanted and wanted not in {r.id for r in suitable}:
        st.warning(f"Run {text(wanted)} is not one you can open here: it does not exist, belongs to someone "
                   "else, or does not suit this view. Pick one of yours below.", icon=":material/block:")
    if not suitable:
        no_run_message(dlcore.inspect.VIEWS[view] if view else None, example, what, key=f"{key}_setup")
        return None
    ids = [r.id for r in suitable]
    labels = {r.id: text(f"{r.name} · {dataset_title(r.data.name)} · {r.id}" + (
        f" · training… epoch {_epochs_done(r)} of {r.train.epochs}" if r.status == "running" else ""), "plain")
        for r in suitable}
    run_id = st.selectbox("Run", ids, index=ids.index(wanted) if wanted in ids else 0, key=key,
                          format_func=labels.get)
    try:
        run, model = run_model(run_id, str(dlcore.data_dir()))
        return run, model, run_dataset(run.data.to_json())
    except (dlcore.CheckpointError, dlcore.DataError, dlcore.RunNotFound) as e:
        st.error(f"Cannot open this run: {message(e)}")
        st.stop()


# ------------------------------------------------------------------ starter runs
@st.cache_resource(show_spinner=False)
def _starters(root: str) -> tuple[str, ...]:
    return tuple(dlcore.install_starters(dlcore.RunStore(root)))  # an error is not cached: tried again next time


def install_starters() -> None:
    """Once per server and data folder: the shipped starter runs (``dlcore.install_starters``), so the
    inspection pages have a run to show before anyone has trained one. A failure is logged, never shown."""
    if not dlcore.starters_enabled():
        return
    try:
        _starters(str(dlcore.data_dir()))
    except Exception as e:  # noqa: BLE001 - the app works without starters; the reason goes to the server log
        _LOG.warning("starter runs not installed: %s", e)
