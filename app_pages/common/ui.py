"""What every page shares: cached read-only objects, the figure display with downloads, formatting, the
selected run in the URL, forms built from declared fields, and the inspection pages' scaffold (run picker,
"no suitable run" message). Not a page: it lies outside the section folders and app.py does not list it.

Only read-only shared objects are cached here (datasets, models, model summaries, test predictions);
per-user state lives in ``st.session_state`` under page-prefixed keys.
"""
from __future__ import annotations

import json
import threading
import time

import streamlit as st

import dlcore
from dlcore import evaluation, viz

PAGE_FILES = {name: f"app_pages/explore/{name}.py" for name in ("home", "data", "build", "train", "runs")} | {
    name: f"app_pages/look_inside/{name}.py" for name in ("filters", "attention", "explain", "internals")}
ACTIVE = ("queued", "running")
STATUS_ICONS = {"queued": ":gray[:material/hourglass_top:]", "running": ":blue[:material/directions_run:]",
                "completed": ":green[:material/check_circle:]", "failed": ":red[:material/error:]",
                "cancelled": ":orange[:material/stop_circle:]"}  # for st.markdown only
PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


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


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def run_model(run_id: str, root: str):
    """(run, model) of a finished run, shared read-only by the inspection pages (``root`` keys the cache
    by data folder)."""
    return dlcore.load_run_model(run_id)


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
def warm_up() -> threading.Thread:
    """Load the quick start's dataset once per server in the background, so the first click is quick."""
    thread = threading.Thread(target=dlcore.dataset_info, args=("mnist5k",), name="dle-warm-up", daemon=True)
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
    return bool(st.session_state.get("app_present", False))


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
    return f"{run.name} · {run.id}"  # no status: a live status would leave a stale label in the box


def dataset_labels(names: list[str]) -> dict[str, str]:
    """Readable names for dataset ids (uploads show the name they were given), for a format function."""
    titles = {i.name: i.title for i in dlcore.list_user()}
    out = {}
    for name in names:
        if name.startswith("user-"):
            out[name] = f"{titles.get(name, name)} (upload)"
        elif name.startswith("tv-"):
            out[name] = f"{name} (download, needs torchvision)"
        else:
            out[name] = name
    return out


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
    all_runs = dlcore.list_runs()
    return [r for r in all_runs if status is None or r.status in status]


def user_error(e: BaseException) -> None:
    """A clear message for an error the user can act on (never a traceback)."""
    field = getattr(e, "field", None)
    prefix = f"**{field}**: " if field and field not in ("?", "json") else ""
    st.error(f"{prefix}{e}", icon=":material/error:")


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
        raise dlcore.SpecError(fs.name, f"{fs.name} must be a comma-separated list of {kind}, e.g. 32, 64; "
                                        f"got {raw!r}") from None


def field_widget(fs, key: str, values: dict, reset: bool = False) -> None:
    """One widget for one declared field (a spec field or an explanation method's parameter), bound to
    ``st.session_state[key]`` and initialised from ``values`` (else the field's default).

    Args:
        fs: a ``dlcore.FieldSpec`` (from ``dlcore.field_specs(cls)`` or ``Method.params``).
        key: the session-state key (page-prefixed).
        values: current values by field name.
        reset: overwrite what the user had typed (a new preset was chosen).
    """
    if reset or key not in st.session_state:
        st.session_state[key] = _to_widget(fs, values.get(fs.name, fs.default))
    lo, hi = fs.range or (None, None)
    helptext = fs.help or None
    if fs.choices:
        st.selectbox(fs.label, list(fs.choices), key=key, help=helptext)
    elif fs.kind == "bool":
        st.checkbox(fs.label, key=key, help=helptext)
    elif fs.kind == "int":
        st.number_input(fs.label, min_value=None if lo is None else int(lo), max_value=None if hi is None else int(hi),
                        step=1, key=key, help=helptext)
    elif fs.kind == "float":
        st.number_input(fs.label, min_value=None if lo is None else float(lo),
                        max_value=None if hi is None else float(hi), step=1e-4 if fs.log else 0.05,
                        format="%.1e" if fs.log else "%.3f", key=key, help=helptext)
    else:  # tuples (layer widths) and free text
        hint = f" (comma-separated; each {lo}..{hi})" if fs.is_tuple and fs.range else ""
        st.text_input(fs.label, key=key, help=(helptext or "") + hint or None)


def read_fields(specs, prefix: str) -> dict:
    """Values of the widgets created by :func:`field_widget` (keys ``prefix + name``)."""
    return {fs.name: _from_widget(fs, st.session_state[prefix + fs.name]) for fs in specs
            if prefix + fs.name in st.session_state}


# ------------------------------------------------------------------ the inspection pages' scaffold
def no_run_message(need: str | None, example: str, what: str = "page") -> None:
    """Say which run an inspection page needs, how to train one, and link to the Train page.

    Args:
        need: what the view needs (``dlcore.inspect.VIEWS[view]``); None when any completed run will do.
        example: a training command that makes a suitable run.
        what: "page", or "view" for one tab of a page.
    """
    lead = (f"No completed run fits this {what}: it needs {need}. Train one first" if need
            else "No completed run yet: train a model first")
    st.info(f"{lead} — e.g. {example}.", icon=":material/info:")
    st.page_link(PAGE_FILES["train"], label="Go to Train", icon=":material/model_training:")


def pick_run(view: str | None, key: str, example: str, what: str = "page"):
    """The run picker of an inspection page: the completed runs that suit ``view`` (None: any), the run in
    the URL chosen first.

    Returns:
        (run, model, dataset) of the chosen run, shared read-only; None, with :func:`no_run_message` shown,
        when no run suits. A run that cannot be opened shows an error box and stops the page.
    """
    done = [r for r in dlcore.list_runs() if r.status == "completed"]
    suitable = [r for r in done if view is None or dlcore.inspect.unsuitable(r.model, view) is None]
    if not suitable:
        no_run_message(dlcore.inspect.VIEWS[view] if view else None, example, what)
        return None
    ids = [r.id for r in suitable]
    labels = {r.id: f"{r.name} · {r.data.name} · {r.id}" for r in suitable}
    wanted = selected_run()
    run_id = st.selectbox("Run", ids, index=ids.index(wanted) if wanted in ids else 0, key=key,
                          format_func=labels.get)
    try:
        run, model = run_model(run_id, str(dlcore.data_dir()))
        return run, model, run_dataset(run.data.to_json())
    except (dlcore.CheckpointError, dlcore.DataError, dlcore.RunNotFound) as e:
        st.error(f"Cannot open this run: {e}")
        st.stop()
