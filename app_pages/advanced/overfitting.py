"""Overfitting & transfer: a run's losses with the epoch it starts to overfit marked, one-click remedy variants
compared on one chart, and a new run that starts from a finished run's weights (transfer learning)."""
from __future__ import annotations

import streamlit as st

import dlcore
from dlcore import viz
from app_pages.common import identity, ui

START_ERRORS = (dlcore.SpecError, dlcore.ResourceError, dlcore.TrainingError, dlcore.DataError, dlcore.RunNotFound,
                dlcore.CheckpointError)

st.title("Overfitting & transfer")
st.caption("When the validation loss rises while the training loss keeps falling, the model memorises its "
           "training examples. Try a remedy as a variant run, or start a new task from a finished run's weights.")


def overfitting_section(run, model, dataset) -> None:
    """The run's losses with overfitting marked, and the remedies as variant runs compared."""
    store = dlcore.RunStore()
    epochs = ui.curve_rows(store.metrics(run.id, "epoch"))

    # ------------------------------------------------------------------ curves, overfitting marked
    found = dlcore.detect_overfitting(epochs)
    if found:
        st.warning(ui.text(found[1]), icon=":material/trending_up:")
    elif len(epochs) < 3:
        st.info("Too few epochs to judge overfitting (it needs at least 3).", icon=":material/info:")
    else:
        st.success("No overfitting: the validation loss has not risen while the training loss fell.",
                   icon=":material/check_circle:")
    fig = viz.overfitting_figure([r.get("epoch") for r in epochs], [r.get("train_loss") for r in epochs],
                                 [r.get("val_loss") for r in epochs], found[0] if found else None,
                                 title=ui.text(f"Loss of {run.name}", "figure"))
    ui.show_figure(fig, key="overfit_curves", filename=f"overfitting-{run.id}")

    # ------------------------------------------------------------------ remedies as variant runs
    st.subheader("Try a remedy")
    st.caption("Each button starts a copy of this run with one change; its name is the run's name plus the remedy.")
    remedies = list(dlcore.REMEDIES.values())
    cols = st.columns(3)
    images = dataset.info.input_kind == "image"
    for i, r in enumerate(remedies):
        unusable = r.images_only and not images
        with cols[i % 3]:
            clicked = st.button(r.label, key=f"overfit_remedy_{r.name}", icon=":material/play_arrow:",
                                width="stretch", disabled=unusable,
                                help=(r.why[:1].upper() + r.why[1:] + ".") if not unusable else
                                f"For images only; this run's inputs are {dataset.info.input_kind}.")
        if clicked:
            try:
                d, m, t = dlcore.remedy_specs(r.name, run.data, run.model, run.train.replace(init_from="", freeze=()))
                new_id = dlcore.start_run(d, m, t, name=f"{run.name} + {r.name}", owner=identity.viewer().identity)
            except START_ERRORS as e:
                ui.user_error(e)
            else:
                st.toast(f"Started **{ui.text(run.name)} + {ui.text(r.name)}**", icon=":material/play_arrow:")
                st.session_state.setdefault("overfit_started", []).append(new_id)

    prefix = f"{run.name} + "
    variants = [v for v in ui.runs() if v.id != run.id and v.name.startswith(prefix)]  # "<run> + <remedy>"
    if not variants:
        st.caption("No variants of this run yet.")
        return
    metric = st.radio("Compare", ["val_loss", "val_accuracy"], horizontal=True, key="overfit_compare_y",
                      format_func=lambda c: {"val_loss": "validation loss", "val_accuracy": "validation accuracy"}[c])

    @st.fragment(run_every=2.0 if any(v.status in ui.ACTIVE for v in variants) else None)
    @ui.guarded
    def compare() -> None:  # redrawn every 2 s while a variant trains
        curves = {ui.text(run.name, "figure") + " (original)": epochs}
        for v in ui.runs():
            if v.id != run.id and v.name.startswith(prefix):
                label = ui.text(f"+ {v.name[len(prefix):]} ({v.status})", "figure")
                curves[label] = ui.curve_rows(store.metrics(v.id, "epoch"))
        cmp = viz.compare_curves(curves, metric, title="Remedies compared",
                                 y_title={"val_loss": "validation loss", "val_accuracy": "validation accuracy"}[metric])
        ui.show_figure(cmp, key="overfit_compare", filename=f"remedies-{run.id}")

    compare()


