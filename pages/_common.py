"""What every page shares: cached read-only objects, figure display with downloads, formatting, the
selected run in the URL. Not a page (app.py does not list it in the navigation).

Only read-only shared objects are cached here (datasets, model summaries, test predictions); per-user
state lives in ``st.session_state`` under page-prefixed keys.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import streamlit as st

import dlcore
from dlcore import evaluation, viz

ROOT = Path(__file__).resolve().parents[1]
PAGE_FILES = {"home": "pages/home.py", "data": "pages/data.py", "build": "pages/build.py",
              "train": "pages/train.py", "runs": "pages/runs.py"}
ACTIVE = ("queued", "running")
STATUS_ICONS = {"queued": ":gray[:material/hourglass_top:]", "running": ":blue[:material/directions_run:]",
                "completed": ":green[:material/check_circle:]", "failed": ":red[:material/error:]",
                "cancelled": ":orange[:material/stop_circle:]"}  # for st.markdown only
PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def require_navigation() -> None:
    """Make sure app.py's ``st.navigation`` is in charge, even for the first request after a restart.

    Streamlit decides per process, at the first session, that an app with a ``pages/`` folder is a
    legacy (v1) multipage app, until some run calls ``st.navigation``. If that first request is a deep
    link (``/train?run=…``, a reload after a server restart), the page would run on its own: no sidebar,
    no page config, a file-name menu. Every page calls this right after its imports:
    a run that finds the legacy flag set clears it and reruns through app.py. (Renaming the ``pages/``
    folder would also avoid this.)
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


# Not called at import time: a rerun raised while this module is half-imported would break the imports of
# other sessions arriving at the same moment. Every page calls ui.require_navigation() after its imports.


# ------------------------------------------------------------------ cached, read-only objects
@st.cache_resource(max_entries=8, show_spinner="Loading the dataset…")
def _dataset(name: str, root: str, stamp: float):
    return dlcore.load_dataset(dlcore.DataSpec(name=name))


def dataset(name: str):
    """The dataset with default split settings (shared by all sessions; never mutate its tensors).

    Raises:
        DataError: unknown, unavailable offline, or a damaged upload.
    """
    root = dlcore.data_dir()
    folder = root / "datasets" / name
    stamp = folder.stat().st_mtime if name.startswith("user-") and folder.exists() else 0.0
    return _dataset(name, str(root), stamp)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def run_model(run_id: str, root: str):
    """(run, model) of a finished run, shared read-only by the inspection pages (``root`` keys the cache
    by data folder)."""
    return dlcore.load_run_model(run_id)


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def run_dataset(spec_json: str):
    """The dataset of a run's DataSpec (as JSON, so it can key the cache); never mutate its tensors."""
    return dlcore.load_dataset(dlcore.DataSpec.from_json(spec_json))


@st.cache_data(max_entries=64, show_spinner=False)
def _summary(model_json: str, seq_len: int | None):
    return dlcore.summarize(dlcore.model_from_dict(json.loads(model_json)), seq_len=seq_len)


def summary(config, info) -> "dlcore.ModelSummary":
    """``dlcore.summarize`` of a config already adapted to ``info`` (cached by value)."""
    seq = info.input_shape[0] if info.input_kind in ("sequence", "tokens") else None
    return _summary(json.dumps(dlcore.model_to_dict(config), sort_keys=True), seq)


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
def _predictions(run_id: str, root: str, stamp: float):
    return evaluation.test_predictions(run_id)


def test_predictions(run_id: str):
    """Test-set predictions of a run's latest checkpoint (recomputed when the checkpoint changes)."""
    root = dlcore.data_dir()
    ckpt = dlcore.RunStore().run_dir(run_id) / "checkpoint.safetensors"
    stamp = ckpt.stat().st_mtime if ckpt.exists() else 0.0
    return _predictions(run_id, str(root), stamp)


# ------------------------------------------------------------------ figures
def presenting() -> bool:
    return bool(st.session_state.get("app_present", False))


