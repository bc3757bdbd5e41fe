"""Train: start runs in the background, watch one live (curves, progress, ETA), cancel and resume.

The watched run's id is in the URL (``?run=…``), so a reload or a reopened tab shows the same run; the
run itself lives in its own process and the run store, so nothing is lost when the page goes away.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

import dlcore
from dlcore import viz
from app_pages.common import identity, ui


BUILD = "__build__"  # the model configured on the Build page
MAIN_FIELDS = ("epochs", "batch_size", "lr", "optimizer", "schedule")
TRAIN_SPECS = dlcore.field_specs(dlcore.TrainSpec)
PREFIX = "train_f_"


def model_choices() -> list[str]:
    return ([BUILD] if st.session_state.get("build_model") else []) + list(dlcore.PRESETS)


def model_labels() -> dict[str, str]:
    """Labels by choice (plain text in a select box), computed now (a format function must not read session
    state later)."""
    labels = {n: f"{n} — {p.description}" for n, p in dlcore.PRESETS.items()}
    if m := st.session_state.get("build_model"):
        base = st.session_state.get("build_preset", "")
        label = dlcore.FAMILIES[m["family"]].label if m.get("family") in dlcore.FAMILIES else m.get("family")
        labels[BUILD] = f"Model from the Build page ({label}" + (f", from {base})" if base else ")")
    return labels


def recommended(choice: str) -> dict:
    """TrainSpec defaults overlaid with the preset's recommended settings."""
    base = dlcore.TrainSpec().to_dict()
    if choice in dlcore.PRESETS:
        base.update(dlcore.PRESETS[choice].train)
    elif choice == BUILD:  # the preset it was built from, and the estimates' settings on the Build page
        base.update(dlcore.PRESETS.get(st.session_state.get("build_preset"), dlcore.Preset("", "", None, "")).train)
        base.update(st.session_state.get("build_train_settings", {}))
    return base


def on_model_change() -> None:
    """A new model: suggest its dataset and put its recommended training settings in the form."""
    choice = st.session_state["train_model"]
    if choice in dlcore.PRESETS:
        st.session_state["train_data"] = dlcore.PRESETS[choice].data
    elif choice == BUILD and st.session_state.get("build_data"):
        st.session_state["train_data"] = st.session_state["build_data"]
    st.session_state["train_reset"] = True


def start_form() -> None:
    choices = model_choices()
    if st.session_state.get("train_model") not in choices:
        st.session_state["train_model"] = BUILD if BUILD in choices else "cnn-tiny"
        on_model_change()
    identity.ask_name("so that the runs you start stay yours after a reload")
    names = dlcore.dataset_names(identity.viewer())  # built-in sets, and the uploads this person may use
    if st.session_state.get("train_data") not in names:
        st.session_state["train_data"] = "mnist5k"
    c1, c2 = st.columns(2)
    labels = model_labels()
    c1.selectbox("Model", choices, key="train_model", format_func=labels.get, on_change=on_model_change)
    c2.selectbox("Dataset", names, key="train_data", format_func=ui.dataset_labels(names).get)
    reset = st.session_state.pop("train_reset", False)
    values = recommended(st.session_state["train_model"])
    main = [fs for fs in TRAIN_SPECS if fs.name in MAIN_FIELDS]
    rest = [fs for fs in TRAIN_SPECS if fs.name not in MAIN_FIELDS]
    problems = []
    with st.form("train_form", border=True):
        cols = st.columns(len(main))
        for col, fs in zip(cols, main):
            with col:
                problems.append(ui.field_widget(fs, PREFIX + fs.name, values, reset))
        hidden = []
        with st.expander("More settings"):
            grid = st.columns(3)
            for i, fs in enumerate(rest):
                with grid[i % 3]:
                    if problem := ui.field_widget(fs, PREFIX + fs.name, values, reset):
                        hidden.append(problem)
        st.text_input("Run name (optional)", key="train_name", placeholder="e.g. CNN, lr 2e-3")
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
    if hidden:  # the expander may be closed: repeat what is wrong in there
        st.error("Under **More settings**: " + " ".join(ui.text(p) for p in hidden), icon=":material/error:")
    if submitted:
        if any(problems) or hidden:
            st.error("Not started: fix the value marked in red above.", icon=":material/error:")
        else:
            start_from_form()


def start_from_form() -> None:
    choice, data_name = st.session_state["train_model"], st.session_state["train_data"]
    try:
        if choice == BUILD:
            config = dlcore.model_from_dict(st.session_state["build_model"])
        else:
            config = dlcore.PRESETS[choice].config
        train = dlcore.TrainSpec.from_dict(ui.read_fields(TRAIN_SPECS, PREFIX))
        # the default name says the dataset as the user knows it (an upload's name, not user-people-2fe292)
        name = (st.session_state.get("train_name") or "").strip() or f"{config.family} on {ui.dataset_title(data_name)}"
        run_id = dlcore.start_run(dlcore.DataSpec(name=data_name), config, train, name=name,
                                  owner=identity.viewer().identity)
    except dlcore.USER_ERRORS as e:
        ui.user_error(e)
        return
    ui.select_run(run_id)
    st.session_state["train_started"] = run_id
    st.session_state["train_collapse"] = True  # the new run is watched below
    st.session_state.pop("train_open_form", None)
    st.rerun()