def fine_tune_form(run, model, dataset) -> None:
    """A new run on this run's dataset that starts from its weights."""
    st.subheader("Start from a finished run (transfer learning)")
    st.caption("A new run on this run's dataset that starts from this run's weights: keep only some classes, cap "
               "the labelled examples per class, and freeze the layers that should stay as they are.")
    names = list(getattr(dataset.info, "class_names", ()) or [])
    n_classes = len(names) or int(getattr(dataset.info, "num_outputs", 0) or 0)
    with st.form("overfit_transfer"):
        classes = st.multiselect("Classes to keep (empty = all)", list(range(n_classes)), key="overfit_classes",
                                 format_func=lambda c: ui.text(names[c] if c < len(names) else str(c), "plain"))
        c1, c2 = st.columns(2)
        per_class = c1.number_input("Labelled examples per class (0 = all)", 0, 100_000, 20, key="overfit_per_class")
        t_epochs = c2.number_input("Epochs", 1, 200, max(1, run.train.epochs), key="overfit_t_epochs")
        groups = dlcore.freeze_groups(model)
        freeze = st.multiselect("Freeze", groups, default=["body"] if "body" in groups else [], key="overfit_freeze",
                                help="'body': everything but the output layer; 'all': nothing is trained; or layer names.")
        submitted = st.form_submit_button("Start fine-tuning", type="primary", icon=":material/model_training:")
    if submitted:
        try:
            data = run.data.replace(classes=tuple(int(c) for c in classes), per_class=int(per_class))
            train = run.train.replace(init_from=run.id, freeze=tuple(freeze), epochs=int(t_epochs))
            new_id = dlcore.start_run(data, run.model, train, name=f"{run.name} → fine-tune",
                                      owner=identity.viewer().identity)
        except START_ERRORS as e:
            ui.user_error(e)
        else:
            st.success(f"Started **{ui.text(run.name)} → fine-tune** ({ui.text(new_id)}).", icon=":material/check_circle:")
            st.page_link(ui.PAGE_FILES["train"], label="Watch it on the Train page", icon=":material/monitoring:",
                         query_params={"run": new_id})


def demo_section() -> None:
    """The one-click transfer demonstration: pretrain on digits 0–4, then learn 5–9 from a few labels, once
    starting from the pretrained weights and once from scratch; their curves side by side."""
    st.subheader("The transfer demonstration")
    st.caption("A seed CNN learns digits 0–4 of MNIST with all their labels. Then it learns 5–9 from only a few "
               "labels per digit, starting from those weights, while the same model learns the same few labels "
               "from random weights: same recipe, epochs and seed.")
    c1, c2 = st.columns([1, 2])
    per_class = c1.select_slider("Labels per digit", [10, 20, 50], value=10, key="demo_per_class")
    owner = identity.viewer().identity
    try:
        demo = dlcore.transfer_demo(owner=owner, per_class=per_class)
    except START_ERRORS as e:
        ui.user_error(e)
        return
    if not demo.pretrain:
        c2.write("")
        if c2.button("Run the demonstration (about a minute)", type="primary", icon=":material/play_arrow:",
                     key="demo_start"):
            try:
                dlcore.transfer_demo(start=True, owner=owner, per_class=per_class)
            except START_ERRORS as e:
                ui.user_error(e)
            else:
                st.rerun()
        return

    @st.fragment(run_every=2.0 if demo.stage != "done" else None)
    @ui.guarded
    def progress() -> None:
        demo_progress(dlcore.transfer_demo(owner=owner, per_class=per_class))  # starts the fine-tuning when due

    progress()


def demo_progress(demo) -> None:
    per_class = demo.per_class
    store = dlcore.RunStore()
    st.caption(f"Stage: {demo.stage}.")
    runs = {"fine-tuned": demo.finetune, "from scratch": demo.scratch}
    curves = {label: ui.curve_rows(store.metrics(rid, "epoch")) if rid else [] for label, rid in runs.items()}
    cols = st.columns(2)
    for col, (metric, title) in zip(cols, (("val_accuracy", "Validation accuracy"), ("val_loss", "Validation loss"))):
        with col:
            fig = viz.compare_curves(curves, metric, title=f"{title} on digits 5–9, {per_class} labels each",
                                     y_title=title.lower())
            ui.show_figure(fig, key=f"demo_{metric}", filename=f"transfer-demo-{metric}")
    done = {label: store.get(rid) for label, rid in runs.items() if rid}
    if len(done) == 2 and all(r.status == "completed" for r in done.values()):
        m = st.columns(2)
        for col, (label, r) in zip(m, done.items()):
            col.metric(f"Test accuracy, {label}", ui.fmt_metric("accuracy", r.summary.get("test_accuracy")))


tab_over, tab_transfer = st.tabs(["Overfitting", "Transfer learning"])
with tab_over:
    picked = ui.pick_run(None, "overfit_run", ("seed-cnn", "mnist5k"))
    if picked is not None:
        overfitting_section(*picked)
with tab_transfer:
    demo_section()
    if picked is not None:
        fine_tune_form(*picked)