def show_figure(fig, key: str, filename: str) -> None:
    """Draw a figure (enlarged in presentation mode) with PNG export in its toolbar and an HTML download."""
    if presenting():
        fig = viz.for_presentation(fig)
    config = {**PLOT_CONFIG, "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}}
    # theme=None: the figure looks as it will in the HTML and PNG downloads (and keeps its large type)
    st.plotly_chart(fig, key=key, config=config, width="stretch", theme=None)
    st.download_button("Download HTML", data=lambda: fig.to_html(include_plotlyjs=True, full_html=True),
                       file_name=f"{filename}.html", mime="text/html", key=f"{key}_html", on_click="ignore",
                       icon=":material/download:", type="tertiary",
                       help="An interactive copy of this figure that opens in any browser, offline. "
                            "For a PNG, use the camera icon in the figure's toolbar.")


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


def preset_of(run) -> str:
    """The preset a run's model equals (ignoring what ``for_data`` fills in), or 'custom'."""
    cls = type(run.model)
    skip = {fs["name"] for fs in dlcore.field_specs(cls) if is_data_field(fs)} | {"loss", "per_step", "patch_size"}
    mine = {k: v for k, v in run.model.to_dict().items() if k not in skip}
    for name, p in dlcore.PRESETS.items():
        if type(p.config) is cls and {k: v for k, v in p.config.to_dict().items() if k not in skip} == mine:
            return name
    return "custom"


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


# ------------------------------------------------------------------ forms built from spec field metadata
DATA_FIELD_MARK = "(set from the data)"


def is_data_field(fs: dict) -> bool:
    """Fields that ``dlcore.for_data`` fills in: shown read-only."""
    return DATA_FIELD_MARK in (fs.get("help") or "")


def to_widget_value(fs: dict, value):
    if fs["type"] is tuple or str(fs["type"]).startswith("tuple"):
        return ", ".join(str(v) for v in (value or ()))
    return value


def from_widget_value(fs: dict, raw):
    """Turn a widget's value back into the field's type; SpecError (naming the field) when it cannot."""
    name = fs["name"]
    if fs["type"] is tuple or str(fs["type"]).startswith("tuple"):
        item = float if "float" in str(fs["type"]) else int
        parts = [p.strip() for p in str(raw).replace(";", ",").split(",") if p.strip()]
        try:
            return tuple(item(p) for p in parts)
        except ValueError:
            kind = "numbers" if item is float else "whole numbers"
            raise dlcore.SpecError(name, f"{name} must be a comma-separated list of {kind}, e.g. 32, 64; "
                                         f"got {raw!r}") from None
    return raw


def field_widget(fs: dict, key: str, values: dict, reset: bool = False) -> None:
    """One widget for one spec field, bound to ``st.session_state[key]`` (initialised from ``values``).

    Args:
        fs: an entry of ``dlcore.field_specs(cls)`` (name, type, default, range, choices, help, log).
        key: the session-state key (page-prefixed).
        values: current values by field name.
        reset: overwrite what the user had typed (a new preset was chosen).
    """
    name, tp = fs["name"], fs["type"]
    label = name.replace("_", " ")
    if reset or key not in st.session_state:
        st.session_state[key] = to_widget_value(fs, values.get(name, fs["default"]))
    rng = fs.get("range")
    helptext = fs.get("help") or None
    if fs.get("choices"):
        st.selectbox(label, list(fs["choices"]), key=key, help=helptext)
    elif tp is bool:
        st.checkbox(label, key=key, help=helptext)
    elif tp is int:
        st.number_input(label, min_value=int(rng[0]) if rng else None, max_value=int(rng[1]) if rng else None,
                        step=1, key=key, help=helptext)
    elif tp is float:
        log = bool(fs.get("log"))
        st.number_input(label, min_value=float(rng[0]) if rng else None, max_value=float(rng[1]) if rng else None,
                        step=1e-4 if log else 0.05, format="%.1e" if log else "%.3f", key=key, help=helptext)
    else:  # tuples (layer widths) and free text
        hint = f" (comma-separated; each {rng[0]}..{rng[1]})" if rng else ""
        st.text_input(label, key=key, help=(helptext or "") + hint)


def read_fields(specs: list[dict], prefix: str) -> dict:
    """Values of the widgets created by :func:`field_widget` (keys ``prefix + name``)."""
    return {fs["name"]: from_widget_value(fs, st.session_state[prefix + fs["name"]]) for fs in specs
            if prefix + fs["name"] in st.session_state}