def progress_text(run, last_step: dict | None) -> str:
    parts = [f"{run.progress:.0%}"]
    total = run.train.epochs
    if last_step and last_step.get("epoch") is not None:
        parts.append(f"epoch {min(int(last_step['epoch']) + 1, total)}/{total}")
    if run.status == "running" and last_step:
        parts.append(f"ETA {ui.fmt_duration(last_step.get('eta_s'))}")
        parts.append(f"{last_step.get('samples_per_s', 0):,.0f} samples/s")
    parts.append(f"elapsed {ui.fmt_duration(run.duration)}")
    return " · ".join(parts)


def controls(run) -> None:
    me = identity.viewer()
    if run.status in ("failed", "cancelled", *ui.ACTIVE) and not dlcore.can_access(run, me, "resume"):
        st.caption(":material/visibility: Someone else's run, shared with the class: you can watch it; only its "
                   "owner (or a teacher) can cancel or resume it.")
        return
    if run.status in ui.ACTIVE:
        if st.button("Cancel", icon=":material/stop:", key="train_cancel", disabled=run.cancel_requested,
                     help="Stop after the current step; a checkpoint is kept so the run can be resumed."):
            try:
                dlcore.cancel_run(run.id, viewer=me)
            except dlcore.USER_ERRORS as e:
                ui.user_error(e)
            else:
                st.rerun(scope="fragment")
    elif run.status in ("failed", "cancelled"):
        if st.button("Resume", icon=":material/play_arrow:", key="train_resume", type="primary",
                     help="Continue from the last checkpoint."):
            try:
                dlcore.resume_run(run.id, viewer=me)
            except (ValueError, *dlcore.USER_ERRORS) as e:
                ui.user_error(e)
            else:
                st.rerun()


def cancelled_text(error: str | None) -> str:
    """One sentence for a cancelled run, whatever the worker wrote (it may already say how to resume)."""
    why = (error or "").strip().rstrip(".") or "cancelled by the user"
    if not why.lower().startswith(("cancel", "stopped")):
        why = f"cancelled: {why}"
    if "resume" not in why.lower():
        why += "; resume continues from the last checkpoint"
    return why[:1].upper() + why[1:] + "."


def live_view(run_id: str, was_active: bool) -> None:
    try:
        run = dlcore.get_run(run_id, viewer=identity.viewer())
    except dlcore.RunNotFound:
        st.warning(f"Run {ui.text(run_id)} no longer exists (it was deleted).")
        return
    except dlcore.AccessDenied as e:  # unshared or hidden while being watched
        st.warning(ui.message(e), icon=":material/block:")
        return
    if was_active and run.status not in ui.ACTIVE:
        st.rerun()  # the run ended: redraw the whole page once, without polling, before drawing anything here
    store = dlcore.RunStore()
    steps = ui.curve_rows(store.metrics(run_id, "step"), run.train.log_every)
    epochs = ui.curve_rows(store.metrics(run_id, "epoch"))
    metric = ui.dataset_metric(run, epochs)
    last = steps[-1] if steps else None
    data = ui.text(ui.dataset_title(run.data.name))
    st.markdown(f"### {ui.STATUS_ICONS.get(run.status, '')} {ui.text(run.name)}")
    st.caption(f"{run.id} · {run.family} on {data} · "
               f"{run.params:,} parameters · {run.device or 'device not chosen yet'} · "
               f"epochs {run.train.epochs}, batch {run.train.batch_size}, lr {run.train.lr:g}"
               if run.params else f"{run.id} · {run.family} on {data}")
    if run.status == "queued":
        pos = dlcore.queue_position(run_id)
        st.info(f"Queued: #{pos} in line. At most {dlcore.LIMITS.concurrent_runs} runs train at once; this one "
                "starts when a slot frees up." if pos else "Starting the training process…",
                icon=":material/hourglass_top:")
    elif run.status == "running" and run.cancel_requested:
        st.warning("Cancelling: the run stops after the current step and keeps a checkpoint.")
    elif run.status == "failed":
        st.error(f"The run failed: {ui.message(run.error or 'no reason was recorded')}", icon=":material/error:")
    elif run.status == "cancelled":
        st.warning(ui.text(cancelled_text(run.error)), icon=":material/stop_circle:")
    st.progress(min(max(run.progress, 0.0), 1.0), text=progress_text(run, last))
    controls(run)
    if run.status == "completed":
        test = {k[5:]: v for k, v in run.summary.items() if k.startswith("test_")}
        cols = st.columns(4)
        cols[0].metric(f"test {metric.replace('_', ' ')}", ui.fmt_metric(metric, test.get(metric)))
        cols[1].metric("test loss", f"{test.get('loss', float('nan')):.4f}")
        cols[2].metric(f"best val {metric.replace('_', ' ')}", ui.fmt_metric(metric, run.summary.get("best_metric")),
                       help=f"at epoch {run.summary.get('best_epoch')}")
        cols[3].metric("training time", ui.fmt_duration(run.summary.get("seconds")),
                       help=f"{run.summary.get('samples_per_s', 0):,.0f} samples/s at the end")
    elif epochs:
        e = epochs[-1]
        cols = st.columns(3)
        cols[0].metric("epochs done", f"{e['epoch']}/{run.train.epochs}")
        cols[1].metric("train loss", f"{e['train_loss']:.4f}")
        if f"val_{metric}" in e:
            prev = epochs[-2].get(f"val_{metric}") if len(epochs) > 1 else None
            delta = None if prev is None else (f"{(e[f'val_{metric}'] - prev):+.1%}" if "accuracy" in metric
                                               else f"{e[f'val_{metric}'] - prev:+.4g}")
            cols[2].metric(f"val {metric.replace('_', ' ')}", ui.fmt_metric(metric, e[f"val_{metric}"]), delta,
                           delta_color="normal" if "accuracy" in metric else "inverse")
    found = dlcore.detect_overfitting(epochs)
    if found:
        st.warning(ui.text(found[1]), icon=":material/trending_up:")
        st.page_link(ui.PAGE_FILES["overfitting"], label="Try a remedy as a variant run",
                     icon=":material/healing:", query_params={"run": run_id})
    fig = viz.training_curves(pd.DataFrame(steps), pd.DataFrame(epochs), metric, uirevision=run_id,
                              total_epochs=run.train.epochs, overfit_epoch=found[0] if found else None)
    ui.show_figure(fig, key="train_curves", filename=f"curves-{run_id}")


def on_watch() -> None:
    st.session_state.pop("train_open_form", None)
    ui.select_run(st.session_state["train_run"])


NOT_YOURS = ("Run {} was not found among the runs you can open: it does not exist, or it belongs to someone else "
             "who has not shared it with the class.")

st.title("Train")
all_runs = ui.runs()  # this person's runs and the shared ones (a teacher: everyone's)
selected = ui.selected_run()
# Build's "Train this model" (and the inspection pages' "Set up …") hand over a model: its form open, and no
# older run shown as the run being trained, until a run is started or chosen (a run in the URL wins)
handed_over = st.session_state.get("train_open_form", False) and not selected
if selected:
    st.session_state.pop("train_open_form", None)
if started := st.session_state.pop("train_started", None):
    st.toast(f"Started run {started}: it trains in the background.", icon=":material/rocket_launch:")
if st.session_state.pop("train_collapse", False):
    st.session_state["train_form_open"] = False
elif handed_over or not all_runs:
    st.session_state["train_form_open"] = True
with st.expander("Start a new run", key="train_form_open", on_change="rerun", icon=":material/add_circle:"):
    start_form()

if not all_runs:
    if selected:
        st.warning(NOT_YOURS.format(ui.text(selected)), icon=":material/block:")
    st.info("No runs yet. Fill in the form above and press **Start training**, or use the quick start on the "
            "**Home** page.", icon=":material/info:")
    st.stop()

ids = [r.id for r in all_runs]
if selected not in ids and not handed_over:
    active = [r for r in all_runs if r.status in ui.ACTIVE]
    if selected:
        st.warning(NOT_YOURS.format(ui.text(selected)) + " Showing your latest run instead.", icon=":material/block:")
    selected = (active or all_runs)[0].id
    ui.select_run(selected)
labels = {r.id: ui.run_label(r) for r in all_runs}
if selected is None:
    st.session_state.pop("train_run", None)  # nothing watched: the box shows its placeholder
elif st.session_state.get("train_run") != selected:
    st.session_state["train_run"] = selected
row = st.container(horizontal=True, vertical_alignment="bottom", gap="medium")
with row:
    choice = st.selectbox("Watch run", ids, key="train_run", format_func=labels.get, on_change=on_watch,
                          index=None if selected is None else 0, placeholder="Choose a run to watch", width=560)
    st.page_link(ui.PAGE_FILES["runs"], label="All runs", icon=":material/table_chart:")
if choice is None:
    st.caption("No run is being watched: press **Start training** above to train the new model, or choose a run.")
    st.stop()
current = next(r for r in all_runs if r.id == choice)
was_active = current.status in ui.ACTIVE


@st.fragment(run_every=1.0 if was_active else None)
def live() -> None:
    live_view(choice, was_active)


live()
